"""How much of a shape the built-in model's UNet keeps when it denoises one.

    python bench/builtin_shape_denoise.py [--n 24]

Drawn large shapes are encoded, noised to timestep t and denoised in one step
(the UNet's x0 prediction) with the right caption and with a caption naming
another shape; the pixel classifier then says whether the shape survived.  The
VAE round trip alone is the ceiling.  A UNet that keeps the shape only at the
lowest noise levels cannot draw shapes from scratch (the shape is decided at
mid noise), and no embedding on top of it can either: for the shipped model a
triangle survives t=100 about half the time and t=300 almost never, while its
colour and position are always right.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(ROOT / "models/Stable-diffusion/latent-studio-shapes-v1.safetensors"))
    p.add_argument("--n", type=int, default=24, help="pictures per shape")
    p.add_argument("--timesteps", default="100,200,300,500")
    args = p.parse_args()

    from tests.fixtures.builtin_generate import load_pipeline
    from tests.fixtures.shapes_classifier import classify
    from tests.fixtures.shapes_eval import balanced_samples
    from webui.training import shapes
    from webui.training.demo import IMAGE_SIZE, make_scheduler, to_images, to_tensor
    from webui.training.objective import tokenize

    pipe = load_pipeline(args.checkpoint, embeddings_dir=ROOT / "no-embeddings")
    vae, unet, text_encoder, tokenizer = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer
    scaling = vae.config.scaling_factor
    scheduler = make_scheduler()
    timesteps = [int(t) for t in args.timesteps.split(",")]
    print(f"{'shape':9} {'VAE only':>9} " + " ".join(f"{f't={t} right/wrong':>17}" for t in timesteps))
    for shape in shapes.SHAPES:
        samples = balanced_samples(args.n, 11)
        for s in samples:
            s.shape, s.size = shape, "large"
        other = shapes.SHAPES[(shapes.SHAPES.index(shape) + 1) % len(shapes.SHAPES)]
        rng = random.Random(0)
        drawn = [shapes.render(s, IMAGE_SIZE, rng) for s in samples]

        def kept(latents) -> float:
            images = to_images(vae.decode(latents / scaling).sample)
            return sum(classify(im).shape == shape for im in images) / len(images)

        with torch.no_grad():
            x0 = vae.encode(to_tensor(drawn)).latent_dist.mean * scaling
            cells = [f"{kept(x0):>9.0%}"]
            for t in timesteps:
                noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
                tt = torch.full((len(samples),), t)
                noisy = scheduler.add_noise(x0, noise, tt)
                abar = scheduler.alphas_cumprod[t]
                rates = []
                for word in (shape, other):
                    ids = tokenize(tokenizer, [shapes.caption(s, full=True, shape_word=word) for s in samples])
                    eps = unet(noisy, tt, text_encoder(ids).last_hidden_state).sample
                    rates.append(kept((noisy - (1 - abar).sqrt() * eps) / abar.sqrt()))
                cells.append(f"{rates[0]:>8.0%} / {rates[1]:<6.0%}")
        print(f"{shape:9} " + " ".join(cells))


if __name__ == "__main__":
    main()
