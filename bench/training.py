"""Training step time and peak memory (issue 20), measured side by side in one run, on the built-in model and on
a full-size random-weight SD1.5 (CPU, or the GPU when there is one).

    python bench/make_random_checkpoint.py --family sd1 --seed 0 --out bench/sd15-random-0.safetensors
    python bench/training.py [--sd15 bench/sd15-random-0.safetensors] [--size 256] [--steps 3]

Each variant runs in its own process (so one's memory cannot hide in another's): the model is loaded, latents and
(when the text encoder is frozen) text embeddings are cached, then `--steps` training steps run. Reported: the
median step time and the peak memory the steps add over what was resident before them (CPU: the process's peak
RSS, reset with /proc/self/clear_refs; CUDA: torch's peak allocation). Variants: LoRA with and without gradient
checkpointing, LoRA on the UNet only (cached text embeddings), textual inversion. Targets: gradient checkpointing
lowers the steps' peak memory on the full-size model; a UNet-only LoRA costs less memory than UNet + text encoder.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BUILTIN = ROOT / "models" / "Stable-diffusion" / "latent-studio-shapes-v1.safetensors"
VARIANTS = {
    "lora": {"method": "lora", "gradient_checkpointing": False},
    "lora+checkpointing": {"method": "lora", "gradient_checkpointing": True},
    "lora unet-only": {"method": "lora", "gradient_checkpointing": False, "train_text_encoder": False},
    "embedding": {"method": "embedding", "gradient_checkpointing": False},
}


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def one(ckpt: str, variant: dict, size: int, steps: int, batch: int) -> dict:
    """In a child process: prepare one run and time its steps."""
    import torch
    from PIL import Image

    from webui.engine import Engine, TrainingRequest
    from webui.engine.jobs import JobState
    from webui.engine.training import job as J
    from webui.settings import Settings

    data = Path(tempfile.mkdtemp(prefix="bench-train-"))
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    (data / "models" / "Stable-diffusion" / Path(ckpt).name).symlink_to(Path(ckpt).resolve())
    (data / "imgs").mkdir()
    for i in range(4):
        Image.new("RGB", (size, size), (40 * i, 200, 210)).save(data / "imgs" / f"{i}.png")
    engine = Engine(Settings(data_dir=data, ckpt=Path(ckpt).stem))
    engine.load_checkpoint()
    kw = {k: v for k, v in variant.items() if k != "method"}
    req = TrainingRequest(variant["method"], "bench", image_dir=data / "imgs", steps=steps + 1, batch_size=batch,
                          resolution=size, trigger="zq", seed=0, **kw)
    p = J.plan(engine, req)
    model = engine.active_model()
    cfg = J.settings_for(p, model.components["unet"])
    cfg.side = size
    images = J.prepare(p.raw_images, size, False, J.size_multiple(model))
    trainer = J.Trainer(model, engine.device, p, cfg, images, JobState(0, "bench"), p.monitor)
    trainer.prepare()
    cuda = engine.device.device.type == "cuda"
    trainer.train_step(0)  # warm-up (allocator, first-call costs)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS
        before = _status("VmRSS")
    times = []
    for s in range(1, steps + 1):
        t = time.perf_counter()
        trainer.train_step(s)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() if cuda else _status("VmHWM")) - before
    engine.close()
    return {"step_s": statistics.median(times), "peak_mb": peak / 2**20, "device": str(engine.device.device),
            "params": sum(p.numel() for p in model.components["unet"].parameters())}


def run_variant(ckpt, name, size, steps, batch) -> dict:
    cmd = [sys.executable, __file__, "--one", json.dumps([str(ckpt), VARIANTS[name], size, steps, batch])]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(title: str, ckpt: Path, size: int, steps: int, batch: int) -> None:
    print(f"\n{title}: {ckpt.name}, {size}x{size}, batch {batch}, median of {steps} steps")
    rows = {name: run_variant(ckpt, name, size, steps, batch) for name in VARIANTS}
    for name, r in rows.items():
        if "error" in r:
            print(f"  {name:20s} error: {r['error']}")
        else:
            print(f"  {name:20s} {r['step_s']:8.3f} s/step  peak +{r['peak_mb']:8.1f} MB  ({r['device']})")
    base, gc = rows["lora"], rows["lora+checkpointing"]
    if "error" not in base and "error" not in gc and base["peak_mb"] > 0:
        print(f"  gradient checkpointing: memory x{gc['peak_mb'] / base['peak_mb']:.2f}, "
              f"time x{gc['step_s'] / base['step_s']:.2f}")
    unet = rows["lora unet-only"]
    if "error" not in base and "error" not in unet and base["peak_mb"] > 0:
        print(f"  UNet-only LoRA (cached text embeddings): memory x{unet['peak_mb'] / base['peak_mb']:.2f}, "
              f"time x{unet['step_s'] / base['step_s']:.2f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--sd15", type=Path, default=ROOT / "bench" / "sd15-random-0.safetensors")
    ap.add_argument("--size", type=int, default=256, help="training size on the full-size model")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--builtin-steps", type=int, default=20)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(*json.loads(args.one))))
        return
    report("built-in model", BUILTIN, 64, args.builtin_steps, 8)
    if args.sd15.is_file():
        report("full-size SD1.5 (random weights)", args.sd15, args.size, args.steps, 1)
    else:
        print(f"\n(no {args.sd15}: make it with bench/make_random_checkpoint.py --family sd1 --out {args.sd15})")


if __name__ == "__main__":
    main()
