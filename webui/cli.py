"""`python app.py`: parse the flags (webui.flags), then run the headless `generate` command or the server."""
from __future__ import annotations

import argparse
import logging
import sys

from webui.flags import build_parser, ignored_notice, parse_command_line, settings_from_args

log = logging.getLogger(__name__)
__all__ = ["build_parser", "main", "run_generate", "settings_from_args"]


def run_generate(args: argparse.Namespace) -> int:
    from concurrent.futures import wait

    from PIL import Image
    from tqdm import tqdm

    from webui.engine import CheckpointLoadError, Engine, RequestError, SamplerError
    from webui.extensions import load_extensions

    settings, notice = settings_from_args(args)
    if notice:
        print(notice, file=sys.stderr)
    engine = Engine(settings, hooks=load_extensions(settings).hooks)
    try:
        if args.vae_path:
            engine.select_vae(str(args.vae_path))
        model = engine.load_checkpoint(args.ckpt)
        print(f"Model: {model.title} ({model.spec.label}) on {engine.device.describe()}", file=sys.stderr)
        init = [Image.open(args.init_image)] if args.init_image else []
        req = engine.request_defaults(
            prompt=args.prompt, negative_prompt=args.negative_prompt, seed=args.seed, subseed=args.subseed,
            subseed_strength=args.subseed_strength, width=args.width, height=args.height,
            batch_size=args.batch_size, n_iter=args.n_iter, clip_skip=args.clip_skip, init_images=init,
            resize_mode=args.resize_mode, denoising_strength=args.denoising_strength)
        if args.steps:
            req.steps = args.steps
        if args.sampler:
            req.sampler_name = args.sampler
        if args.scheduler:
            req.scheduler = args.scheduler
        if args.cfg_scale is not None:
            req.cfg_scale = args.cfg_scale
        job = engine.submit(req)
        with tqdm(total=req.n_iter * req.steps, unit="step", file=sys.stderr) as bar:
            while not job.future.done():
                st = job.state
                total = st.job_count * (st.sampling_steps or req.steps)
                done = st.job_no * (st.sampling_steps or req.steps) + st.sampling_step
                if (bar.n, bar.total) != (done, total):
                    bar.total, bar.n = total, done
                    bar.refresh()
                wait([job.future], timeout=0.1)
            bar.n = bar.total
            bar.refresh()
        result = job.result()
    except (CheckpointLoadError, RequestError, SamplerError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.close()
    for path, seed in zip(result.paths, result.seeds):
        print(path)
    if result.interrupted:
        print("interrupted", file=sys.stderr)
    return 0


def command_line(argv: list[str] | None = None, environ=None) -> list[str]:
    """The flags as parse_command_line reads them (COMMANDLINE_ARGS first), for processes that parse them again."""
    import os

    from webui.flags import split_args

    extra = split_args((os.environ if environ is None else environ).get("COMMANDLINE_ARGS", ""))
    return extra + list(sys.argv[1:] if argv is None else argv)


def main(argv: list[str] | None = None, environ=None) -> int:
    """`argv` (default: sys.argv) after the flags in COMMANDLINE_ARGS of `environ` (default: os.environ)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_command_line(argv, environ)
    notice = ignored_notice(args)
    if notice:
        log.warning(notice)
    if args.command == "generate":
        return run_generate(args)
    if args.command in ("train-lora", "train-embedding"):
        from webui.cli_train import run_training

        return run_training(args)
    if args.command == "inspect":
        from webui.cli_inspect import run_inspect

        return run_inspect(args, settings_from_args)
    if args.command == "serve-ray":
        try:
            # ray is an optional extra: imported only here
            from webui.serving.ray_app import serve_ray
        except ImportError as exc:
            print(f"error: serve-ray needs Ray Serve ({exc}): pip install -r requirements-ray.txt -c requirements.txt",
                  file=sys.stderr)
            return 2
        return serve_ray(args, command_line(argv, environ))
    from webui.server import serve  # the web UI and the API

    return serve(args)
