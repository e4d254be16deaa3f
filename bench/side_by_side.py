"""What the side-by-side benchmarks share: the common flags, an Engine on the chosen model, a raw diffusers pipeline
on the same components, and the alternated timing loop (so machine load affects both sides alike)."""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT, NEGATIVE = "a small red circle at the top left on a blue background", "green"


def parser(size_help: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", default=None, help="checkpoint path or title (default: the built-in model)")
    p.add_argument("--size", type=int, default=None, help=size_help)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    return p


def engine_and_pipeline(ckpt: str | None):
    """(engine, its loaded model, a raw StableDiffusionPipeline with an Euler scheduler on the same components)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from webui.engine import Engine
    from webui.settings import ROOT, Settings

    extra = [Path(ckpt).resolve().parent] if ckpt and Path(ckpt).exists() else []
    engine = Engine(Settings(data_dir=ROOT, ckpt_dirs=extra, outputs_dir=Path(tempfile.mkdtemp())))
    model = engine.load_checkpoint(Path(ckpt).stem if ckpt else None)
    comps = {k: model.components[k] for k in ("unet", "vae", "text_encoder", "tokenizer")}
    raw = StableDiffusionPipeline(**comps, scheduler=EulerDiscreteScheduler.from_config(model.scheduler_config),
                                  safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    raw.set_progress_bar_config(disable=True)
    return engine, model, raw


def alternate(ours, baseline, rounds: int) -> tuple[float, float]:
    """Median seconds of ours(seed) and baseline(seed), after a warm-up, taking turns which goes first."""
    ours(0), baseline(0)
    t_ours, t_base = [], []
    for r in range(rounds):
        order = ((ours, t_ours), (baseline, t_base))
        for fn, acc in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            fn(r + 1)
            acc.append(time.perf_counter() - t)
    return statistics.median(t_ours), statistics.median(t_base)
