"""``selfinstruct loop``: generate with a model, fine-tune it on that data, evaluate both.

Every option of ``selfinstruct run`` applies to the generation rounds; the fine-tuning
and evaluation options are below them. See :mod:`selfinstruct.loop` for the layout of
``--out``.
"""

from __future__ import annotations

import argparse

from selfinstruct.cli.options import add_config_options, config_from_args
from selfinstruct.progress import RichReporter, SilentReporter

# RunConfig fields the loop sets itself, per round or per arm
_LOOP_OWNED = ("model", "num_instructions", "seed", "lora", "n_ctx", "answer_lora")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "loop", help="the whole loop: generate, fine-tune, evaluate, compare",
        description="Run the pipeline with --model, fine-tune that model on its own data "
                    "(LoRA), evaluate the base and fine-tuned models on the same SuperNI "
                    "instances (and optionally the user-oriented tasks with a judge), and "
                    "write OUT/comparison.md. Re-run the same command to resume.")
    parser.add_argument("--out", required=True, help="loop directory (created or resumed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    loop = parser.add_argument_group("loop options")
    loop.add_argument("--rounds", type=int, default=1,
                      help="2 or more: each round generates with the previous round's "
                           "fine-tuned model (iterative self-instruct) (default: 1)")
    loop.add_argument("--seeds-only-arm", action="store_true",
                      help="also fine-tune on the seed tasks alone (the no-bootstrapping "
                           "ablation)")
    loop.add_argument("--round-zero", action="store_true",
                      help="fine-tune the model on the seed tasks first and let that adapter "
                           "write the instances (--answer-lora); needs a GGUF model")
    loop.add_argument("--train-with-seeds", action="store_true",
                      help="fine-tune each round on the seed tasks plus the generated data")
    loop.add_argument("--with-seeds", type=int, default=0, metavar="N", dest="seeds_upsample",
                      help="fine-tune each round on the generated data and the seed tasks N "
                           "times (as 'finetune --with-seeds')")
    loop.add_argument("--synthetic-tag", metavar="TEXT",
                      help="tag the generated examples' prompts with this first line (as "
                           "'finetune --synthetic-tag'); the seeds go untagged")
    train = parser.add_argument_group("fine-tuning options (see selfinstruct finetune)")
    train.add_argument("--epochs", type=float, help="epochs (default: 2, as in the paper)")
    train.add_argument("--max-steps", type=int, help="cap on optimizer steps")
    train.add_argument("--lr", type=float, dest="learning_rate", help="peak learning rate")
    train.add_argument("--batch-size", type=int, help="examples per step")
    train.add_argument("--max-seq-len", type=int, help="tokens per example")
    train.add_argument("--lora-r", type=int, help="LoRA rank")
    train.add_argument("--extra-finetune-seeds", type=_seed_list, default=[],
                       metavar="N,N,...",
                       help="fine-tune every fine-tuned arm again at these seeds (arms "
                            "NAME@N) and report the spread over seeds beside the effect; "
                            "the first fine-tune uses --seed")
    evaluation = parser.add_argument_group("evaluation options")
    evaluation.add_argument("--superni", metavar="FILE",
                            help="superni_test_en.jsonl; SuperNI is skipped without it")
    evaluation.add_argument("--superni-max-per-task", type=int, default=10,
                            help="instances per task (default: 10)")
    evaluation.add_argument("--superni-tasks", help="comma-separated task names (default: all)")
    evaluation.add_argument("--user-oriented", metavar="FILE",
                            help="user_oriented_instructions.jsonl; skipped without it")
    evaluation.add_argument("--user-oriented-limit", type=int,
                            help="only the first N user-oriented tasks")
    evaluation.add_argument("--user-oriented-max-tokens", type=int, default=512,
                            metavar="TOKENS",
                            help="max new tokens of each user-oriented response (default: 512)")
    evaluation.add_argument("--judge", metavar="MODEL",
                            help="a model that rates the user-oriented responses")
    evaluation.add_argument("--decontaminate-eval", action=argparse.BooleanOptionalAction,
                            default=True,
                            help="drop generated instructions and instances that overlap "
                                 "--superni and --user-oriented, as --decontaminate does "
                                 "(default: on)")
    add_config_options(parser)
    parser.set_defaults(handler=handle)


def _seed_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers, got {text!r}") from None


def handle(args: argparse.Namespace) -> int:
    from selfinstruct.errors import UserError
    from selfinstruct.loop import LoopOptions, run_loop

    config = config_from_args(args)
    if config.answer_lora:
        raise UserError("loop sets the answering adapter itself: use --round-zero instead of "
                        "--answer-lora")
    if config.base_url or config.lora:
        raise UserError("loop fine-tunes --model on this machine, so it takes a local model "
                        "(a bundled name, a .gguf file or transformers:DIR), without "
                        "--base-url or --lora")
    run_overrides = {k: v for k, v in config.as_dict().items() if k not in _LOOP_OWNED}
    finetune_overrides = {k: getattr(args, k) for k in
                          ("epochs", "max_steps", "learning_rate", "batch_size",
                           "max_seq_len", "lora_r") if getattr(args, k) is not None}
    if args.quiet:
        finetune_overrides["quiet"] = True
    from selfinstruct.files import check_outputs

    check_outputs({"--out": args.out}, directories=("--out",))
    tasks = ([t.strip() for t in args.superni_tasks.split(",") if t.strip()]
             if args.superni_tasks else None)
    options = LoopOptions(
        out=args.out, model=config.model, rounds=args.rounds,
        num_instructions=config.num_instructions, seed=config.seed, n_ctx=config.n_ctx,
        run_overrides=run_overrides, finetune_overrides=finetune_overrides,
        seeds_only_arm=args.seeds_only_arm, superni=args.superni,
        superni_max_per_task=args.superni_max_per_task, superni_tasks=tasks,
        user_oriented=args.user_oriented, user_oriented_limit=args.user_oriented_limit,
        user_oriented_max_tokens=args.user_oriented_max_tokens,
        judge_model=args.judge, decontaminate_eval=args.decontaminate_eval,
        round_zero=args.round_zero, train_with_seeds=args.train_with_seeds,
        extra_finetune_seeds=args.extra_finetune_seeds, seeds_upsample=args.seeds_upsample,
        synthetic_tag=args.synthetic_tag)
    result = run_loop(options, SilentReporter() if args.quiet else RichReporter())
    for step in result.steps:
        print(f"{step['step']}: {step['seconds']:.0f} s")
    if result.comparison is not None:
        from selfinstruct.evaluation.compare import render_markdown

        print(render_markdown(result.comparison), end="")
        print(f"comparison: {result.out / 'comparison.md'}")
    print(f"details: {result.out / 'loop.json'}")
    return 0
