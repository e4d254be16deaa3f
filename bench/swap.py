"""Checkpoint swap benchmark on full-size SD1.5-architecture files (random fp16 weights).

    python bench/make_random_checkpoint.py --family sd1 --seed N --out bench/sd15-random-N.safetensors  (N = 0, 1, 2)
    python bench/swap.py [--files bench/sd15-random-*.safetensors]

Prints: raw safetensors read time, cold load time (ratio to the raw read; target <= 1.5x), RAM-cached swap time
(target <= 0.3 s), same-family swap without the cache, and RSS over 20 swaps among 3 checkpoints (target: flat,
within cache size + 10%). Everything is measured in this one run, side by side.
"""
from __future__ import annotations

import argparse
import gc
import glob
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--files", nargs="*", default=sorted(glob.glob("bench/sd15-random-*.safetensors")))
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    files = [Path(f).resolve() for f in a.files]
    assert len(files) >= 3, "make three files first (see the docstring)"

    from safetensors.torch import load

    from webui.engine.checkpoints.manager import ModelManager
    from webui.engine.checkpoints.registry import CheckpointRegistry, HashCache
    from webui.engine.device import select_device
    from webui.settings import Settings

    tmp = Path(tempfile.mkdtemp())
    folder = tmp / "ckpts"
    folder.mkdir()
    for f in files[:3]:
        (folder / f.name).symlink_to(f)
    dev = select_device(Settings())
    reg = CheckpointRegistry([folder], HashCache(tmp / "hashes.json"))
    infos = reg.refresh()
    t = time.perf_counter()
    for i in infos:
        reg.ensure_hash(i)
    print(f"sha256 of 3 files (once, then cached): {time.perf_counter() - t:.1f}s")

    raw, cold = [], []
    for _ in range(a.repeats):  # alternate raw read and cold load of the same file (page cache warm for both)
        gc.collect()
        t = time.perf_counter()
        sd = load(files[0].read_bytes())  # the whole file read into tensors
        raw.append(time.perf_counter() - t)
        del sd
        gc.collect()
        mgr = ModelManager(reg, dev, tmp / "cache", cache_size=1)
        t = time.perf_counter()
        mgr.select(infos[0])
        cold.append(time.perf_counter() - t)
        mgr.unload()
        del mgr
    r, c = statistics.median(raw), statistics.median(cold)
    print(f"raw safetensors read: {r:.2f}s  cold load: {c:.2f}s  ratio {c / r:.2f} (target <= 1.5)")

    mgr = ModelManager(reg, dev, tmp / "cache", cache_size=3)
    for i in infos:
        mgr.select(i)
    base = rss_gib()
    cached = []
    rss = []
    for k in range(20):
        t = time.perf_counter()
        mgr.select(infos[k % 3])
        cached.append(time.perf_counter() - t)
        rss.append(rss_gib())
    size = sum(f.stat().st_size for f in files[:3]) / 2**30
    print(f"RAM-cached swap: median {statistics.median(cached) * 1000:.1f} ms, max {max(cached) * 1000:.1f} ms (target <= 300 ms)")
    print(f"RSS over 20 cached swaps among 3: start {base:.2f} GiB, min {min(rss):.2f}, max {max(rss):.2f} GiB; "
          f"3 checkpoints = {size:.2f} GiB on disk (fp16 -> {'fp32 x2' if dev.dtype.itemsize == 4 else 'fp16'} in RAM)")
    mgr.unload()
    gc.collect()

    mgr = ModelManager(reg, dev, tmp / "cache", cache_size=1)
    mgr.select(infos[0])
    uncached, rss1 = [], []
    for k in range(1, 7):
        t = time.perf_counter()
        mgr.select(infos[k % 3])
        uncached.append(time.perf_counter() - t)
        rss1.append(rss_gib())
    print(f"swap with cache size 1 (reads the file): median {statistics.median(uncached):.2f}s; "
          f"RSS {min(rss1):.2f}..{max(rss1):.2f} GiB")


if __name__ == "__main__":
    main()
