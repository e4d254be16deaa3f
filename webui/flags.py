"""Command-line flags (A1111 names) and what they mean as Settings; shared by `app.py generate` (webui.cli) and the
web server (webui.server), so neither has to import the other."""
from __future__ import annotations

import argparse
from pathlib import Path

from webui.settings import ROOT, Settings, load_user_settings


def _at_least_one(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (the loaded checkpoint counts), got {n}")
    return n


def add_common_flags(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """Folder, device and checkpoint flags; ``defaults=False`` leaves unset flags out of the result."""
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    g = p.add_argument_group("folders")
    g.add_argument("--data-dir", type=Path, default=d(ROOT), help="base folder for models/, embeddings/, outputs/, cache/")
    g.add_argument("--models-dir", default=d(None), type=Path, help="folder holding Stable-diffusion/, Lora/, VAE/, wildcards/")
    g.add_argument("--ckpt-dir", type=Path, action="append", default=d([]), help="extra checkpoint folder (repeatable)")
    g.add_argument("--vae-dir", type=Path, action="append", default=d([]), help="extra VAE folder")
    g.add_argument("--lora-dir", type=Path, action="append", default=d([]), help="extra LoRA folder")
    g.add_argument("--upscaler-dir", type=Path, action="append", default=d([]),
                   help="extra folder of upscaler models (.pth, .safetensors)")
    g.add_argument("--gfpgan-models-path", type=Path, action="append", default=d([]),
                   help="extra folder of GFPGAN face restoration models")
    g.add_argument("--codeformer-models-path", type=Path, action="append", default=d([]),
                   help="extra folder of CodeFormer face restoration models")
    g.add_argument("--embeddings-dir", default=d(None), type=Path, help="textual-inversion embeddings folder")
    g.add_argument("--outdir", default=d(None), type=Path, help="outputs folder (default: outputs/)")
    g = p.add_argument_group("device and memory")
    g.add_argument("--device", default=d("auto"), help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    g.add_argument("--precision", choices=["auto", "fp16", "fp32"], default=d("auto"), help="auto: fp16 on CUDA, fp32 elsewhere")
    g.add_argument("--no-half", action="store_true", default=d(False), help="same as --precision fp32")
    g.add_argument("--xformers", action="store_true", default=d(False), help="use xformers attention when CUDA and xformers really work")
    g.add_argument("--medvram", action="store_true", default=d(False), help="CUDA: keep only the running model part on the GPU")
    g.add_argument("--lowvram", action="store_true", default=d(False), help="CUDA: sequential offload, slowest, least VRAM")
    g.add_argument("--attention-slicing", action="store_true", default=d(False), help="compute attention in slices (less memory)")
    g = p.add_argument_group("checkpoints")
    g.add_argument("--ckpt", default=d(None), help="checkpoint to load first (title, name or path)")
    g.add_argument("--checkpoint-cache", default=d(None), type=_at_least_one, help="checkpoints kept in RAM (default 1)")


def add_server_flags(p: argparse.ArgumentParser) -> None:
    """Web server flags (A1111 names); used only when no subcommand is given (see webui.server.serve)."""
    g = p.add_argument_group("server")
    g.add_argument("--listen", action="store_true", help="serve on all network interfaces (0.0.0.0), not only 127.0.0.1")
    g.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    g.add_argument("--share", action="store_true", help="also make a public Gradio share link (needs the internet)")
    g.add_argument("--auth", help="log-in for the UI (and the API): user:pass[,user2:pass2]")
    g.add_argument("--auth-file", type=Path, help="file of user:pass entries (one per line or comma separated)")
    g.add_argument("--api", action="store_true", help="also serve the REST API (/sdapi/v1, docs at /docs)")
    g.add_argument("--api-auth", help="HTTP Basic log-in for the API only: user:pass[,user2:pass2]")
    g.add_argument("--nowebui", action="store_true", help="serve only the REST API, no web UI")
    g.add_argument("--cors-allow-origins", help="comma-separated origins (http://host:port) whose pages may call "
                   "this server from a browser")
    g.add_argument("--cors-allow-origins-regex", help="origins matching this regular expression may too")
    g.add_argument("--freeze-settings", action="store_true", help="settings cannot be changed from the UI or API")
    g.add_argument("--hide-ui-dir-config", action="store_true", help="folders cannot be changed from the UI "
                   "(always so with --listen or --share)")


def settings_from_args(args: argparse.Namespace) -> tuple[Settings, str | None]:
    s = Settings(data_dir=args.data_dir)
    s, notice = load_user_settings(s)
    changes = dict(
        models_dir=args.models_dir, ckpt_dirs=list(args.ckpt_dir), vae_dirs=list(args.vae_dir),
        lora_dirs=list(args.lora_dir), upscaler_dirs=list(args.upscaler_dir),
        gfpgan_dirs=list(args.gfpgan_models_path), codeformer_dirs=list(args.codeformer_models_path), embeddings_dir=args.embeddings_dir, device=args.device,
        precision="fp32" if args.no_half else args.precision, xformers=args.xformers, medvram=args.medvram,
        lowvram=args.lowvram, attention_slicing=args.attention_slicing, ckpt=args.ckpt,
    )
    if args.outdir:
        changes["outputs_dir"] = args.outdir
    if args.checkpoint_cache is not None:
        changes["checkpoint_cache_size"] = args.checkpoint_cache
    flag = lambda name: bool(getattr(args, name, False))  # noqa: E731 - server flags; `generate` has none
    changes["freeze_settings"] = flag("freeze_settings")
    changes["lock_folders"] = flag("hide_ui_dir_config") or flag("listen") or flag("share")
    return s.with_overrides(**changes), notice


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py", description="Latent Studio: Stable Diffusion in your browser")
    add_common_flags(p)
    add_server_flags(p)
    sub = p.add_subparsers(dest="command")
    g = sub.add_parser("generate", help="generate images headless and print the saved paths")
    # Given after `generate`, these flags override; not given, they must not reset what came before it.
    add_common_flags(g, defaults=False)
    g.add_argument("--prompt", required=True)
    g.add_argument("--negative-prompt", default="")
    g.add_argument("--steps", type=int)
    g.add_argument("--sampler", help="A1111 sampler name, e.g. 'Euler a', 'DPM++ 2M Karras'")
    g.add_argument("--scheduler", help="schedule type: Automatic, Uniform, Karras, Exponential, ...")
    g.add_argument("--cfg-scale", type=float)
    g.add_argument("--seed", type=int, default=-1)
    g.add_argument("--subseed", type=int, default=-1)
    g.add_argument("--subseed-strength", type=float, default=0.0)
    g.add_argument("--width", type=int, help="default: the model's native size")
    g.add_argument("--height", type=int)
    g.add_argument("--batch-size", type=int, default=1)
    g.add_argument("--n-iter", type=int, default=1)
    g.add_argument("--clip-skip", type=int, default=1)
    g.add_argument("--init-image", type=Path, help="img2img: the starting image")
    g.add_argument("--resize-mode", type=int, default=0, help="0 just resize, 1 crop and resize, 2 resize and fill")
    g.add_argument("--denoising-strength", type=float, default=0.75)
    return p
