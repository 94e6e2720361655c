# One command for all checks: `make check`.
.PHONY: check lint test fast
check: lint test
lint:
	python3 -m ruff check src tests benchmarks
test:
	python3 -m pytest -q
fast:
	python3 -m pytest -q -m "not slow"
