"""Turn a peft LoRA adapter into a llama.cpp LoRA adapter (GGUF), for a GGUF base model.

Why: a model fine-tuned by ``selfinstruct finetune`` on a bundled GGUF base can then run on
the embedded llama.cpp backend (``--model BASE --lora adapter.gguf``) on the very quantized
weights the base model runs with, so a base-versus-fine-tuned comparison differs by the
adapter alone, and with every other embedded feature (prefix reuse, determinism). On a
CPU it serves about as fast as batched transformers (benchmarks/lora_serving.py). The
adapter is a few MB.

The file is what llama.cpp's ``llama_adapter_lora_init`` reads: ``general.type = adapter``,
``adapter.type = lora``, ``adapter.lora.alpha``, and for each adapted weight ``W`` of the
base (named as in the base GGUF, e.g. ``blk.3.attn_q.weight``) two tensors
``blk.3.attn_q.weight.lora_a`` (peft's A, ``r x in``) and ``.lora_b`` (peft's B,
``out x r``). llama.cpp applies ``W x + (alpha / r) * B A x``, as peft does.

One subtlety: for the ``llama`` architecture, llama.cpp's converter permutes the rows of
the query and key projections (its rotary embedding pairs dimensions differently from
transformers), and transformers undoes that when it reads the GGUF. The adapter's B of
those two projections gets the same row permutation here, or the adapted model would be
wrong. Architectures with another layout are refused rather than converted wrongly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from selfinstruct.errors import UserError
from selfinstruct.files import check_output_path

if TYPE_CHECKING:
    import numpy as np

# architecture -> does llama.cpp permute q/k rows relative to transformers?
SUPPORTED_ARCHITECTURES = {"llama": True, "gemma3": False, "gemma2": False, "gemma": False,
                           "qwen2": False, "qwen3": False, "phi3": False}


def _field(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.parts[field.data[0]]
    return bytes(value).decode() if field.types and field.types[0].name == "STRING" else value[0]


def _permute_rows(matrix, n_head: int):
    """llama.cpp's q/k permutation, applied to the rows (output dimension) of ``matrix``."""
    rows = matrix.shape[0]
    return (matrix.reshape(n_head, 2, rows // n_head // 2, *matrix.shape[1:])
            .swapaxes(1, 2).reshape(matrix.shape))


def _hf_module_name(peft_key: str) -> tuple[str, str] | None:
    """``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` ->
    (``model.layers.0.self_attn.q_proj``, ``A``)."""
    for part in ("A", "B"):
        marker = f".lora_{part}.weight"
        if peft_key.endswith(marker):
            name = peft_key[: -len(marker)]
            name = name.removeprefix("base_model.model.")
            return name, part
    return None


def export_lora_gguf(adapter_dir: str | Path, base_gguf: str | Path, out: str | Path) -> Path:
    """Write ``out`` (a llama.cpp LoRA GGUF) from a peft adapter directory trained on the
    transformers load of ``base_gguf``. Returns the path written."""
    try:
        import gguf
        from safetensors.numpy import load_file
    except ImportError:
        raise UserError("GGUF adapter export needs gguf and safetensors: "
                        "pip install 'selfinstruct[train]'") from None
    adapter_dir, out = Path(adapter_dir), Path(out)
    config_path = adapter_dir / "adapter_config.json"
    weights_path = adapter_dir / "adapter_model.safetensors"
    if not config_path.is_file() or not weights_path.is_file():
        raise UserError(f"{adapter_dir}: not a peft adapter (needs adapter_config.json and "
                        "adapter_model.safetensors)")
    config = json.loads(config_path.read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise UserError(f"{config_path}: peft_type {config.get('peft_type')!r} is not LORA")
    if config.get("use_rslora") or config.get("use_dora"):
        raise UserError(f"{config_path}: rsLoRA and DoRA adapters cannot be exported to GGUF")
    alpha, rank = float(config["lora_alpha"]), int(config["r"])
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise UserError(f"{config_path}: per-module ranks/alphas cannot be exported to GGUF")

    reader = gguf.GGUFReader(str(base_gguf))
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UserError(f"{base_gguf}: GGUF adapter export supports "
                        f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))}, not {arch!r}; "
                        "use the merged model with --model transformers:DIR")
    n_blocks = int(_field(reader, f"{arch}.block_count"))
    n_head = int(_field(reader, f"{arch}.attention.head_count"))
    n_head_kv = int(_field(reader, f"{arch}.attention.head_count_kv") or n_head)
    base_tensors = {t.name for t in reader.tensors}
    arch_id = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}[arch]
    names = gguf.get_tensor_name_map(arch_id, n_blocks)

    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, array in load_file(str(weights_path)).items():
        parsed = _hf_module_name(key)
        if parsed is None:
            raise UserError(f"{weights_path}: tensor {key} is not a LoRA A/B weight "
                            "(trained embeddings or extra modules cannot be exported)")
        module, part = parsed
        target = names.get_name(module)
        if target is None or f"{target}.weight" not in base_tensors:
            raise UserError(f"{weights_path}: {module} has no counterpart in {base_gguf}")
        pairs.setdefault(target, {})[part] = array.astype("float32")

    check_output_path(out)  # a directory, device, FIFO or link there is never replaced
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for target in sorted(pairs):
        a, b = pairs[target]["A"], pairs[target]["B"]
        if a.shape[0] != rank or b.shape[1] != rank:
            raise UserError(f"{weights_path}: {target} has rank {a.shape[0]}, config says {rank}")
        if SUPPORTED_ARCHITECTURES[arch] and target.endswith(".attn_q"):
            b = _permute_rows(b, n_head)
        elif SUPPORTED_ARCHITECTURES[arch] and target.endswith(".attn_k"):
            b = _permute_rows(b, n_head_kv)
        writer.add_tensor(f"{target}.weight.lora_a", a)
        writer.add_tensor(f"{target}.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(partial, out)  # never a half-written adapter under the final name
    return out
