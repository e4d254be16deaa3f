"""Train Latent Studio's built-in demo model from scratch, on a CPU.

    python -m webui.training.demo --seed 0

This is a complete (if tiny) Stable Diffusion v1 training run, in four stages:

1. **VAE** (``AutoencoderKL``): learns to squeeze a 64x64 RGB image into a
   4 x 8 x 8 latent (8x downsampling, like SD) and back.
2. **UNet + text encoder**: the denoiser learns to predict the noise that was
   added to a latent, given the caption's text features (cross-attention).
   The CLIP text encoder is trained from scratch together with it.  10% of
   the captions are dropped (empty prompt), so the same model also learns the
   unconditional prediction that classifier-free guidance needs.  The loss
   is weighted towards the noisy steps (see :func:`webui.training.objective.diffusion_loss`) and 30% of
   each batch comes from the noisiest timesteps (700-999), where layout and
   colours are decided.  A second, gentler phase (``--refine-steps``) then
   puts more effort on the shapes.  ``--resume`` continues this stage from
   the modules saved in ``--work-dir``.
3. **LoRA**: low-rank adapters on the UNet and the text encoder (peft), trained
   on colour-inverted images with the trigger word ``lsinvert``; saved in the
   kohya format that A1111 reads.
4. **Textual inversion**: two new token vectors, ``lsstar``, trained with
   everything else frozen, for a shape the base model never saw (a star).

The data is the synthetic shapes set of :mod:`webui.training.shapes`, drawn
on the fly.  Everything is reproducible from ``--seed``.  Results are written
in the formats the app loads: one single-file ``.safetensors`` checkpoint in
the original LDM layout (fp16), a kohya LoRA and an A1111 embedding.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from webui.training import shapes
from webui.training.networks import TokenInjector, peft_to_kohya, ti_input_ids, train_embedding, train_lora
from webui.training.objective import diffusion_loss, lr_at, tokenize

IMAGE_SIZE = 64           # native resolution in pixels
LATENT_SIZE = IMAGE_SIZE // 8
TEXT_DIM = 128            # CLIP hidden size (multiple of 64, heads = hidden / 64)
LORA_TRIGGER = "lsinvert"
LORA_NAME = "latent-studio-invert"   # file name: <lora:latent-studio-invert:1>
EMBEDDING_NAME = "lsstar"

# The Stable Diffusion v1 noise schedule (DDPM, "scaled_linear" betas).
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
    beta_schedule="scaled_linear", prediction_type="epsilon",
    clip_sample=False, steps_offset=1,
)


# --------------------------------------------------------------------------
# Model definitions (the same building blocks as SD v1, just much smaller)
# --------------------------------------------------------------------------

def vae_config(scaling_factor: float = 0.18215) -> dict:
    return dict(
        scaling_factor=scaling_factor,
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        # 4 levels -> 8x downsampling.  GroupNorm uses 32 groups (as SD), so
        # every level needs >= 64 channels: with one channel per group a flat
        # colour would be normalised away and the VAE could not tell colours.
        block_out_channels=[64, 64, 128, 128],
        layers_per_block=1, norm_num_groups=32, act_fn="silu",
        sample_size=IMAGE_SIZE,
    )


def unet_config() -> dict:
    return dict(
        sample_size=LATENT_SIZE, in_channels=4, out_channels=4,
        down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        block_out_channels=[64, 128, 192], layers_per_block=1,
        attention_head_dim=8,               # SD1 naming: 8 heads
        cross_attention_dim=TEXT_DIM, norm_num_groups=32,
        # A UNet has no position embedding: it can only tell where a pixel is
        # from the zero padding of its convolutions.  With a 9x9 first layer on
        # the 8x8 latent every pixel sees the border at its own distance, so
        # "at the top left" can be tied to a place from the first layer on.
        conv_in_kernel=9,
    )


def text_config() -> dict:
    return dict(
        vocab_size=49408, hidden_size=TEXT_DIM, intermediate_size=4 * TEXT_DIM,
        num_hidden_layers=3, num_attention_heads=TEXT_DIM // 64,
        max_position_embeddings=77, hidden_act="quick_gelu",
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    )


def build_models():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    return (AutoencoderKL(**vae_config()), UNet2DConditionModel(**unet_config()),
            CLIPTextModel(CLIPTextConfig(**text_config())))


def make_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SCHEDULER_CONFIG)


def load_tokenizer():
    from webui.resources import clip_tokenizer

    return clip_tokenizer()


def checkpoint_scaling_factor(path: str | os.PathLike) -> float:
    """The VAE scaling factor stored in a checkpoint's metadata (SD's 0.18215
    when there is none)."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), "pt") as f:
        meta = f.metadata() or {}
    return float(meta.get("latent_studio.vae_scaling_factor", 0.18215))


