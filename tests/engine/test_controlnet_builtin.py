"""The built-in model's ControlNet (models/ControlNet/latent-studio-shapes-control-v1.safetensors) has meaning:
a white-on-black mask at the bottom right puts the shape there, even when the prompt says top left."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.controlnet_eval import CONTROLNET, placement_rate

ROOT = Path(__file__).resolve().parents[2]
FILES = {"Stable-diffusion": "latent-studio-shapes-v1.safetensors", "ControlNet": f"{CONTROLNET}.safetensors",
         "Lora": "latent-studio-invert.safetensors"}


@pytest.fixture(scope="module")
def builtin_engine(tmp_path_factory):
    from webui.engine import Engine
    from webui.settings import Settings

    data = tmp_path_factory.mktemp("builtin-controlnet")
    for sub, name in FILES.items():
        (data / "models" / sub).mkdir(parents=True)
        (data / "models" / sub / name).symlink_to(ROOT / "models" / sub / name)
    engine = Engine(Settings(data_dir=data, preview_every=0))
    yield engine
    engine.close()


def _generate(engine, weight: float, lora: str = ""):
    from webui.engine import ControlNetUnit, GenerationRequest

    def generate(prompt, seed, control):
        unit = ControlNetUnit(model=CONTROLNET, image=control, weight=weight)
        req = GenerationRequest(prompt=prompt + lora, seed=seed, steps=20, save_images=False,
                                controlnet_units=[unit])
        return engine.generate(req).images[0]
    return generate


@pytest.mark.slow
def test_the_mask_wins_over_the_prompt(builtin_engine):
    without = placement_rate(_generate(builtin_engine, 0.0), n=4)  # weight 0: exactly the plain model
    assert without["positions"].count("top left") >= 3 and without["rate"] == 0, without  # the prompt: top left
    with_control = placement_rate(_generate(builtin_engine, 1.0), n=6)
    print("placement with control:", with_control, "without:", without)
    assert with_control["rate"] >= 4 / 6, with_control  # most seeds: bottom right, where the mask is
    # a LoRA (colour negative) on the same UNet: the control still moves the shape (weaker: the LoRA was trained
    # without it)
    with_lora = placement_rate(_generate(builtin_engine, 1.0, " <lora:latent-studio-invert:1>"), n=4)
    print("with the LoRA:", with_lora)
    assert with_lora["rate"] >= 2 / 4, with_lora
