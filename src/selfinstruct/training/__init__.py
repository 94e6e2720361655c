"""Fine-tune a model on Self-Instruct data: ``finetune(FinetuneOptions(data=..., out=...))``.

==============  ==================================================================
``data``        read any export (alpaca, prompt-completion, chat, parquet) as examples
``tokenize``    token ids with the loss on the completion only, EOS appended
``collate``     right padding that keeps the -100 prompt labels
``manifest``    ``finetune.json``, and whether a re-run may resume a directory
``train``       the options and the run (Trainer, LoRA or full, outputs)
==============  ==================================================================

Importing this package does not import torch; :func:`finetune` does.
"""

from selfinstruct.training.train import FinetuneOptions, FinetuneResult, finetune

__all__ = ["FinetuneOptions", "FinetuneResult", "finetune"]
