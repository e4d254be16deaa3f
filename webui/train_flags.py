"""The `train-lora` and `train-embedding` subcommands' flags (run by webui.cli_train). Defaults left unset (None)
are the engine's, which depend on the model (webui/engine/training/defaults.py)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_train_parsers(sub, add_common_flags) -> None:
    """`add_common_flags`: webui.flags' folder/device flags (passed in: this module must not import webui.flags)."""
    lora = sub.add_parser("train-lora", help="train a LoRA on the loaded checkpoint from a folder of images")
    add_common_flags(lora, defaults=False)
    _shared(lora)
    g = lora.add_argument_group("LoRA")
    g.add_argument("--trigger", default="", help="trigger word put before every caption (and stored in the file)")
    g.add_argument("--class-prompt", default="", help="caption of images without a .txt caption file")
    g.add_argument("--rank", type=int, help="LoRA rank (dim); default 16 (8 for small models)")
    g.add_argument("--alpha", type=float, help="LoRA alpha; default rank/2 (the rank for small models)")
    g.add_argument("--no-text-encoder", dest="train_text_encoder", action="store_false",
                   help="train the UNet only (text embeddings are then computed once: less memory)")

    emb = sub.add_parser("train-embedding", help="train a textual-inversion embedding from a folder of images")
    add_common_flags(emb, defaults=False)
    _shared(emb)
    g = emb.add_argument_group("embedding")
    g.add_argument("--init-text", default="*", help="words the vectors start from (A1111's initialization text)")
    g.add_argument("--num-vectors", type=int, default=1, help="vectors per token (default 1)")
    g.add_argument("--template", default="[name], [filewords]",
                   help="caption template: [name] is the embedding, [filewords] the image's caption")


def _shared(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--images", type=Path, required=True, help="folder of training images (captions: a .txt beside "
                   "each image, as kohya reads them)")
    g.add_argument("--name", required=True, help="name of the file to write (without extension)")
    g.add_argument("--steps", type=int, help="total steps (default 1500; 300 for small models)")
    g.add_argument("--lr", help="learning rate, or A1111's schedule 'rate:step, rate:step, rate'")
    g.add_argument("--batch-size", type=int, help="images per step (default 1; 8 for small models)")
    g.add_argument("--seed", type=int, default=-1)
    g.add_argument("--resolution", type=int, help="training size in pixels (default: the model's native size)")
    g.add_argument("--buckets", action="store_true", help="keep aspect ratios (aspect-ratio buckets)")
    g.add_argument("--flip", action="store_true", help="random horizontal flips")
    g.add_argument("--caption-extension", default=".txt")
    g.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute activations to save memory (default: on for full-size models)")
    g.add_argument("--loss-weighting", choices=["min-snr", "x0", "none"], help="per-timestep loss weights: "
                   "min-snr (Min-SNR-5, the default for full-size models), x0 (clamp(1/SNR, 1, 100): how the built-in "
                   "model was trained, its default), none")
    g.add_argument("--sample-every", type=int, default=0, help="save a sample image every N steps (0: none)")
    g.add_argument("--sample-prompt", default="", help="prompt of the sample images (default: the first caption)")
    g.add_argument("--save-every", type=int, default=0, help="write the file every N steps too")
    g.add_argument("--resume", action="store_true", help="continue training the file NAME up to --steps")
    g.add_argument("--overwrite", action="store_true", help="replace an existing file of that name")
