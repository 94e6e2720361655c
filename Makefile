# One command for all checks: `make check`.
.PHONY: check lint types test fast
check: lint types test
lint:
	python3 -m ruff check src tests benchmarks scripts
types:
	python3 -m mypy
test:
	python3 -m pytest -q
fast:
	python3 -m pytest -q -m "not slow"
