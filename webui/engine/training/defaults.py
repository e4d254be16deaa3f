"""Training defaults that work for about 5 images: one set for full-size checkpoints (kohya's and A1111's usual
values) and one for small models such as the built-in one, whose UNet learns at a higher rate and whose steps are
cheap (a LoRA run on the built-in model takes a minute or two on a CPU)."""
from __future__ import annotations

from dataclasses import dataclass

SMALL_UNET = 100_000_000  # parameters: under this a model counts as small (the built-in one has ~6 M)


@dataclass(frozen=True)
class Defaults:
    steps: int
    learning_rate: float
    batch_size: int
    rank: int
    alpha: float
    gradient_checkpointing: bool
    loss_weighting: str = "min-snr"  # or "x0": clamp(1/SNR, 1, 100), how the built-in model itself was trained


FULL = {"lora": Defaults(steps=1500, learning_rate=1e-4, batch_size=1, rank=16, alpha=8, gradient_checkpointing=True),
        "embedding": Defaults(steps=1500, learning_rate=5e-3, batch_size=1, rank=0, alpha=0,
                              gradient_checkpointing=True)}
SMALL = {"lora": Defaults(steps=300, learning_rate=2e-3, batch_size=8, rank=8, alpha=8, gradient_checkpointing=False),
         "embedding": Defaults(steps=300, learning_rate=2e-2, batch_size=8, rank=0, alpha=0,
                               gradient_checkpointing=False)}


def training_defaults(method: str, unet_parameters: int) -> Defaults:
    return (SMALL if unet_parameters < SMALL_UNET else FULL)[method]
