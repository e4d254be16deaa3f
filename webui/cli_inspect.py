"""`python app.py inspect --prompt ... --seed N [--steps N] [--walk-to-seed M] --out DIR`: one Inspect run, its
results written to DIR:

    image.png            the generated image (with its infotext)
    tokens.json          the token view (chunks of 77: BOS, 75 tokens, EOS/padding; weights; embeddings; BREAK)
    steps/NN.png         the predicted clean image (x0) after step NN; steps/noisy-NN.png the noisy latents
    steps.webp           the x0 frames as an animation; noise.png the noise level per step
    attention/<token>.png  each prompt token's cross-attention map over the image
    attention.npz        maps [tokens, latent h, latent w] (float32), tokens, positions in the sequence
    walk/NN.png, walk.webp, walk.png   the latent walk's frames, animation and strip (with --walk-to-*)
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

__all__ = ["add_inspect_parser", "parse_steps", "run_inspect"]


def add_inspect_parser(sub, add_common_flags) -> argparse.ArgumentParser:
    g = sub.add_parser("inspect", help="see inside one generation: tokens, every step, attention maps, walks")
    add_common_flags(g, defaults=False)
    g.add_argument("--prompt", required=True)
    g.add_argument("--negative-prompt", default="")
    g.add_argument("--seed", type=int, default=-1)
    g.add_argument("--steps", type=int)
    g.add_argument("--sampler", help="A1111 sampler name, e.g. 'Euler', 'DPM++ 2M'")
    g.add_argument("--scheduler", help="schedule type: Automatic, Karras, ...")
    g.add_argument("--cfg-scale", type=float)
    g.add_argument("--width", type=int, help="default: the model's native size")
    g.add_argument("--height", type=int)
    g.add_argument("--clip-skip", type=int, default=1)
    g.add_argument("--decode", choices=("preview", "full"), default="preview",
                   help="step pictures: the cheap linear preview (default) or a full VAE decode")
    g.add_argument("--layers", default="down,mid,up", help="cross-attention layer groups to capture (down,mid,up)")
    g.add_argument("--attention-steps", help="steps to capture, e.g. '1-5,8' (default: all)")
    g.add_argument("--no-attention", action="store_true", help="no attention maps")
    g.add_argument("--walk-to-seed", type=int, help="walk from --seed to this seed (slerp of the noise)")
    g.add_argument("--walk-to-prompt", help="walk from --prompt to this prompt (lerp of the conditioning)")
    g.add_argument("--frames", type=int, default=8, help="frames of the walk, ends included (default 8)")
    g.add_argument("--save", action="store_true", help="also save the results in outputs/inspect-images/")
    g.add_argument("--out", type=Path, required=True, help="folder to write the results to")
    return g


def parse_steps(text: str | None) -> list[int] | None:
    """'1-5,8' -> [1, 2, 3, 4, 5, 8]; None/empty -> None (all steps)."""
    if not text:
        return None
    steps: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"steps must look like '1-5,8' (got {text!r})")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        steps += range(lo, hi + 1)
    return sorted(set(steps))


def run_inspect(args: argparse.Namespace, settings_from_args) -> int:
    from webui.engine import (
        CheckpointLoadError,
        Engine,
        InspectRequest,
        RequestError,
        SamplerError,
    )
    from webui.extensions import load_extensions

    settings, notice = settings_from_args(args)
    if notice:
        print(notice, file=sys.stderr)
    engine = Engine(settings, hooks=load_extensions(settings).hooks)
    try:
        model = engine.load_checkpoint(args.ckpt)
        print(f"Model: {model.title} on {engine.device.describe()}", file=sys.stderr)
        result = engine.inspect(_request(engine, args, InspectRequest))
        write_results(result, args.out)
    except (CheckpointLoadError, RequestError, SamplerError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.close()
    print(args.out)
    return 0


def _request(engine, args, request_type):
    req = engine.request_defaults(prompt=args.prompt, negative_prompt=args.negative_prompt, seed=args.seed,
                                  width=args.width, height=args.height, clip_skip=args.clip_skip)
    for name in ("steps", "cfg_scale"):
        if getattr(args, name) is not None:
            setattr(req, name, getattr(args, name))
    if args.sampler:
        req.sampler_name = args.sampler
    if args.scheduler:
        req.scheduler = args.scheduler
    return request_type(req, decode=args.decode, attention=not args.no_attention,
                        attention_layers=[g.strip() for g in args.layers.split(",") if g.strip()],
                        attention_steps=parse_steps(args.attention_steps), walk_to_seed=args.walk_to_seed,
                        walk_to_prompt=args.walk_to_prompt, walk_frames=args.frames, save=args.save)


def write_results(result, out: Path) -> None:
    """The layout in the module's docstring; every PNG carries the run's infotext."""
    import numpy as np

    from webui.engine.image_files import save_image_with_infotext

    for folder, made in (("steps", result.steps), ("attention", result.attention), ("walk", result.walk)):
        if made:
            (out / folder).mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    info = result.infotext
    save_image_with_infotext(result.image, out / "image.png", info)
    (out / "tokens.json").write_text(json.dumps(result.tokens.as_dict(), indent=1), encoding="utf-8")
    if result.steps:
        for s in result.steps:
            save_image_with_infotext(s.x0, out / "steps" / f"{s.step:02d}.png", f"{info}, Inspect: x0 step {s.step}")
            save_image_with_infotext(s.noisy, out / "steps" / f"noisy-{s.step:02d}.png",
                                     f"{info}, Inspect: noisy latents step {s.step}")
        (out / "steps.webp").write_bytes(result.steps_animation())
        save_image_with_infotext(result.noise_plot(), out / "noise.png", f"{info}, Inspect: noise level per step")
        (out / "steps.json").write_text(json.dumps([{"step": s.step, "timestep": s.timestep, "sigma": s.sigma,
                                                     "x0_distance_to_final": s.distance} for s in result.steps],
                                                   indent=1), encoding="utf-8")
    if result.attention:
        for name, overlay in zip(token_file_names(result.attention), result.overlays()):
            save_image_with_infotext(overlay, out / "attention" / f"{name}.png", f"{info}, Inspect: attention {name}")
        np.savez(out / "attention.npz", maps=result.maps(), tokens=np.array([m.token.word for m in result.attention]),
                 positions=np.array([m.token.index for m in result.attention]),
                 mass=np.array([m.mass for m in result.attention], dtype=np.float32))
    if result.walk:
        for i, f in enumerate(result.walk):
            save_image_with_infotext(f.image, out / "walk" / f"{i:02d}.png", f.infotext)
        (out / "walk.webp").write_bytes(result.walk_animation())
        save_image_with_infotext(result.walk_strip(), out / "walk.png", result.walk[0].infotext)


def token_file_names(maps) -> list[str]:
    """A file name per token: the word (safe characters only), `word-2` ... for repeats."""
    seen: dict[str, int] = {}
    names = []
    for m in maps:
        base = re.sub(r"[^\w.-]+", "_", m.token.word).strip("._") or f"token{m.token.index}"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names
