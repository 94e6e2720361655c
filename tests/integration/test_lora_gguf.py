"""A peft LoRA exported by ``selfinstruct.training.lora_gguf`` gives llama.cpp the same model as peft.

Real components on both sides: the bundled SmolLM2 GGUF de-quantized into transformers with
a LoRA on every projection, and the same GGUF in llama.cpp with the exported adapter. The
next-token logits must agree with the adapted torch model and not with the base one. SmolLM2
is a ``llama`` model, so this also checks the query/key row permutation.
"""

from __future__ import annotations

import pytest

pytest.importorskip("peft")

pytestmark = pytest.mark.slow

PROMPT = "The quick brown fox jumps over the lazy dog. Then"
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _last_logits_llamacpp(model_path, prompt, lora_path=None):
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=256, verbose=False,
                          logits_all=True, **({"lora_path": str(lora_path)} if lora_path else {}))
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=False)
    llm.eval(tokens)
    return tokens, np.array(llm.scores[llm.n_tokens - 1])


def test_exported_adapter_matches_peft_in_llamacpp(tmp_path):
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    from selfinstruct.backends.bundled import resolve_gguf
    from selfinstruct.backends.hf_models import load_causal_lm
    from selfinstruct.training.lora_gguf import export_lora_gguf

    model, tokenizer = load_causal_lm("smollm2", device="cpu")
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8,
                                                  target_modules=PROJECTIONS,
                                                  init_lora_weights=False))
    with torch.no_grad():  # an adapter strong enough to change the next token
        for name, param in peft_model.named_parameters():
            if "lora_A" in name:
                param.copy_(torch.randn_like(param) * 0.05)
            elif "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.2)
    peft_model.save_pretrained(tmp_path / "adapter")
    encoded = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        adapted = peft_model(**encoded).logits[0, -1].numpy()
        with peft_model.disable_adapter():
            base = peft_model(**encoded).logits[0, -1].numpy()

    gguf_path = resolve_gguf("smollm2")
    out = export_lora_gguf(tmp_path / "adapter", gguf_path, tmp_path / "adapter.gguf")
    assert out.is_file() and not (tmp_path / "adapter.gguf.partial").exists()

    tokens, llama_base = _last_logits_llamacpp(gguf_path, PROMPT)
    assert tokens == encoded["input_ids"][0].tolist()
    _, llama_adapted = _last_logits_llamacpp(gguf_path, PROMPT, out)

    def corr(a, b):
        return float(np.corrcoef(a, b)[0, 1])

    assert base.argmax() != adapted.argmax(), "the test adapter must change the next token"
    assert llama_adapted.argmax() == adapted.argmax()
    assert llama_base.argmax() == base.argmax()
    assert corr(llama_adapted, adapted) > 0.99 > corr(llama_adapted, base)
    assert corr(llama_base, base) > 0.99


def test_non_lora_adapter_directory_is_refused(tmp_path):
    from selfinstruct.backends.bundled import resolve_gguf
    from selfinstruct.errors import UserError
    from selfinstruct.training.lora_gguf import export_lora_gguf

    with pytest.raises(UserError, match="not a peft adapter"):
        export_lora_gguf(tmp_path, resolve_gguf("smollm2"), tmp_path / "x.gguf")
