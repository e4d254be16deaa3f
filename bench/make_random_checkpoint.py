"""Write full-size random-weight checkpoints (SD1.5 or SDXL architecture) as A1111-style single files.

Used by the benchmarks only; never committed (bench/*.safetensors is git-ignored).
    python bench/make_random_checkpoint.py --family sd1 --seed 0 --out bench/sd15-random-0.safetensors
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webui import resources  # noqa: E402
from webui.engine.checkpoints.ldm_export import save_single_file, to_ldm_state_dict  # noqa: E402


def build(family: str, seed: int, dtype: torch.dtype):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    folder = resources.config_dir(family)

    def cfg(name):
        return json.loads((folder / name / "config.json").read_text())

    unet = UNet2DConditionModel.from_config(cfg("unet")).to(dtype)
    vae = AutoencoderKL.from_config(cfg("vae")).to(dtype)
    te = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")).to(dtype)
    te2 = None
    if family == "sdxl":
        te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder / "text_encoder_2")).to(dtype)
    return unet, vae, te, te2


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--family", choices=["sd1", "sdxl"], default="sd1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fp32", action="store_true")
    p.add_argument("--device", default="cpu", help="where the random weights are made (cuda: much faster)")
    a = p.parse_args()
    t0 = time.perf_counter()
    dtype = torch.float32 if a.fp32 else torch.float16
    with torch.device(a.device):
        unet, vae, te, te2 = build(a.family, a.seed, dtype)
    sd = to_ldm_state_dict(unet, vae, te, te2, family=a.family)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_single_file(a.out, sd, {"modelspec.architecture": f"random {a.family}", "modelspec.title": a.out.stem})
    print(f"wrote {a.out} ({a.out.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
