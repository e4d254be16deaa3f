"""The cheap live preview: filled every N steps during a job, and its colours track a real VAE decode."""
from pathlib import Path

import numpy as np
import pytest
import torch

from webui.engine.generation import decode_latents
from webui.engine.preview import latent_preview
from webui.engine.requests import GenerationRequest

BUILTIN = sorted((Path(__file__).resolve().parents[2] / "models" / "Stable-diffusion").glob("latent-studio-shapes*.safetensors"))


def test_preview_is_filled_every_n_steps(engine):
    job = engine.submit(GenerationRequest(prompt="x", steps=10, width=64, height=64, sampler_name="Euler"))
    job.result(timeout=120)
    assert job.state.preview is not None and job.state.preview.size == (64, 64) and job.state.preview_step == 10


@pytest.mark.skipif(not BUILTIN, reason="built-in model not trained yet")
def test_preview_colours_track_the_decoded_image(tmp_path):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    eng = Engine(Settings(data_dir=tmp_path, ckpt_dirs=[BUILTIN[0].parent]))
    try:
        model = eng.load_checkpoint(BUILTIN[0].stem)
        r = eng.generate(GenerationRequest(prompt="a large red square at the center on a blue background", seed=1,
                                           steps=10, save_images=False, sampler_name="Euler"))
        # encode the finished picture and preview its latents: the preview must show the same colours
        vae = model.components["vae"]
        img = torch.from_numpy(np.asarray(r.images[0], dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            lat = vae.encode(img).latent_dist.mean * vae.config.scaling_factor
        full = np.asarray(decode_latents(model, lat, eng.device)[0].resize((16, 16)), dtype=np.float32)
        prev = np.asarray(latent_preview(model, lat).resize((16, 16)), dtype=np.float32)
        assert np.abs(prev - full).mean() < 40  # out of 255
        for c in range(3):
            assert np.corrcoef(prev[..., c].ravel(), full[..., c].ravel())[0, 1] > 0.7
    finally:
        eng.close()