def write_diffusers_config(folder: str | os.PathLike, scaling_factor: float = 0.18215) -> Path:
    """A diffusers pipeline folder with configs only (no weights).

    ``StableDiffusionPipeline.from_single_file(ckpt, config=folder)`` uses it
    to build the modules for the shipped single-file checkpoint; pass the
    checkpoint's :func:`checkpoint_scaling_factor`.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig

    folder = Path(folder)
    for sub in ("unet", "vae", "text_encoder", "scheduler"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    UNet2DConditionModel.from_config(unet_config()).save_config(folder / "unet")
    AutoencoderKL.from_config(vae_config(scaling_factor)).save_config(folder / "vae")
    DDPMScheduler.from_config(SCHEDULER_CONFIG).save_config(folder / "scheduler")
    CLIPTextConfig(**text_config(), architectures=["CLIPTextModel"]).save_pretrained(folder / "text_encoder")
    load_tokenizer().save_pretrained(folder / "tokenizer")
    index = {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None], "safety_checker": [None, None],
        "requires_safety_checker": False,
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


# --------------------------------------------------------------------------
# Data helpers
# --------------------------------------------------------------------------

def to_tensor(images) -> torch.Tensor:
    """PIL images -> float tensor in [-1, 1], shape [B, 3, H, W]."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0


def to_images(x: torch.Tensor):
    from PIL import Image

    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in arr]


def save_grid(images, path, cols=8):
    from PIL import Image

    w, h = images[0].size
    rows = math.ceil(len(images) / cols)
    grid = Image.new("RGB", (cols * w, rows * h))
    for i, im in enumerate(images):
        grid.paste(im, ((i % cols) * w, (i // cols) * h))
    grid.save(path)


# --------------------------------------------------------------------------
# Stage 1: the VAE
# --------------------------------------------------------------------------

def train_vae(vae, steps, rng, batch=8, lr=5e-4, kl_weight=1e-6, fg_weight=4.0, preview=None):
    """Reconstruction (L1 + L2) of the posterior mean, with a tiny KL term
    that keeps the latents well-behaved (centred, bounded).  Decoding the
    mean rather than a sample makes this short training converge much faster;
    the diffusion model only ever uses the means anyway.

    It trains on busy scenes (several shapes, stars and inverted colours
    included: it is a general-purpose image codec), and pixels that differ
    from the background weigh ``1 + fg_weight``: otherwise the flat
    background dominates the loss and the shapes are learnt last."""
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    vae.train()
    bar = tqdm(range(steps), desc="vae", dynamic_ncols=True)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup=50)
        scenes = [shapes.render_scene(rng, IMAGE_SIZE, invert=rng.random() < 0.2) for _ in range(batch)]
        x = to_tensor([im for im, _ in scenes])
        bg = torch.tensor([b for _, b in scenes], dtype=torch.float32)[:, :, None, None] / 127.5 - 1
        weight = 1.0 + fg_weight * ((x - bg).abs().sum(1, keepdim=True) > 0.1).float()
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.mean).sample
        err = (rec - x).abs() + (rec - x) ** 2
        loss = (weight * err).mean() / weight.mean() + kl_weight * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if preview and (step + 1) % 100 == 0:
            save_vae_preview(vae, preview)
            vae.train()
    vae.eval()
    return vae


@torch.no_grad()
def save_vae_preview(vae, path):
    vae.eval()
    rng = random.Random(1)
    imgs = [shapes.render(shapes.random_sample(rng, shapes.SHAPES + ("star",)), IMAGE_SIZE, rng)
            for _ in range(8)]
    rec = to_images(vae.decode(vae.encode(to_tensor(imgs)).latent_dist.mean).sample)
    save_grid(imgs + rec, path)


@torch.no_grad()
def encode_dataset(vae, n, rng, batch=64, invert=False, shape_list=shapes.SHAPES):
    """Draw ``n`` samples and encode them once (latent means, unscaled)."""
    samples, latents = [], []
    for i in tqdm(range(0, n, batch), desc="encode", dynamic_ncols=True):
        batch_samples = [shapes.random_sample(rng, shapes=shape_list) for _ in range(min(batch, n - i))]
        images = [shapes.render(s, IMAGE_SIZE, rng, invert=invert) for s in batch_samples]
        latents.append(vae.encode(to_tensor(images)).latent_dist.mean)
        samples += batch_samples
    return samples, torch.cat(latents)


# --------------------------------------------------------------------------
# Stage 2: UNet + text encoder (the diffusion model itself)
# --------------------------------------------------------------------------

def train_unet(unet, text_encoder, tokenizer, scheduler, samples, latents, steps, rng,
               generator, batch=32, lr=5e-4, drop=0.1, warmup=100, max_weight=100.0):
    # One AdamW for both: the text encoder starts from scratch, so it needs
    # the same (high) learning rate as the UNet to learn anything useful.
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2, fused=True)
    unet.train()
    text_encoder.train()
    bar = tqdm(range(steps), desc="unet+te", dynamic_ncols=True)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup=warmup)
        idx = [rng.randrange(len(samples)) for _ in range(batch)]
        # Caption dropout: an empty prompt teaches the unconditional model (CFG).
        captions = ["" if rng.random() < drop else shapes.caption(samples[i], rng) for i in idx]
        loss = diffusion_loss(unet, text_encoder, scheduler, latents[idx],
                              tokenize(tokenizer, captions), generator, max_weight=max_weight,
                              high_frac=0.3)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    unet.eval()
    text_encoder.eval()


