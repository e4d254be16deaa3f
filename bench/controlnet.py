"""Step time with one ControlNet unit against none, on the same model, in one run (side by side, alternating).

    python bench/controlnet.py [--size 64] [--steps 20] [--rounds 5]

The built-in model with its ControlNet (models/ControlNet/latent-studio-shapes-control-v1.safetensors) through the
engine, as a user runs it: the time per sampling step of plain txt2img, and of txt2img with one unit (module none,
the mask as the control image). The ratio is the cost of ControlNet: it runs the UNet's encoder copy once more per
step (on both halves of classifier-free guidance).
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()

    from tests.fixtures.controlnet_eval import CONTROLNET, control_mask
    from webui.engine import ControlNetUnit, Engine, GenerationRequest
    from webui.settings import Settings

    data = Path(tempfile.mkdtemp(prefix="bench-controlnet-"))
    for sub, name in (("Stable-diffusion", "latent-studio-shapes-v1.safetensors"), ("ControlNet", f"{CONTROLNET}.safetensors")):
        (data / "models" / sub).mkdir(parents=True)
        (data / "models" / sub / name).symlink_to(ROOT / "models" / sub / name)
    engine = Engine(Settings(data_dir=data, preview_every=0))
    mask = control_mask("bottom right").resize((args.size, args.size))
    unit = ControlNetUnit(model=CONTROLNET, image=mask)

    def run(units) -> float:
        req = GenerationRequest(prompt="a large red circle on a blue background", seed=1, steps=args.steps,
                                width=args.size, height=args.size, save_images=False, controlnet_units=units)
        t0 = time.perf_counter()
        engine.generate(req)
        return (time.perf_counter() - t0) / args.steps

    run([]), run([unit])  # warm-up: model, ControlNet and pipelines loaded
    plain, control = [], []
    for _ in range(args.rounds):
        plain.append(run([]))
        control.append(run([unit]))
    a, b = statistics.median(plain), statistics.median(control)
    print(f"size {args.size}px, {args.steps} steps, median of {args.rounds}")
    print(f"no unit : {a * 1000:8.1f} ms/step")
    print(f"one unit: {b * 1000:8.1f} ms/step   ratio {b / a:.2f}x")
    engine.close()


if __name__ == "__main__":
    main()
