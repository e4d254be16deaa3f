"""Peak memory and time of a 4x model upscale, tiled (the default tile size) against untiled, each in a fresh
process so their peaks do not mix. The model is a full-size ESRGAN (RRDBNet, 23 blocks, 64 filters) with random
weights, built offline; the numbers depend on the architecture, not the weights.

    python bench/upscale_memory.py                 # a 256 px image (untiled needs several GB at 1024 px on a CPU)
    python bench/upscale_memory.py --size 1024     # the issue's size (tiled only, with --skip-untiled)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(model: str, size: int, tile: int) -> None:
    import numpy as np
    from PIL import Image

    from webui.engine.postprocess.upscalers import UpscalerLibrary

    lib = UpscalerLibrary([Path(model).parent], tile=tile, overlap=8)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8))
    start = time.perf_counter()
    out = lib.upscale(image, Path(model).stem, 4 * size, 4 * size)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tile": tile, "seconds": seconds, "peak_mb": peak_mb, "size": out.size}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--tile", type=int, default=192, help="the default upscaler_tile")
    p.add_argument("--skip-untiled", action="store_true")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.child[0], int(a.child[1]), int(a.child[2]))

    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    folder = Path(tempfile.mkdtemp())
    model = folder / "4x-RandomRRDB.safetensors"
    save_file({k: v.contiguous() for k, v in ESRGAN(num_filters=64, num_blocks=23, scale=4).state_dict().items()},
              str(model))
    runs = [a.tile] + ([] if a.skip_untiled else [0])
    results = []
    for tile in runs:
        out = subprocess.run([sys.executable, __file__, "--child", str(model), str(a.size), str(tile)],
                             capture_output=True, text=True, cwd=ROOT)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else
                       {"tile": tile, "error": out.stderr.strip().splitlines()[-1:]})
    print(f"4x ESRGAN (RRDBNet 23x64, random weights) on a {a.size}px image, torch {torch.__version__}, CPU")
    for r in results:
        print(json.dumps(r))
    if len(results) == 2 and "peak_mb" in results[0] and "peak_mb" in results[1]:
        print(f"peak RSS tiled/untiled: {results[0]['peak_mb'] / results[1]['peak_mb']:.2f}  "
              f"time tiled/untiled: {results[0]['seconds'] / results[1]['seconds']:.2f}")


if __name__ == "__main__":
    main()
