"""Where an accelerator keeps what it built for one model: `LoadedModel.accelerated`, a dict by accelerator name."""
from __future__ import annotations


def model_state(model, name: str, factory):
    """This accelerator's state for one model, made on first use."""
    if model.accelerated is None:
        model.accelerated = {}
    if name not in model.accelerated:
        model.accelerated[name] = factory()
    return model.accelerated[name]
