"""What a training job is asked to do (TrainingRequest), what it made (TrainingResult), and its errors."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webui.engine.requests import NotFoundError, RequestError

METHODS = ("lora", "embedding")
LOSS_WEIGHTINGS = ("min-snr", "x0", "none")
NAME_OK = re.compile(r"^[^/\\:*?\"<>|\x00-\x1f]+$")


class TrainingError(RequestError):
    """Training cannot start or go on (bad input, no images, too little memory); the message says why."""


class TrainingNotFound(TrainingError, NotFoundError):
    """A file to resume from or a folder of images that does not exist."""


@dataclass
class TrainingRequest:
    """One LoRA or textual-inversion training run on the loaded (or named) checkpoint.

    Images come from `images` (PIL images, with optional `captions` in the same order) or from the folder
    `image_dir` (captions in a `.txt` beside each image, as kohya reads them). A field left at None takes the
    default for the model (see `training_defaults`)."""

    method: str  # "lora" | "embedding"
    name: str  # the file name to write (without extension): <lora:name:1>, or the embedding's trigger word
    image_dir: Path | None = None
    images: list = field(default_factory=list)
    captions: list[str] | None = None
    caption_extension: str = ".txt"
    trigger: str = ""  # LoRA: put before every caption (kohya's class/instance token); stored as trigger word
    class_prompt: str = ""  # the caption of images without a .txt (LoRA), e.g. "a photo of a dog"
    init_text: str = "*"  # embedding: the words its vectors start from (A1111)
    num_vectors: int = 1  # embedding: vectors per token (A1111's num_vectors_per_token)
    template: str = "[name], [filewords]"  # embedding: caption template(s), one a line: [name] and [filewords]
    shuffle_tags: bool = False  # shuffle the comma-separated tags of each caption every step
    tag_dropout: float = 0.0  # leave out each tag with this chance every step
    steps: int | None = None  # the total steps (a resumed run continues up to this many)
    learning_rate: float | str | None = None  # a number or A1111's schedule "0.005:100, 1e-3:1000, 1e-5"
    batch_size: int | None = None
    rank: int | None = None  # LoRA dim
    alpha: float | None = None  # LoRA alpha (default: the rank, i.e. scale 1)
    train_text_encoder: bool = True  # LoRA: also the text encoder(s) (kohya's default)
    seed: int = -1
    resolution: int | None = None  # square side; default the model's native size
    buckets: bool = False  # keep aspect ratios: images go to the nearest of a few sizes of about resolution**2 area
    flip: bool = False  # random horizontal flips
    noise_offset: float = 0.05
    loss_weighting: str | None = None  # "min-snr" (gamma below), "x0" (clamp(1/SNR, 1, 100)), "none"; default per model
    min_snr_gamma: float = 5.0
    gradient_checkpointing: bool | None = None  # default: on for full-size models, off for small ones
    sample_every: int = 0  # steps between sample images (0: none)
    sample_prompt: str = ""  # default: the trigger word with the first caption
    sample_seed: int = 1234
    sample_steps: int = 20
    save_every: int = 0  # steps between saves of the file (0: only at the end)
    resume: bool = False  # continue from the saved file (and its .optim state beside it)
    overwrite: bool = False
    checkpoint: str | None = None  # a checkpoint title/name; default the loaded one

    def __post_init__(self):
        self.name = (self.name or "").strip()
        if self.image_dir is not None:
            self.image_dir = Path(self.image_dir)


@dataclass
class TrainingResult:
    method: str
    name: str
    path: Path  # the file written
    steps: int  # steps done in total (a resumed run counts the earlier ones)
    interrupted: bool
    losses: list[tuple[int, float]]
    samples: list[tuple[int, Any]]  # (step, PIL image)
    metadata: dict
    seconds: float
    checkpoint: str


def check_name(name: str, what: str) -> str:
    if not name or name in (".", "..") or name.startswith(".") or not NAME_OK.match(name) or len(name) > 120:
        raise TrainingError(f"{what} name {name!r} cannot be a file name: use letters, digits, '-' and '_'")
    return name


def parse_learning_rate(value: float | str, steps: int) -> list[tuple[float, int]]:
    """A1111's learning-rate schedule: "0.005" or "0.005:100, 1e-3:1000, 1e-5" -> [(rate, until_step), ...]."""
    if isinstance(value, (int, float)):
        pairs = [(float(value), steps)]
    else:
        pairs = []
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            rate, _, until = part.partition(":")
            try:
                pairs.append((float(rate), int(until) if until.strip() else steps))
            except ValueError:
                raise TrainingError(f"learning rate {value!r}: expected a number or 'rate:step, rate:step, rate'") \
                    from None
    if not pairs or any(not math.isfinite(r) or r <= 0 for r, _ in pairs):
        raise TrainingError(f"learning rate {value!r} must be positive")
    return pairs


def rate_at(schedule: list[tuple[float, int]], step: int) -> float:
    for rate, until in schedule:
        if step < until:
            return rate
    return schedule[-1][0]
