"""Fine-tune a base model on a Self-Instruct export: options, and the run itself.

Supervised fine-tuning with the transformers ``Trainer``, loss on the completion only
(the paper's prompt loss weight 0). LoRA by default (peft, every linear projection of the
transformer blocks; embeddings and ``lm_head`` stay frozen), ``full=True`` trains every
weight. The output directory::

    OUT/
      finetune.json   base, data (sha256, format, counts), options, loss history, versions
      checkpoints/    Trainer checkpoints; a re-run of the same command resumes the last
      adapter/        the LoRA adapter (peft ``save_pretrained``; LoRA only)
      merged/         full weights with the adapter merged in, and the tokenizer: a
                      transformers model directory ``load_causal_lm`` reads

Precision: float32 on CPU; on a CUDA GPU with bfloat16, LoRA loads the base in bfloat16
and full fine-tuning keeps float32 master weights, both under bf16 autocast.

torch, transformers and peft are imported inside :func:`finetune` only.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from selfinstruct.backends.hf_models import TRAIN_EXTRA_HINT, passive_openmp_threads
from selfinstruct.errors import UserError
from selfinstruct.files import now
from selfinstruct.training.manifest import FORMAT_VERSION, prepare_out_dir, write_manifest

LORA_LEARNING_RATE = 2e-4
FULL_LEARNING_RATE = 1e-5
WARMUP_RATIO = 0.03
DEVICES = ("auto", "cpu", "cuda")
# noise, not news: peft looks for the base's config.json beside a GGUF file (the
# vocabulary is unchanged either way); the Trainer calls a deprecated transformers name
QUIET_WARNINGS = (r"Could not find a config file", r".*is_gradient_checkpointing.*deprecated")


@dataclass
class FinetuneOptions:
    """Everything that decides a fine-tune. ``learning_rate=None`` picks 2e-4 for LoRA and
    1e-5 for full fine-tuning (a LoRA update is low-rank and starts at zero, so it needs
    a larger step than moving every pretrained weight)."""

    data: str
    out: str
    base: str = "smollm2"
    templates: str | None = None
    full: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    epochs: float = 2.0
    learning_rate: float | None = None
    max_seq_len: int = 512
    batch_size: int = 4
    grad_accum: int = 1
    seed: int = 42
    max_steps: int | None = None
    logging_steps: int = 5
    save_steps: int = 50
    save_total_limit: int = 2
    device: str = "auto"
    threads: int | None = None
    quiet: bool = False
    force_new: bool = False
    # the training mix (training/mix.py): the seed tasks added this many times, and a first
    # line put before the prompt of every example of ``data`` (the machine-written ones)
    seeds_upsample: int = 0
    synthetic_tag: str | None = None
    seeds: str | None = None  # the seed tasks file; None: the bundled seeds

    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return FULL_LEARNING_RATE if self.full else LORA_LEARNING_RATE

    def validate(self) -> None:
        positive = {"lora_r": self.lora_r, "lora_alpha": self.lora_alpha,
                    "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "logging_steps": self.logging_steps, "save_steps": self.save_steps,
                    "save_total_limit": self.save_total_limit}
        for name, value in positive.items():
            if value < 1:
                raise UserError(f"--{name.replace('_', '-')}: must be at least 1, not {value}")
        if self.max_seq_len < 8:
            raise UserError(f"--max-seq-len: must be at least 8, not {self.max_seq_len}")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"--max-steps: must be at least 1, not {self.max_steps}")
        if self.epochs <= 0:
            raise UserError(f"--epochs: must be positive, not {self.epochs}")
        if not 0 <= self.seeds_upsample <= 100:
            raise UserError(f"--with-seeds: must be between 0 and 100, not {self.seeds_upsample}")
        if self.synthetic_tag is not None and not self.synthetic_tag.strip():
            raise UserError("--synthetic-tag: the tag is empty")
        if not 0 <= self.lora_dropout < 1:
            raise UserError(f"--lora-dropout: must be in [0, 1), not {self.lora_dropout}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise UserError(f"--lr: must be positive, not {self.learning_rate}")
        if self.device not in DEVICES:
            raise UserError(f"--device: choose from {', '.join(DEVICES)}, not {self.device}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads: must be at least 1, not {self.threads}")


@dataclass
class FinetuneResult:
    out: Path
    steps: int
    resumed_from_step: int | None
    loss_history: list[dict] = field(default_factory=list)
    examples: int = 0
    wall_seconds: float = 0.0
    already_done: bool = False  # found finished with this schedule; nothing ran

    @property
    def adapter(self) -> Path | None:
        path = self.out / "adapter"
        return path if path.is_dir() else None

    @property
    def merged(self) -> Path:
        return self.out / "merged"

    @property
    def adapter_gguf(self) -> Path | None:
        """The LoRA as a llama.cpp adapter, written when the base is a GGUF model."""
        path = self.out / "adapter.gguf"
        return path if path.is_file() else None


@contextmanager
def _known_warnings_silenced():
    with warnings.catch_warnings():
        for message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


def _export_gguf_adapter(source, out: Path, full: bool) -> dict:
    """For a GGUF base, also write the LoRA as a llama.cpp adapter (``adapter.gguf``), so the
    fine-tuned model runs on the embedded backend: ``--model BASE --lora OUT/adapter.gguf``."""
    if full or not source.gguf_file:
        return {}
    from selfinstruct.training.lora_gguf import export_lora_gguf

    try:
        path = export_lora_gguf(out / "adapter", source.directory / source.gguf_file,
                                out / "adapter.gguf")
    except UserError as error:  # an architecture the exporter does not know: merged/ remains
        return {"adapter_gguf": None, "adapter_gguf_skipped": str(error)}
    return {"adapter_gguf": str(path)}


def _already_finished(previous: dict | None, options: FinetuneOptions,
                      out: Path) -> FinetuneResult | None:
    """The recorded result when ``out`` holds this very fine-tune, finished with the same
    schedule: a re-run (``selfinstruct loop`` resuming, say) then loads no model and
    trains nothing. A longer schedule (more --max-steps or --epochs) resumes instead."""
    if not previous or previous.get("status") != "done" or not (out / "merged").is_dir():
        return None
    recorded = previous.get("options", {})
    if (recorded.get("max_steps"), recorded.get("epochs")) != (options.max_steps,
                                                                options.epochs):
        return None
    return FinetuneResult(out, previous.get("steps", 0), previous.get("steps", 0),
                          previous.get("train_loss", []),
                          previous.get("data", {}).get("examples_used", 0), 0.0,
                          already_done=True)


def _require_training_stack():
    try:
        import peft
        import torch
        import transformers
    except ImportError as exc:
        raise UserError(f"fine-tuning needs torch, transformers and peft: {TRAIN_EXTRA_HINT} "
                        f"({exc.name} is missing)") from None
    return torch, transformers, peft


def finetune(options: FinetuneOptions) -> FinetuneResult:
    """Train, save adapter/merged weights and ``finetune.json``; resume when possible."""
    from selfinstruct.backends.hf_models import load_causal_lm, resolve_source
    from selfinstruct.prompts import PromptTemplates
    from selfinstruct.training.data import read_training_data

    started = time.monotonic()
    options.validate()
    out = Path(options.out)
    templates = PromptTemplates.load(options.templates) if options.templates else None
    data = read_training_data(options.data, templates, options.seed)
    if options.seeds_upsample or options.synthetic_tag:
        from selfinstruct.seeds import load_seeds
        from selfinstruct.training.mix import mix

        data = mix(data, load_seeds(options.seeds), options.seeds_upsample,
                   options.synthetic_tag, templates or PromptTemplates.load(), options.seed)
    source = resolve_source(options.base)
    manifest = _new_manifest(options, data, source.label)
    passive_openmp_threads()
    torch, transformers, peft = _require_training_stack()
    previous = prepare_out_dir(out, manifest, options.force_new)
    finished = _already_finished(previous, options, out)
    if finished is not None:
        return finished
    out.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(options.threads or _available_cores())
    device = _pick_device(options.device, torch)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    load_dtype = "bfloat16" if bf16 and not options.full else "float32"
    transformers.set_seed(options.seed)
    if options.quiet:
        transformers.utils.logging.disable_progress_bar()
    model, tokenizer = load_causal_lm(source, device=device, dtype=load_dtype)
    _make_trainable(model, source.label)
    tokenizer.padding_side = "right"
    encoded = _encode(data, tokenizer, options)
    if not options.full:
        with _known_warnings_silenced():
            model = peft.get_peft_model(model, peft.LoraConfig(
                r=options.lora_r, lora_alpha=options.lora_alpha,
                lora_dropout=options.lora_dropout, target_modules="all-linear",
                task_type="CAUSAL_LM"))
    model.config.use_cache = False

    manifest["data"].update(examples_used=len(encoded.features), truncated=encoded.truncated,
                            dropped=encoded.dropped)
    manifest.update(device=device, dtype=load_dtype, bf16_autocast=bf16,
                    trainable_parameters=sum(p.numel() for p in model.parameters()
                                             if p.requires_grad))
    if previous:
        manifest["started_at"] = previous.get("started_at", manifest["started_at"])
    write_manifest(out, manifest)

    trainer = _make_trainer(transformers, model, tokenizer, encoded.features, options,
                            out / "checkpoints", device, bf16)
    checkpoint = transformers.trainer_utils.get_last_checkpoint(str(out / "checkpoints")) \
        if (out / "checkpoints").is_dir() else None
    resumed_from = _checkpoint_step(checkpoint)
    with _known_warnings_silenced():
        trainer.train(resume_from_checkpoint=checkpoint)
        _save_outputs(model, tokenizer, out, options.full)
    manifest.update(_export_gguf_adapter(source, out, options.full))
    history = [{"step": e["step"], "loss": e["loss"]}
               for e in trainer.state.log_history if "loss" in e]
    wall = time.monotonic() - started
    manifest.update(status="done", steps=trainer.state.global_step,
                    max_steps=trainer.state.max_steps, resumed_from_step=resumed_from,
                    train_loss=history, wall_seconds=round(wall, 2),
                    wall_seconds_total=round(wall + (previous or {}).get("wall_seconds_total",
                                                                         0.0), 2),
                    finished_at=now())
    write_manifest(out, manifest)
    return FinetuneResult(out, trainer.state.global_step, resumed_from, history,
                          len(encoded.features), wall)


def _make_trainable(model, label: str) -> None:
    """Drop the "quantized" mark a GGUF load leaves on a model whose weights it has already
    de-quantized to dense floats; the Trainer refuses to train (and save_pretrained to
    save) a model with that mark. Weights kept packed in GGUF blocks (transformers does
    that when the ``kernels`` package is installed) cannot be trained: say so."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    if getattr(quantizer, "packed_modules", None):
        raise UserError(f"{label}: transformers kept the GGUF weights packed (the 'kernels' "
                        "package is installed), and packed weights cannot be trained; "
                        "uninstall 'kernels' or give a transformers model directory")
    if getattr(quantizer.quantization_config, "quant_method", None) != "gguf":
        raise UserError(f"{label}: a quantized model "
                        f"({quantizer.quantization_config.quant_method}) cannot be fine-tuned "
                        "here; give float weights")
    quantizer.remove_quantization_config(model)


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may use, not the machine's
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pick_device(requested: str, torch) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch sees no CUDA GPU (CPU-only torch build?)")
    return requested


