"""The CPU fast path (--backend openvino) against a raw diffusers pipeline on the same model, side by side in one
run: 20 steps Euler with CFG at each size, the first-use cost (export + compile, paid once per checkpoint and LoRA
set; the compile once per size and start), and the PSNR of the fast path's image against our PyTorch path's for
the same seed. Target: fast path at or under 0.7x the raw diffusers time after the export.

    python bench/make_random_checkpoint.py --family sd1 --out bench/sd15-random-0.safetensors
    nice -n 5 python bench/cpu_fastpath.py --ckpt bench/sd15-random-0.safetensors --sizes 256 512 [--precision bf16]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

PROMPT, NEGATIVE = "a small red circle at the top left on a blue background", "green"  # as side_by_side.py


def psnr(a, b) -> float:
    x, y = (np.asarray(i, dtype=np.float64) for i in (a, b))
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def alternate(ours, baseline, rounds: int) -> tuple[float, float]:
    """Median seconds of each, taking turns which goes first (both paths were just run once: no warm-up)."""
    times: dict = {ours: [], baseline: []}
    for r in range(rounds):
        for fn in (ours, baseline) if r % 2 == 0 else (baseline, ours):
            t = time.perf_counter()
            fn(r + 2)
            times[fn].append(time.perf_counter() - t)
    return statistics.median(times[ours]), statistics.median(times[baseline])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", default="bench/sd15-random-0.safetensors")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=1, help="timed rounds per side after the first use")
    p.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    p.add_argument("--data-dir", type=Path, help="reuse this folder's cache/openvino (default: a fresh one, so the "
                   "export is measured)")
    a = p.parse_args()

    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from webui.engine import Engine, GenerationRequest
    from webui.settings import Settings

    ckpt = Path(a.ckpt).resolve()
    data = a.data_dir or Path(tempfile.mkdtemp(prefix="ls-fastpath-"))  # fresh: the export is measured
    engine = Engine(Settings(data_dir=data, device="cpu", backend="openvino", openvino_precision=a.precision,
                             ckpt_dirs=[ckpt.parent], outputs_dir=data / "outputs"))
    model = engine.load_checkpoint(ckpt.stem)
    backend = engine.device.accelerator
    comps = {k: model.components[k] for k in ("unet", "vae", "text_encoder", "tokenizer")}
    raw = StableDiffusionPipeline(**comps, scheduler=EulerDiscreteScheduler.from_config(model.scheduler_config),
                                  safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    raw.set_progress_bar_config(disable=True)
    fast_device, plain_device = engine.device, dataclasses.replace(engine.device, accelerator=None)
    print(f"model {model.title} ({model.spec.label}), {a.steps} steps Euler, CFG 7, torch threads "
          f"{torch.get_num_threads()}, OpenVINO {backend.ov.__version__} precision {a.precision}")
    rows = []
    for size in a.sizes:
        def ours(seed, size=size):
            req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=seed, steps=a.steps,
                                    sampler_name="Euler", scheduler="Normal", width=size, height=size, cfg_scale=7,
                                    save_images=False)
            return engine.generate(req).images[0]

        def diffusers(seed, size=size):
            g = torch.Generator("cpu").manual_seed(seed)
            return raw(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=a.steps, guidance_scale=7, width=size,
                       height=size, generator=g).images[0]

        export0, compiles0 = backend.export_seconds, backend.compiles
        t = time.perf_counter()
        fast_img = ours(1)
        first = time.perf_counter() - t
        engine.device = plain_device  # the same engine on PyTorch: the reference image for the same seed
        plain_img = ours(1)
        engine.device = fast_device
        t_ours, t_raw = alternate(ours, diffusers, a.rounds)
        rows.append((size, t_raw, t_ours, first - t_ours, backend.export_seconds - export0,
                     backend.compiles - compiles0, psnr(fast_img, plain_img)))
        print(f"{size}px: diffusers {t_raw:.1f}s  fast path {t_ours:.1f}s  ratio {t_ours / t_raw:.3f}  "
              f"first use +{first - t_ours:.1f}s (export {rows[-1][4]:.1f}s)  PSNR {rows[-1][6]:.1f} dB", flush=True)
    print("\n| size | raw diffusers s/image | fast path s/image | ratio (target <= 0.7) | first-use extra s "
          "(export s) | PSNR vs PyTorch dB |\n|---|---|---|---|---|---|")
    for size, t_raw, t_ours, extra, export, _compiles, db in rows:
        print(f"| {size} | {t_raw:.1f} | {t_ours:.1f} | {t_ours / t_raw:.2f} | {extra:.0f} ({export:.0f}) | {db:.1f} |")
    engine.close()


if __name__ == "__main__":
    main()
