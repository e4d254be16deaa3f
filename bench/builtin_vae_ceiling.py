"""What the built-in model's VAE can reproduce: the pixel classifier's shape and
colour accuracy on drawn pictures versus their VAE reconstructions.

    python bench/builtin_vae_ceiling.py [--n 24]

Whatever the reconstruction loses, no UNet or embedding can draw: this is the
ceiling of the whole model.  For the shipped model, large stars come back as
blobs (star class 0%), which is why the ``lsstar`` embedding cannot draw one.
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
    p.add_argument("--n", type=int, default=24, help="pictures per row of the table")
    args = p.parse_args()

    from tests.fixtures.builtin_generate import load_pipeline
    from tests.fixtures.shapes_classifier import classify
    from tests.fixtures.shapes_eval import balanced_samples
    from webui.training import shapes
    from webui.training.demo import IMAGE_SIZE, to_images, to_tensor

    vae = load_pipeline(args.checkpoint, embeddings_dir=ROOT / "no-embeddings").vae
    rng = random.Random(0)
    print(f"{'size':6} {'shapes':24} {'drawn shape/colour':>20} {'reconstructed':>15}")
    for size in shapes.SIZES:
        for shape_list in (shapes.SHAPES, ("star",)):
            samples = balanced_samples(args.n, 7, shape_list=shape_list)
            for s in samples:
                s.size = size
            drawn = [shapes.render(s, IMAGE_SIZE, rng) for s in samples]
            with torch.no_grad():
                rec = to_images(vae.decode(vae.encode(to_tensor(drawn)).latent_dist.mean).sample)
            cells = []
            for images in (drawn, rec):
                cs = [classify(im) for im in images]
                shape_acc = sum(c.shape == s.shape for c, s in zip(cs, samples)) / len(samples)
                color_acc = sum(c.color == s.color for c, s in zip(cs, samples)) / len(samples)
                cells.append(f"{shape_acc:.0%} / {color_acc:.0%}")
            print(f"{size:6} {','.join(shape_list):24} {cells[0]:>20} {cells[1]:>15}")


if __name__ == "__main__":
    main()