def _encode(data, tokenizer, options: FinetuneOptions):
    from selfinstruct.training.tokenize import encode_examples

    encoded = encode_examples(data.examples, tokenizer, options.max_seq_len)
    if not encoded.features:
        raise UserError(f"{data.path}: no example fits --max-seq-len {options.max_seq_len} "
                        f"(all {encoded.dropped} completions are longer); raise it")
    return encoded


def _make_trainer(transformers, model, tokenizer, features, options, checkpoints, device,
                  bf16):
    from selfinstruct.training.collate import CompletionCollator

    args = transformers.TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps or -1,
        learning_rate=options.resolved_learning_rate(),
        lr_scheduler_type="linear",
        warmup_steps=WARMUP_RATIO,
        weight_decay=0.0,
        logging_steps=options.logging_steps,
        save_strategy="steps",
        save_steps=options.save_steps,
        save_total_limit=options.save_total_limit,
        seed=options.seed,
        bf16=bf16,
        use_cpu=device == "cpu",
        disable_tqdm=options.quiet,
        report_to="none",
        remove_unused_columns=False,
        dataloader_pin_memory=device == "cuda",
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=features,
                                   data_collator=CompletionCollator(tokenizer.pad_token_id),
                                   processing_class=tokenizer)
    if options.quiet:  # without tqdm the Trainer prints each log line instead
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
    return trainer


