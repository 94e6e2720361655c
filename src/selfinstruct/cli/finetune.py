"""``selfinstruct finetune``: fine-tune a base model on an export of the pipeline.

Parses options into :class:`selfinstruct.training.FinetuneOptions`, calls
:func:`selfinstruct.training.finetune`, and prints where the results are. torch,
transformers and peft are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from selfinstruct.cli.help import DefaultsFormatter

DEFAULTS_NOTE = ("Loss on the completion only (the paper's prompt loss weight 0), EOS "
                 "appended. LoRA unless --full. Re-running the same command into the same "
                 "--out resumes from the last checkpoint; --max-steps and --epochs may change "
                 "between runs, other options may not (--force-new starts over).")


_Formatter = DefaultsFormatter


def register(subparsers) -> None:
    from selfinstruct.training.train import DEVICES, FinetuneOptions

    d = FinetuneOptions(data="", out="")
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a model on exported instruction data (LoRA or full)",
        description="Fine-tune a base model on an export of the pipeline (alpaca, "
                    "prompt-completion, chat or parquet; detected from the file). "
                    + DEFAULTS_NOTE,
        formatter_class=_Formatter)
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="an export file of 'selfinstruct export'")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output directory: adapter/, merged/, checkpoints/, finetune.json")
    parser.add_argument("--base", default=d.base, metavar="MODEL",
                        help="smollm2, gemma-3-270m, a .gguf file or a transformers model "
                             "directory")
    parser.add_argument("--templates", metavar="DIR",
                        help="prompt templates directory whose finetuning_templates.json lays "
                             "out alpaca/parquet examples (default: the bundled templates)")
    data = parser.add_argument_group("training mix")
    data.add_argument("--with-seeds", type=int, dest="seeds_upsample", default=0, metavar="N",
                      help="add the seed tasks' instances N times (each copy in its own "
                           "template) to the data")
    data.add_argument("--synthetic-tag", metavar="TEXT",
                      help="a first line put before the prompt of every example of --data "
                           "(the machine-written ones); the seeds, and the prompts at "
                           "inference, go untagged. E.g. '[machine-written]'")
    data.add_argument("--seeds", metavar="FILE",
                      help="the seed tasks for --with-seeds (default: the bundled ones)")
    model = parser.add_argument_group("method")
    model.add_argument("--full", action="store_true",
                       help="full fine-tuning instead of LoRA")
    model.add_argument("--lora-r", type=int, default=d.lora_r, help="LoRA rank")
    model.add_argument("--lora-alpha", type=int, default=d.lora_alpha, help="LoRA alpha")
    model.add_argument("--lora-dropout", type=float, default=d.lora_dropout,
                       help="LoRA dropout")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=float, default=d.epochs, help="epochs (the paper: 2)")
    train.add_argument("--lr", type=float, dest="learning_rate",
                       help="peak learning rate (default: 2e-4 with LoRA, 1e-5 with --full)")
    train.add_argument("--max-seq-len", type=int, default=d.max_seq_len,
                       help="tokens per example; longer prompts are cut from the left, "
                            "examples whose completion does not fit are dropped (both counted "
                            "in finetune.json)")
    train.add_argument("--batch-size", type=int, default=d.batch_size,
                       help="examples per device step")
    train.add_argument("--grad-accum", type=int, default=d.grad_accum,
                       help="gradient accumulation steps")
    train.add_argument("--seed", type=int, default=d.seed,
                       help="seed for templates, LoRA init, shuffling")
    train.add_argument("--max-steps", type=int,
                       help="stop after this many optimizer steps (overrides --epochs)")
    train.add_argument("--logging-steps", type=int, default=d.logging_steps,
                       help="record the train loss every N steps")
    train.add_argument("--save-steps", type=int, default=d.save_steps,
                       help="write a checkpoint every N steps (and at the end)")
    train.add_argument("--save-total-limit", type=int, default=d.save_total_limit,
                       help="checkpoints kept")
    run = parser.add_argument_group("run")
    run.add_argument("--device", choices=DEVICES, default=d.device,
                     help="auto: CUDA (bf16) when torch sees a GPU, else CPU (float32)")
    run.add_argument("--threads", type=int,
                     help="CPU threads for torch (default: all cores this process may use)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--force-new", action="store_true",
                     help="discard the fine-tune in --out and start over")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from selfinstruct.files import check_outputs
    from selfinstruct.training.train import FinetuneOptions, finetune

    if args.quiet and "tqdm" not in sys.modules:
        os.environ["TQDM_DISABLE"] = "1"  # tqdm reads it once, at import
    options = FinetuneOptions(**{f.name: getattr(args, f.name) for f in fields(FinetuneOptions)})
    # the output rule; the folder itself is checked by training.manifest.prepare_out_dir
    check_outputs({"--out": args.out}, {"--data": args.data, "--templates": args.templates},
                  directories=("--out",))
    result = finetune(options)
    if result.already_done:
        print(f"already finished: {result.steps} steps in {result.out} (nothing to do)")
    losses = [entry["loss"] for entry in result.loss_history]
    loss = f"loss {losses[0]:.3f} -> {losses[-1]:.3f}, " if losses else ""
    resumed = (f" (resumed from step {result.resumed_from_step})"
               if result.resumed_from_step is not None else "")
    if not result.already_done:
        print(f"trained {result.steps} steps{resumed} on {result.examples} examples: {loss}"
              f"{result.wall_seconds:.0f} s")
    if result.adapter:
        print(f"adapter: {result.adapter}")
    if result.adapter_gguf:
        print(f"llama.cpp adapter: {result.adapter_gguf} (use it with --model {options.base} "
              f"--lora {result.adapter_gguf})")
    print(f"merged model: {result.merged} (use it with --model transformers:{result.merged})")
    print(f"details: {result.out / 'finetune.json'}")
    return 0
