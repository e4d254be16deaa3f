"""Speed of the built-in shapes model: 20 steps at its native size.

    python bench/builtin_speed.py [--steps 20] [--runs 3] [--threads N]

Classifier-free guidance is on (the UNet sees a batch of 2 every step) and
the time includes text encoding and the VAE decode.  The target is 2 s on a
2-core CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S = 2.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(ROOT / "models/Stable-diffusion/latent-studio-shapes-v1.safetensors"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()

    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    from webui.training.demo import IMAGE_SIZE, checkpoint_scaling_factor, write_diffusers_config

    if args.threads:
        torch.set_num_threads(args.threads)
    config = write_diffusers_config(tempfile.mkdtemp(prefix="ls-config-"),
                                    checkpoint_scaling_factor(args.checkpoint))
    pipe = StableDiffusionPipeline.from_single_file(
        args.checkpoint, config=str(config), local_files_only=True, torch_dtype=torch.float32,
        safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    prompt = "a large red circle at the top left on a blue background"

    def run(seed):
        t = time.perf_counter()
        with torch.no_grad():
            pipe(prompt, height=IMAGE_SIZE, width=IMAGE_SIZE, num_inference_steps=args.steps,
                 guidance_scale=7.0, generator=torch.Generator().manual_seed(seed))
        return time.perf_counter() - t

    run(0)  # warm-up
    times = [run(i + 1) for i in range(args.runs)]
    median = statistics.median(times)
    print(f"built-in model {IMAGE_SIZE}x{IMAGE_SIZE}, {args.steps} steps, CFG 7, "
          f"{torch.get_num_threads()} threads: median {median:.3f} s "
          f"(runs: {', '.join(f'{t:.3f}' for t in times)}); "
          f"{median / TARGET_S:.2f}x the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
