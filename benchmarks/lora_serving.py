"""Serving a LoRA fine-tune: llama.cpp + GGUF adapter against transformers + merged weights.

    python benchmarks/lora_serving.py [--model smollm2] [--prompts 16] [--max-tokens 32]

Why it matters: ``selfinstruct loop`` evaluates a fine-tune of a GGUF model on the embedded
backend with ``--lora adapter.gguf`` instead of on the transformers backend with the merged
weights. This measures both on the same prompts (SuperNI zero-shot prompts when
``../shared`` is there, else the project's seed instructions), greedy decoding, no cache,
model loading excluded, and prints completions/s and tokens/s of each and their ratio.

The adapter is a random rank-8 LoRA on every projection (serving cost does not depend on
what the weights learned), merged with peft for the transformers arm and exported with
:func:`selfinstruct.training.lora_gguf.export_lora_gguf` for the llama.cpp arm. The transformers arm
runs with batches of ``--batch-size`` (its advantage on a CPU); llama.cpp one by one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from selfinstruct.backends.base import Request, Sampling
from selfinstruct.backends.bundled import resolve_gguf
from selfinstruct.backends.hf_models import load_causal_lm
from selfinstruct.backends.registry import open_backend

SUPERNI = Path(__file__).resolve().parents[2] / "shared" / "data" / "superni-test" / \
    "superni_test_en.jsonl"


def prompts(count: int) -> list[str]:
    if SUPERNI.is_file():
        from selfinstruct.evaluation.superni import load_instances
        from selfinstruct.evaluation.superni_run import build_prompt, select

        chosen = select(load_instances(SUPERNI), None, 1)[:count]
        return [build_prompt("tk", i.definition, i.input) for i in chosen]
    from selfinstruct.seeds import load_seeds

    return [f"Instruction: {t.instruction}\nOutput:" for t in load_seeds()[:count]]


def make_adapter(model_name: str, folder: Path) -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    from selfinstruct.training.lora_gguf import export_lora_gguf

    model, tokenizer = load_causal_lm(model_name, device="cpu")
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16,
                                                  target_modules="all-linear"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.01)
    peft_model.save_pretrained(folder / "adapter")
    merged = peft_model.merge_and_unload()
    quantizer = getattr(merged, "hf_quantizer", None)
    if quantizer is not None:  # de-quantized GGUF weights still carry the mark; drop it
        quantizer.remove_quantization_config(merged)
    merged.save_pretrained(folder / "merged")
    tokenizer.save_pretrained(folder / "merged")
    gguf = export_lora_gguf(folder / "adapter", resolve_gguf(model_name), folder / "adapter.gguf")
    return folder / "merged", gguf


def timed(backend, texts: list[str], max_tokens: int, batch_size: int) -> dict:
    requests = [Request(t, Sampling(max_tokens=max_tokens)) for t in texts]
    started = time.perf_counter()
    completions = []
    for i in range(0, len(requests), batch_size):
        completions += backend.complete(requests[i:i + batch_size])
    seconds = time.perf_counter() - started
    tokens = sum(c.completion_tokens for c in completions)
    return {"seconds": round(seconds, 2), "completions_per_s": round(len(requests) / seconds, 3),
            "tokens_per_s": round(tokens / seconds, 2), "completion_tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    texts = prompts(args.prompts)
    with tempfile.TemporaryDirectory() as tmp:
        merged, gguf = make_adapter(args.model, Path(tmp))
        reference_backend, _ = open_backend(f"transformers:{merged}")
        reference = timed(reference_backend, texts, args.max_tokens, args.batch_size)
        del reference_backend
        ours_backend, _ = open_backend(args.model, lora=str(gguf))
        ours = timed(ours_backend, texts, args.max_tokens, 1)
    result = {"model": args.model, "prompts": len(texts), "max_tokens": args.max_tokens,
              "reference (transformers, merged, batch "
              f"{args.batch_size})": reference, "ours (llama.cpp + adapter.gguf)": ours,
              "ratio_completions_per_s": round(ours["completions_per_s"]
                                               / reference["completions_per_s"], 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
