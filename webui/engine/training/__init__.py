"""Training on the loaded checkpoint from a few images: a LoRA (kohya format, models/Lora) or a textual-inversion
embedding (A1111 format, embeddings/), as a job of the engine's queue. Nothing here changes the loaded model: the
run trains copies of its UNet and text encoder(s). The built-in model's own training (webui/training) uses these
parts too."""
from webui.engine.training.job import create_embedding, plan, submit
from webui.engine.training.request import (
           TrainingError,
           TrainingNotFound,
           TrainingRequest,
           TrainingResult,
)

__all__ = ["TrainingError", "TrainingNotFound", "TrainingRequest", "TrainingResult", "create_embedding", "plan",
           "submit"]
