"""Where the project keeps what outlives a run: ``$SELFINSTRUCT_HOME``, or
``~/.cache/selfinstruct`` when unset.

- ``models/``: model files assembled from their packages (:mod:`selfinstruct.backends.bundled`);
- ``torch/``: GGUF models converted for torch (:mod:`selfinstruct.backends.converted`);
- ``shared-cache.sqlite``: answers that every run of a model shares, the scores of the seed
  tasks that calibrate classification (:mod:`selfinstruct.run.shared_cache`).

Everything here is a cache: delete it and it is rebuilt, at the cost of time.
"""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    home = os.environ.get("SELFINSTRUCT_HOME")
    return Path(home) if home else Path.home() / ".cache" / "selfinstruct"
