"""Train the small ControlNet of the built-in shapes model, on a CPU.

    nice -n 5 python -m webui.training.controlnet --steps 1500

The control image is a white-on-black mask of the shape (antialiased edges),
so ``module: none`` with a hand-drawn white blob works: the output puts a
shape of the prompt's colour where the mask is.

How it is trained (the recipe of the ControlNet paper, scaled down):

* diffusers' ``ControlNetModel.from_unet`` copies the frozen base UNet's
  encoder (time embedding, down blocks, mid block) and adds zero-initialised
  1x1 "zero convolutions", so training starts from exactly the base model.
  The base UNet's first layer is a 9x9 convolution (see
  :func:`webui.training.demo.unet_config`); ControlNetModel's is always 3x3,
  so that one layer starts fresh.  The conditioning encoder is diffusers'
  default (16, 32, 96, 256 channels, three stride-2 steps: 64 px -> 8x8),
  the layout every SD ControlNet file has.
* Only the ControlNet learns; the UNet, VAE and text encoder stay frozen.
  The objective is the base model's (:func:`webui.training.objective.diffusion_loss`'s
  weighting) with the ControlNet's residuals added into the UNet.
* Captions: 30% are dropped (empty), so that the control also works on the
  unconditional half of classifier-free guidance and in guess mode; 25%
  name a *wrong* position, so the ControlNet learns to win over the prompt
  (the feature's test: a mask at the bottom right with a prompt that says
  top left).
* Half of each batch comes from the noisiest timesteps (700-999), where the
  layout is decided.

The result is written in the single-file layout A1111 users download
(``control_v11p_sd15_*.safetensors``: LDM names, fp16), see
:mod:`webui.engine.controlnet.ldm_layout`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from webui.training import shapes
from webui.training.demo import (
    IMAGE_SIZE,
    checkpoint_scaling_factor,
    load_tokenizer,
    make_scheduler,
    to_tensor,
)
from webui.training.objective import lr_at, sample_timesteps, tokenize

BASE = "models/Stable-diffusion/latent-studio-shapes-v1.safetensors"
OUT = "models/ControlNet/latent-studio-shapes-control-v1.safetensors"


def render_pair(sample: shapes.Sample, rng: random.Random, size: int = IMAGE_SIZE):
    """The picture of ``sample`` and its control mask (white shape on black), drawn at the same place."""
    state = rng.getstate()
    image = shapes.render(sample, size, rng)
    after = rng.getstate()
    rng.setstate(state)
    mask = shapes.render(dataclasses.replace(sample, color="white", background="black"), size, rng)
    rng.setstate(after)
    return image, mask_levels(mask)


def mask_levels(image):
    """Stretch the white/black of :data:`shapes.COLORS` (245/15) to 255/0, keeping the soft edges."""
    lo, hi = shapes.COLORS["black"][0], shapes.COLORS["white"][0]
    return image.convert("L").point(lambda v: max(0, min(255, round((v - lo) * 255 / (hi - lo))))).convert("RGB")


def to_control(images) -> torch.Tensor:
    """Control images -> [B, 3, H, W] in [0, 1] (what diffusers' ControlNet pipelines feed the model)."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2)


def load_base(path: str):
    from webui.engine.checkpoints.loader import load_single_file

    _, comps = load_single_file(Path(path), torch.float32)
    for name in ("unet", "vae", "text_encoder"):
        comps[name].eval().requires_grad_(False)
    return comps


def build_controlnet(unet):
    """``from_unet`` without its weight copy (its 3x3 conv_in cannot take the base's 9x9), then the rest."""
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
    for name in ("time_proj", "time_embedding", "down_blocks", "mid_block"):
        getattr(net, name).load_state_dict(getattr(unet, name).state_dict())
    return net


@torch.no_grad()
def encode_dataset(vae, n: int, rng: random.Random, batch: int = 64):
    samples, latents, controls = [], [], []
    for i in tqdm(range(0, n, batch), desc="encode", dynamic_ncols=True):
        chunk = [shapes.random_sample(rng) for _ in range(min(batch, n - i))]
        pairs = [render_pair(s, rng) for s in chunk]
        latents.append(vae.encode(to_tensor([p[0] for p in pairs])).latent_dist.mean)
        controls.append(to_control([p[1] for p in pairs]))
        samples += chunk
    return samples, torch.cat(latents), torch.cat(controls)


def training_caption(sample: shapes.Sample, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:
        return ""
    if r < 0.55:  # a wrong place in the text: the control has to win
        wrong = rng.choice([p for p in shapes.POSITIONS if p != sample.position])
        return shapes.caption(dataclasses.replace(sample, position=wrong), rng)
    return shapes.caption(sample, rng)


def control_loss(controlnet, unet, text_encoder, scheduler, latents, controls, input_ids, generator,
                 max_weight=100.0, high_frac=0.5):
    """The base model's weighted epsilon objective, with the ControlNet's residuals added into the UNet."""
    b = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator)
    t = sample_timesteps(b, generator, scheduler.config.num_train_timesteps, high_frac)
    noisy = scheduler.add_noise(latents, noise, t)
    with torch.no_grad():
        cond = text_encoder(input_ids).last_hidden_state
    down, mid = controlnet(noisy, t, cond, controlnet_cond=controls, return_dict=False)
    pred = unet(noisy, t, cond, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
    abar = scheduler.alphas_cumprod[t]
    weight = torch.clamp((1 - abar) / abar, min=1.0, max=max_weight)
    per_image = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
    return (weight * per_image).sum() / weight.sum()


def train(args):
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{args.seed}-controlnet")
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    comps = load_base(args.base)
    unet, vae, te = comps["unet"], comps["vae"], comps["text_encoder"]
    scaling = checkpoint_scaling_factor(args.base)
    tokenizer, scheduler = load_tokenizer(), make_scheduler()
    samples, raw, controls = encode_dataset(vae, args.cache_size, rng)
    latents = raw * scaling
    controlnet = build_controlnet(unet) if not args.resume else _load_work(work)
    controlnet.train()
    opt = torch.optim.AdamW(controlnet.parameters(), lr=args.lr, weight_decay=1e-2)
    t0 = time.time()
    bar = tqdm(range(args.steps), desc="controlnet", dynamic_ncols=True, mininterval=10)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, warmup=50)
        idx = [rng.randrange(len(samples)) for _ in range(args.batch)]
        ids = tokenize(tokenizer, [training_caption(samples[i], rng) for i in idx])
        loss = control_loss(controlnet, unet, te, scheduler, latents[idx], controls[idx], ids, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            controlnet.save_pretrained(work / "controlnet")
            (work / "progress.json").write_text(json.dumps(
                {"step": step + 1, "loss": loss.item(), "seconds": round(time.time() - t0, 1)}))
    return controlnet, time.time() - t0


def _load_work(work: Path):
    from diffusers import ControlNetModel

    return ControlNetModel.from_pretrained(work / "controlnet")


def export(controlnet, out: str, seconds: float, args) -> None:
    from webui.engine.controlnet.ldm_layout import save_controlnet

    meta = {
        "modelspec.title": "Latent Studio Shapes Control v1",
        "modelspec.architecture": "stable-diffusion-v1/controlnet",
        "modelspec.description": "ControlNet for latent-studio-shapes-v1: control image = white-on-black "
                                 "mask of the shape. Built by python -m webui.training.controlnet.",
        "latent_studio.training_seconds": f"{seconds:.0f}",
        "latent_studio.training_steps": str(args.steps),
        "latent_studio.training_seed": str(args.seed),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_controlnet(controlnet, out, metadata=meta)
    tqdm.write(f"wrote {out}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=BASE)
    p.add_argument("--out", default=OUT)
    p.add_argument("--work-dir", default="outputs/training-controlnet")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--cache-size", type=int, default=4096)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from --work-dir/controlnet")
    p.add_argument("--export-only", action="store_true", help="write --out from --work-dir/controlnet")
    args = p.parse_args(argv)
    if args.export_only:
        progress = json.loads((Path(args.work_dir) / "progress.json").read_text())
        args.steps = progress["step"]
        export(_load_work(Path(args.work_dir)), args.out, progress["seconds"], args)
        return
    controlnet, seconds = train(args)
    export(controlnet, args.out, seconds, args)


if __name__ == "__main__":
    main()