def _checkpoint_step(checkpoint: str | None) -> int | None:
    if not checkpoint:
        return None
    return int(Path(checkpoint).name.rsplit("-", 1)[-1])


def _save_outputs(model, tokenizer, out: Path, full: bool) -> None:
    """``adapter/`` (LoRA) and ``merged/``: written to a temporary name and renamed, so a
    crash while saving never leaves a half-written model where a whole one is expected."""
    import shutil

    model.eval()
    if not full:
        _replace_dir(out / "adapter", lambda tmp: model.save_pretrained(tmp))
        model = model.merge_and_unload()
    model.config.use_cache = True

    def save_merged(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    _replace_dir(out / "merged", save_merged)
    shutil.rmtree(out / ".saving", ignore_errors=True)


def _replace_dir(target: Path, write) -> None:
    import shutil

    tmp = target.parent / ".saving" / target.name
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    old = target.parent / ".saving" / f"{target.name}.old"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _new_manifest(options: FinetuneOptions, data, resolved: str) -> dict:
    recorded = asdict(options)
    recorded["learning_rate"] = options.resolved_learning_rate()
    for transient in ("quiet", "force_new"):
        recorded.pop(transient)
    return {
        "format_version": FORMAT_VERSION,
        "status": "running",
        "base": {"spec": options.base, "resolved": resolved},
        "data": {"path": str(data.path), "sha256": data.sha256, "format": data.format,
                 "examples": len(data.examples)},
        "method": "full" if options.full else "lora",
        "options": recorded,
        "seed": options.seed,
        "started_at": now(),
        "versions": _versions(),
    }


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("selfinstruct", "torch", "transformers", "peft", "accelerate"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found
