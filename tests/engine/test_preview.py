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


@pytest.mark.skipif(not BUILTIN, reason="built-in model not found")
def test_preview_shows_the_picture_being_made(tmp_path):
    """Preview of picture A's latents is closer to A's real decode than to picture B's, in every case."""
    from webui.engine.facade import Engine
    from webui.settings import Settings

    eng = Engine(Settings(data_dir=tmp_path, ckpt_dirs=[BUILTIN[0].parent]))
    try:
        model = eng.load_checkpoint(BUILTIN[0].stem)
        vae = model.components["vae"]
        lats, fulls = [], []
        for prompt in ("a large red square at the center on a blue background",
                       "a small white circle at the top left on a black background"):
            r = eng.generate(GenerationRequest(prompt=prompt, seed=1, steps=10, save_images=False, sampler_name="Euler"))
            img = torch.from_numpy(np.asarray(r.images[0], dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
            with torch.no_grad():
                lat = vae.encode(img).latent_dist.mean * vae.config.scaling_factor
            lats.append(lat)
            fulls.append(np.asarray(decode_latents(model, lat, eng.device)[0].resize((8, 8)), dtype=np.float32))
        for a, b in ((0, 1), (1, 0)):
            prev = np.asarray(latent_preview(model, lats[a]).resize((8, 8)), dtype=np.float32)
            assert np.abs(prev - fulls[a]).mean() < np.abs(prev - fulls[b]).mean()
    finally:
        eng.close()
