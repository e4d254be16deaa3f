"""LoRA cost on the full-size SD1.5 architecture (random weights) with a random rank-16 kohya LoRA.

    python bench/make_random_checkpoint.py --family sd1 --seed 0 --out bench/sd15-random-0.safetensors
    python bench/lora.py [--size 256] [--steps 4] [--rounds 3]   (about 10 minutes on 2 busy CPU cores)

Measured in one run, alternating the variants so machine load hits them alike:
  * per-job activation overhead when a job reuses the previous job's LoRAs (resolve names, hashes, embeddings
    check, VAE check, set weights: what Engine._generate calls) against the generation time - measured at
    --size/--steps, and against a 20-step 512x512 generation estimated from measured 512x512 UNet steps
    (UNet time only, so the estimate is low and the ratio conservative); target < 2%;
  * one UNet step (CFG batch of 2) with the LoRA fused vs. the base step; target <= 1.05x. For comparison, the
    same step with the adapter active but not fused (PEFT computing the LoRA branch on the fly);
  * that taking the LoRA out restores the base model bit-exactly.
The LoRA file (bench/lora-rank16-random.safetensors, git-ignored) is written on the first run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BENCH = Path(__file__).resolve().parent
LORA_NAME = "lora-rank16-random"


def write_lora(unet, text_encoder, path: Path, rank: int = 16, alpha: float = 8.0, seed: int = 0) -> int:
    """A kohya-layout LoRA on every Linear of the UNet's transformer blocks (attention, feed-forward, proj_in/out)
    and of the text encoder's attention/MLP, like a typical kohya SD1.5 LoRA."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    sd = {}
    parts = [("lora_unet_", n, m) for n, m in unet.named_modules()
             if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and ".attentions." in n
             and (isinstance(m, torch.nn.Linear) or n.endswith(("proj_in", "proj_out")))]
    parts += [("lora_te_", "text_model." + n if not n.startswith("text_model.") else n, m)
              for n, m in text_encoder.named_modules()
              if isinstance(m, torch.nn.Linear) and ("self_attn" in n or "mlp" in n)]
    for prefix, name, m in parts:
        base = prefix + name.replace(".", "_")
        if isinstance(m, torch.nn.Conv2d):
            down = torch.randn(rank, m.in_channels, 1, 1, generator=g)
            up = torch.randn(m.out_channels, rank, 1, 1, generator=g)
            fan = m.in_channels
        else:
            down = torch.randn(rank, m.in_features, generator=g)
            up = torch.randn(m.out_features, rank, generator=g)
            fan = m.in_features
        sd[base + ".lora_down.weight"] = (down / fan ** 0.5).half()
        sd[base + ".lora_up.weight"] = (up * 0.02).half()
        sd[base + ".alpha"] = torch.tensor(alpha).half()
    save_file(sd, str(path), metadata={"ss_network_dim": str(rank), "ss_network_alpha": str(alpha),
                                       "ss_base_model_version": "sd_v1", "ss_output_name": LORA_NAME})
    return len(parts)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", default=str(BENCH / "sd15-random-0.safetensors"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    a = p.parse_args()

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from webui.engine.facade import Engine
    from webui.engine.networks import ModelLoras
    from webui.engine.networks.manager import network_pipeline
    from webui.engine.prompts.extra_networks import extract_extra_networks
    from webui.engine.requests import GenerationRequest
    from webui.settings import Settings

    ckpt = Path(a.ckpt).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="lora-bench-"))
    engine = Engine(Settings(data_dir=tmp, ckpt_dirs=[ckpt.parent], lora_dirs=[BENCH], outputs_dir=tmp / "out"))
    t = time.perf_counter()
    model = engine.load_checkpoint(ckpt.stem)
    print(f"model {model.title} ({model.spec.label}) loaded in {time.perf_counter() - t:.1f}s, "
          f"device {engine.device.describe()}, torch threads {torch.get_num_threads()}")
    lora_path = BENCH / f"{LORA_NAME}.safetensors"
    if not lora_path.exists():
        n = write_lora(model.components["unet"], model.components["text_encoder"], lora_path)
        print(f"wrote {lora_path.name}: {n} modules, rank 16, {lora_path.stat().st_size / 2**20:.1f} MiB")
    prompt = "a lighthouse on a cliff at sunset, detailed"
    tag = f"<lora:{LORA_NAME}:0.8>"

    def job(text, steps=a.steps, size=a.size, seed=1):
        req = GenerationRequest(prompt=text, seed=seed, steps=steps, width=size, height=size, sampler_name="Euler",
                                scheduler="Normal", save_images=False)
        t0 = time.perf_counter()
        r = engine.generate(req)
        return time.perf_counter() - t0, r

    # first use: read + convert + inject + fuse (reported, not a target)
    t_first, r = job(f"{prompt} {tag}")
    state = ModelLoras.of(model)
    t_base_job, _ = job(prompt)
    print(f"first job with the LoRA (read, convert, load, fuse + generation): {t_first:.2f}s; "
          f"same job without LoRA: {t_base_job:.2f}s; warnings: {r.warnings or 'none'}")

    # ---- 1. per-job overhead when the LoRAs of the previous job are reused ---------------------------------
    nets_of_image = [extract_extra_networks(f"{prompt} {tag}")[1]]
    text = [extract_extra_networks(prompt)[0], ""]
    job(f"{prompt} {tag}")  # the LoRA is now fused from the previous job
    reads_before, fusions_before = engine.networks.loras.reads, state.fusions

    def overhead_once() -> float:
        t0 = time.perf_counter()
        nets = engine.networks.prepare(model, engine.device, nets_of_image, text, {})
        nets.activate(nets_of_image)
        return time.perf_counter() - t0

    overheads, gen_times = [], []
    for _ in range(a.rounds):
        overheads.append(min(overhead_once() for _ in range(3)))
        dt, _ = job(f"{prompt} {tag}")
        gen_times.append(dt)
    assert engine.networks.loras.reads == reads_before and state.fusions == fusions_before, "reuse re-read/re-fused"
    ov, gen = statistics.median(overheads), statistics.median(gen_times)

    # ---- 2. UNet step: base vs fused LoRA (vs unfused active adapter) --------------------------------------
    pipe = network_pipeline(model, engine.device)
    unet = model.components["unet"]
    dev, dt_ = engine.device.device, engine.device.dtype

    def step_fn(size):
        lat = torch.randn(2, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(0)).to(dev, dt_)
        ctx = torch.randn(2, 77, 768, generator=torch.Generator().manual_seed(1)).to(dev, dt_)
        ts = torch.tensor([500, 500], device=dev)

        @torch.no_grad()
        def run(n=2):
            best = float("inf")
            out = None
            for _ in range(n):
                t0 = time.perf_counter()
                out = unet(lat, ts, encoder_hidden_states=ctx).sample
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            return best, out
        return run

    run = step_fn(a.size)
    job(prompt)  # no LoRA: weights restored, adapters off
    _, base_out = run(1)
    lo = next(iter(state.loaded.values()))

    def set_variant(v):
        if v == "base":
            state.apply(pipe, [])
        elif v == "fused":
            state.apply(pipe, [(lo, 0.8, 0.8)])
        else:  # active adapter, not fused
            state.apply(pipe, [])
            pipe.enable_lora()
            pipe.set_adapters([lo.adapter], [{c: 0.8 for c in lo.components}])

    # weight change (restore + set weights + fuse) and taking the LoRA out (restore): not free, reported
    t_change = []
    for w in (0.5, 0.8, 0.5):
        t0 = time.perf_counter()
        state.apply(pipe, [(lo, w, w)])
        t_change.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    state.apply(pipe, [])
    t_out = time.perf_counter() - t0

    times = {"base": [], "fused": [], "unfused": []}
    order = ["base", "fused", "unfused"]
    for i in range(a.rounds):
        for v in (order if i % 2 == 0 else order[::-1]):
            set_variant(v)
            times[v].append(run(2)[0])
            if v == "unfused":
                pipe.disable_lora()
    set_variant("base")
    _, restored_out = run(1)
    exact = torch.equal(base_out, restored_out)
    tb, tf, tu = (statistics.median(times[k]) for k in order)

    # ---- 3. a 20-step 512x512 generation, estimated from measured 512x512 UNet steps -------------------------
    run512 = step_fn(512)
    set_variant("fused")
    t512 = run512(2)[0]
    set_variant("base")
    est512 = 20 * t512

    print(f"\nper-job LoRA activation overhead, LoRA reused (no re-read, no re-fuse): median {ov * 1000:.1f} ms")
    print(f"  vs. measured {a.steps}-step {a.size}x{a.size} generation ({gen:.2f}s): {100 * ov / gen:.5f}%")
    print(f"  vs. 20-step 512x512 (>= 20 x {t512:.2f}s UNet step = {est512:.1f}s): {100 * ov / est512:.5f}%  "
          f"(target < 2%)")
    print(f"LoRA weights changed between jobs (exact restore + set_adapters + fuse): median "
          f"{statistics.median(t_change):.2f}s = {100 * statistics.median(t_change) / est512:.2f}% of the 20-step 512 "
          f"estimate; LoRA dropped (exact restore): {t_out:.2f}s")
    print(f"\nUNet step {a.size}x{a.size}, CFG batch 2, median of {a.rounds} alternating rounds:")
    print(f"  base {tb * 1000:.0f} ms | LoRA fused {tf * 1000:.0f} ms | LoRA active unfused {tu * 1000:.0f} ms")
    print(f"  fused / base = {tf / tb:.3f} (target <= 1.05)   unfused / base = {tu / tb:.3f}")
    print(f"\nbase restored bit-exactly after the LoRA: {exact}")
    engine.close()


if __name__ == "__main__":
    main()