# --------------------------------------------------------------------------
# Sampling (a minimal DDIM loop with classifier-free guidance)
# --------------------------------------------------------------------------

@torch.no_grad()
def sample(unet, text_encoder, vae, tokenizer, prompts, scaling, seed=0, steps=20, cfg=7.0,
           negative=""):
    """``prompts``: texts, or already-tokenized ids ([n, 77])."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(**SCHEDULER_CONFIG, set_alpha_to_one=False)
    sched.set_timesteps(steps)
    ids = prompts if torch.is_tensor(prompts) else tokenize(tokenizer, prompts)
    n = ids.shape[0]
    cond = text_encoder(torch.cat([tokenize(tokenizer, [negative] * n), ids])).last_hidden_state
    x = torch.randn((n, 4, LATENT_SIZE, LATENT_SIZE), generator=torch.Generator().manual_seed(seed))
    for t in sched.timesteps:
        uncond, text = unet(torch.cat([x, x]), t, cond).sample.chunk(2)
        x = sched.step(uncond + cfg * (text - uncond), t, x).prev_sample
    return to_images(vae.decode(x / scaling).sample)


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------

def export_checkpoint(path, unet, vae, text_encoder, scaling, seed, times):
    from webui.engine.checkpoints.ldm_export import save_single_file, to_ldm_state_dict

    sd = to_ldm_state_dict(unet, vae, text_encoder, family="sd1", dtype=torch.float16)
    metadata = {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1",
        "modelspec.implementation": "diffusers",
        "modelspec.title": "Latent Studio Shapes v1",
        "modelspec.resolution": f"{IMAGE_SIZE}x{IMAGE_SIZE}",
        "modelspec.prediction_type": "epsilon",
        "modelspec.description": (
            "Tiny SD1-layout model trained from scratch on synthetic shapes: "
            "'a small red circle at the top left on a blue background'. "
            f"Shapes {', '.join(shapes.SHAPES)}; colours {', '.join(shapes.COLORS)}; "
            "sizes small/large; positions on a 3x3 grid. Built by python -m webui.training.demo."),
        "modelspec.date": time.strftime("%Y-%m-%d"),
        "latent_studio.vae_scaling_factor": f"{scaling:.6f}",
        "latent_studio.training_seed": str(seed),
        "latent_studio.training_seconds": json.dumps({k: round(v, 1) for k, v in times.items()}),
    }
    save_single_file(path, sd, metadata)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="models/Stable-diffusion/latent-studio-shapes-v1.safetensors")
    p.add_argument("--lora-out", default=f"models/Lora/{LORA_NAME}.safetensors")
    p.add_argument("--embedding-out", default=f"embeddings/{EMBEDDING_NAME}.safetensors")
    p.add_argument("--work-dir", default="outputs/training-demo",
                   help="intermediate modules and preview grids")
    p.add_argument("--vae-steps", type=int, default=1200)
    p.add_argument("--unet-steps", type=int, default=3600)
    p.add_argument("--lora-steps", type=int, default=1000)
    p.add_argument("--embedding-steps", type=int, default=300)
    p.add_argument("--cache-size", type=int, default=4096, help="encoded training images")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--unet-lr", type=float, default=1e-3, help="UNet and text encoder")
    p.add_argument("--max-weight", type=float, default=100.0,
                   help="cap of the noisy-step loss weight (lower: more effort on shape details)")
    p.add_argument("--refine-steps", type=int, default=1000,
                   help="a second UNet phase after --unet-steps, with the two settings below")
    p.add_argument("--refine-lr", type=float, default=4e-4)
    p.add_argument("--refine-max-weight", type=float, default=10.0)
    p.add_argument("--resume", action="store_true",
                   help="continue the unet stage from --work-dir's unet/ and text_encoder/ "
                        "(and its scaling.txt) instead of starting from scratch")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--stages", default="vae,unet,lora,embedding",
                   help="comma list; a skipped stage is loaded from --work-dir")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    stages = set(args.stages.split(","))
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    # One RNG per stage, so that re-running a single stage is reproducible too.
    rngs = {k: random.Random(f"{args.seed}-{k}") for k in ("vae", "unet", "lora", "embedding")}
    gens = {k: torch.Generator().manual_seed(args.seed * 1000 + i) for i, k in enumerate(rngs)}
    tokenizer = load_tokenizer()
    vae, unet, text_encoder = build_models()
    scheduler = make_scheduler()
    times: dict[str, float] = {}
    timings_path = work / "timings.json"
    if timings_path.exists():
        times.update(json.loads(timings_path.read_text()))

    def log_time(stage, t0, add=False):
        times[stage] = (times.get(stage, 0.0) if add else 0.0) + time.time() - t0
        timings_path.write_text(json.dumps(times, indent=2))
        tqdm.write(f"[time] {stage}: {times[stage]:.1f} s")

    # ---- 1. VAE
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    if "vae" in stages:
        t0 = time.time()
        train_vae(vae, args.vae_steps, rngs["vae"], preview=work / "vae_reconstruction.png")
        vae.save_pretrained(work / "vae")
        log_time("vae", t0)
        save_vae_preview(vae, work / "vae_reconstruction.png")
    else:
        vae = AutoencoderKL.from_pretrained(work / "vae")
    vae.eval().requires_grad_(False)

    # ---- 2. UNet + text encoder
    if "unet" in stages:
        t0 = time.time()
        if args.resume:  # continue from the saved modules; the time adds up
            unet = UNet2DConditionModel.from_pretrained(work / "unet")
            text_encoder = CLIPTextModel.from_pretrained(work / "text_encoder")
            rngs["unet"] = random.Random(f"{args.seed}-unet-resume")
        samples, raw = encode_dataset(vae, args.cache_size, rngs["unet"])
        # Scale the latents to unit variance (SD uses 0.18215 for its own VAE);
        # a resumed run keeps the factor the model was trained with.
        if args.resume:
            scaling = float((work / "scaling.txt").read_text())
        else:
            scaling = float(1.0 / raw.std())
        latents = raw * scaling
        # Two phases: the layout and colours (high learning rate, weight on the
        # noisiest steps), then a refinement that puts more effort on the shapes.
        phases = [(args.unet_steps, args.unet_lr, args.max_weight, 20 if args.resume else 100),
                  (args.refine_steps, args.refine_lr, args.refine_max_weight, 20)]
        for steps, lr, max_weight, warmup in phases:
            if steps:
                train_unet(unet, text_encoder, tokenizer, scheduler, samples, latents, steps,
                           rngs["unet"], gens["unet"], batch=args.batch, lr=lr, warmup=warmup,
                           max_weight=max_weight)
        unet.save_pretrained(work / "unet")
        text_encoder.save_pretrained(work / "text_encoder")
        (work / "scaling.txt").write_text(f"{scaling}\n")
        log_time("unet", t0, add=args.resume)
    else:
        unet = UNet2DConditionModel.from_pretrained(work / "unet")
        text_encoder = CLIPTextModel.from_pretrained(work / "text_encoder")
        scaling = float((work / "scaling.txt").read_text())
    unet.eval().requires_grad_(False)
    text_encoder.eval().requires_grad_(False)
    rng = random.Random(2)
    preview = [shapes.random_sample(rng) for _ in range(8)]
    prompts = [shapes.full_caption(s) for s in preview]
    (work / "unet_samples.txt").write_text("\n".join(prompts) + "\n")
    save_grid(sample(unet, text_encoder, vae, tokenizer, prompts, scaling), work / "unet_samples.png")
    export_checkpoint(args.out, unet, vae, text_encoder, scaling, args.seed, times)
    tqdm.write(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")

    # ---- 3. LoRA
    if "lora" in stages:
        from safetensors.torch import save_file

        t0 = time.time()
        inv_samples, inv_raw = encode_dataset(vae, args.cache_size // 2, rngs["lora"], invert=True)
        model, te = train_lora(unet, text_encoder, tokenizer, scheduler, inv_samples, inv_raw * scaling,
                               args.lora_steps, rngs["lora"], gens["lora"], trigger=LORA_TRIGGER)
        rank = 8
        kohya = {**peft_to_kohya(model, alpha=rank), **peft_to_kohya(te, alpha=rank, prefix="lora_te_")}
        tags = {LORA_TRIGGER: args.lora_steps}
        meta = {
            "ss_output_name": Path(args.lora_out).stem, "ss_base_model_version": "sd_v1",
            "ss_network_module": "networks.lora", "ss_network_dim": str(rank),
            "ss_network_alpha": str(rank), "ss_resolution": f"({IMAGE_SIZE}, {IMAGE_SIZE})",
            "ss_sd_model_name": Path(args.out).name, "ss_seed": str(args.seed),
            "ss_training_comment": "Inverts colours (photo negative). Trigger word: lsinvert.",
            "ss_tag_frequency": json.dumps({"shapes": {
                LORA_TRIGGER: len(inv_samples), **Counter(x.shape for x in inv_samples)}}),
            "ss_max_train_steps": str(args.lora_steps),
        }
        Path(args.lora_out).parent.mkdir(parents=True, exist_ok=True)
        save_file(kohya, args.lora_out, metadata=meta)
        with torch.no_grad():
            save_grid(sample(model, te, vae, tokenizer,
                             [f"{LORA_TRIGGER} {q}" for q in prompts], scaling),
                      work / "lora_samples.png")
        unet, text_encoder = model.unload(), te.unload()  # drop the adapters: back to the base
        log_time("lora", t0)
        tqdm.write(f"wrote {args.lora_out}")

    # ---- 4. Textual inversion
    if "embedding" in stages:
        from safetensors.torch import save_file

        t0 = time.time()
        star_samples, star_raw = encode_dataset(vae, args.cache_size // 2, rngs["embedding"],
                                                  shape_list=("star",))
        vectors = train_embedding(unet, text_encoder, tokenizer, scheduler, star_samples,
                                  star_raw * scaling, args.embedding_steps, rngs["embedding"],
                                  gens["embedding"])
        Path(args.embedding_out).parent.mkdir(parents=True, exist_ok=True)
        save_file({"emb_params": vectors.to(torch.float16).contiguous()}, args.embedding_out,
                  metadata={"name": EMBEDDING_NAME, "step": str(args.embedding_steps),
                            "sd_checkpoint_name": Path(args.out).stem})
        placeholder_id = tokenizer("zebra", add_special_tokens=False).input_ids[0]
        injector = TokenInjector(text_encoder, placeholder_id, vectors)
        with torch.no_grad():
            star_prompts = [shapes.caption(s, full=True, shape_word="zebra") for s in preview]
            ids = ti_input_ids(tokenizer, star_prompts, placeholder_id, len(vectors))
            imgs = sample(unet, text_encoder, vae, tokenizer, ids, scaling)
        injector.remove()
        save_grid(imgs, work / "embedding_samples.png")
        log_time("embedding", t0)
        tqdm.write(f"wrote {args.embedding_out}")

    total = sum(v for k, v in times.items() if k in ("vae", "unet", "lora", "embedding"))
    tqdm.write("[time] " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()) + f"; total {total:.0f}s")


if __name__ == "__main__":
    main()
