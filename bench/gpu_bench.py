"""GPU figures in one run, one markdown table: ours against a raw diffusers pipeline on the same weights, and the
memory/speed features users feel. Run by bench/gpu.sh on a lent GPU machine (about 15 minutes in all, so every
row is small and guarded: a failure prints "failed: reason" and the rest goes on; rows past --budget seconds say
"skipped: time budget").

    python bench/gpu_bench.py --sd15 A.safetensors --sd15b B.safetensors --sdxl XL.safetensors
    python bench/gpu_bench.py --smoke      # CPU, tiny random models, 64 px: checks the script itself (tests)

it/s is measured from two runs of different step counts ((hi - lo) / (t_hi - t_lo)), so text encoding and the
VAE decode cancel out; "ours" is Engine.generate (our samplers, noise, prompt weighting), "raw" a diffusers
pipeline with Euler on the same modules.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT, NEGATIVE = "a photo of a red fox in the snow, detailed", "blurry"


@dataclass
class Plan:
    """What one run measures at which sizes (full: the real sizes on CUDA; smoke: tiny models on the CPU)."""
    smoke: bool
    device: str
    precision: str
    sd15: Path
    sd15b: Path
    sdxl: Path | None
    sd_size: int = 512
    xl_size: int = 1024
    steps: tuple[int, int] = (5, 25)  # it/s from these two step counts
    image_steps: int = 20
    upscale_side: int = 1024
    esrgan: dict = field(default_factory=lambda: {"num_filters": 64, "num_blocks": 23})
    compile: bool = True
    repeats: int = 2


class Table:
    def __init__(self, budget: float):
        self.rows: list[tuple[str, ...]] = []
        self.start = time.perf_counter()
        self.budget = budget
        self.stopped = False

    def run(self, label: str, fn, *args) -> None:
        """fn(*args) -> [(measure, ours, baseline, ratio, note)]; a failure or the budget is one row saying so."""
        elapsed = time.perf_counter() - self.start
        if elapsed > self.budget:
            self.rows.append((label, "skipped: time budget", "", "", f"{elapsed:.0f}s spent"))
            return
        if self.stopped:
            self.rows.append((label, "skipped: stopped (time limit)", "", "", ""))
            return
        t0 = time.perf_counter()
        try:
            self.rows += fn(*args)
        except KeyboardInterrupt:  # gpu.sh's time limit (SIGINT): the rows so far are still printed
            self.stopped = True
            self.rows.append((label, "failed: stopped by the time limit", "", "", ""))
        except Exception as exc:  # noqa: BLE001 - one failed row never stops the others
            traceback.print_exc(file=sys.stderr)
            self.rows.append((label, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}", "", "", ""))
        finally:
            _free()
        print(f"[{time.perf_counter() - self.start:6.1f}s] {label} done in {time.perf_counter() - t0:.1f}s",
              file=sys.stderr, flush=True)

    def markdown(self) -> str:
        lines = ["| measure | ours | raw diffusers / baseline | ours / baseline | note |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn, repeats: int) -> float:
    """Median seconds of fn() after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class Engines:
    """Engines by launch flags: rows with the same flags share one (and its loaded checkpoints)."""

    def __init__(self, plan: Plan, data: Path):
        self.plan, self.data = plan, data
        self.pool: dict = {}

    def fresh(self, **settings):
        from webui.engine import Engine
        from webui.settings import Settings

        plan = self.plan
        folders = sorted({p.parent for p in (plan.sd15, plan.sd15b, plan.sdxl) if p})
        return Engine(Settings(data_dir=self.data, device=plan.device, precision=plan.precision, ckpt_dirs=folders,
                               outputs_dir=self.data / "outputs", **settings))

    def get(self, **settings):
        key = tuple(sorted(settings.items()))
        if key not in self.pool:
            self.pool[key] = self.fresh(**settings)
        return self.pool[key]

    def close(self) -> None:
        for engine in self.pool.values():
            engine.close()
        self.pool.clear()
        _free()


def _raw_pipeline(model):
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
    )

    names = ["unet", "vae", "text_encoder", "tokenizer"]
    if model.family == "sdxl":
        cls, extra = StableDiffusionXLPipeline, {}
        names += ["text_encoder_2", "tokenizer_2"]
    else:
        cls, extra = StableDiffusionPipeline, {"safety_checker": None, "feature_extractor": None,
                                               "requires_safety_checker": False}
    raw = cls(**{k: model.components[k] for k in names}, **extra,
              scheduler=EulerDiscreteScheduler.from_config(model.scheduler_config))
    raw.set_progress_bar_config(disable=True)
    return raw


def _ours(engine, size: int, steps: int, **extra):
    from webui.engine import GenerationRequest

    def run():
        req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=1, steps=steps, sampler_name="Euler",
                                scheduler="Normal", width=size, height=size, cfg_scale=7, save_images=False, **extra)
        return engine.generate(req)
    return run


def _raw(raw, size: int, steps: int):
    import torch

    def run():
        g = torch.Generator("cpu").manual_seed(1)
        return raw(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=7, width=size,
                   height=size, generator=g, output_type="latent")
    return run


def _its(make, plan: Plan) -> float:
    """Steps per second of the sampling loop alone; NaN when timing noise hides it (tiny models)."""
    lo, hi = plan.steps
    t_lo, t_hi = _timed(make(lo), plan.repeats), _timed(make(hi), plan.repeats)
    return (hi - lo) / (t_hi - t_lo) if t_hi > t_lo else float("nan")


def _rate(its: float) -> str:
    return f"{its:.2f} it/s" if math.isfinite(its) else "no figure: timing noise"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b and math.isfinite(a) and math.isfinite(b) else ""


# ---- rows ------------------------------------------------------------------------------------------------------
def row_speed(plan: Plan, engines: Engines, ckpt: Path, size: int, compiled: bool, label: str):
    import torch

    engine = engines.fresh(compile=True) if compiled else engines.get()
    try:
        model = engine.load_checkpoint(ckpt.stem)
        raw = _raw_pipeline(model)
        if compiled:  # the same compiled module ours uses: one compile serves both sides
            raw.unet = engine.device.accelerator.unet(model)
        t0 = time.perf_counter()
        _ours(engine, size, plan.steps[0])()
        first = time.perf_counter() - t0
        ours = _its(lambda steps: _ours(engine, size, steps), plan)
        base = _its(lambda steps: _raw(raw, size, steps), plan)
        dt = str(torch.float16 if plan.precision == "fp16" else torch.float32).removeprefix("torch.")
        note = f"{size}px, CFG 7, {dt}" + (f", first image incl. compile {first:.0f}s" if compiled else "")
        return [(label, _rate(ours), _rate(base), _ratio(ours, base), note)]
    finally:
        if compiled:
            engine.close()


def row_attention(plan: Plan, engines: Engines):
    from webui.engine.device import xformers_usable

    ok, why = xformers_usable()
    rows = []
    for name, flag in (("sdpa", False), ("xformers", True)):
        if flag and not ok:
            rows.append(("SD1.5 attention: xformers", f"not measured: {why}", "", "", ""))
            continue
        engine = engines.get(xformers=flag) if flag else engines.get()
        engine.load_checkpoint(plan.sd15.stem)
        its = _its(lambda steps, engine=engine: _ours(engine, plan.sd_size, steps), plan)
        rows.append((f"SD1.5 attention: {name}", _rate(its), "", "", f"{plan.sd_size}px, ours"))
    if len(rows) == 2 and all(r[1].endswith("it/s") for r in rows):
        sdpa, xf = (float(r[1].split()[0]) for r in rows)
        rows[1] = rows[1][:2] + (rows[0][1], _ratio(xf, sdpa), "xformers against SDPA")
    return rows


def _peak(fn) -> tuple[float, float | None]:
    """(seconds, peak GiB of CUDA memory allocated, None off CUDA)."""
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    fn()
    _sync()
    seconds = time.perf_counter() - t
    return seconds, (torch.cuda.max_memory_allocated() / 2**30 if cuda else None)


def row_offload(plan: Plan, engines: Engines):
    import torch

    engines.close()  # nothing else on the GPU while the peaks are measured
    rows = []
    steps = plan.image_steps // 2
    for label, flags in (("none", {}), ("--medvram", {"medvram": True}), ("--lowvram", {"lowvram": True})):
        if flags and not torch.cuda.is_available():
            rows.append((f"SD1.5 offload {label}", "n/a: CUDA only", "", "", ""))
            continue
        engine = engines.fresh(**flags)
        try:
            engine.load_checkpoint(plan.sd15.stem)
            run = _ours(engine, plan.sd_size, steps)
            run()  # warm-up (and the pipeline with its offload hooks)
            seconds, peak = _peak(run)
            vram = f"peak {peak:.2f} GiB" if peak is not None else "n/a (no CUDA)"
            rows.append((f"SD1.5 offload {label}", f"{seconds:.2f} s/image, {vram}", "", "",
                         f"{plan.sd_size}px, {steps} steps; offload: {engine.device.offload}"))
        finally:
            engine.close()
    return rows


def row_swap(plan: Plan, engines: Engines):
    engine = engines.fresh(checkpoint_cache_size=2)
    try:
        t = time.perf_counter()
        engine.load_checkpoint(plan.sd15.stem)
        first = time.perf_counter() - t
        t = time.perf_counter()
        engine.load_checkpoint(plan.sd15b.stem)  # from disk
        cold = time.perf_counter() - t
        t = time.perf_counter()
        engine.load_checkpoint(plan.sd15.stem)  # from the RAM cache
        cached = time.perf_counter() - t
        return [("SD1.5 checkpoint swap: RAM-cached", f"{cached:.2f} s", f"{cold:.2f} s (cold, from disk)",
                 _ratio(cached, cold), f"first load {first:.2f} s; file read from the OS page cache")]
    finally:
        engine.close()


def row_hires(plan: Plan, engines: Engines):
    import torch
    import torch.nn.functional as F
    from diffusers import StableDiffusionImg2ImgPipeline

    engine = engines.get()
    model = engine.load_checkpoint(plan.sd15.stem)
    txt = _raw_pipeline(model)
    img = StableDiffusionImg2ImgPipeline.from_pipe(txt)
    img.set_progress_bar_config(disable=True)
    size, steps = plan.sd_size, plan.image_steps // 2

    def by_hand():
        g = torch.Generator("cpu").manual_seed(1)
        lat = txt(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=7, width=size,
                  height=size, generator=g, output_type="latent").images
        lat = F.interpolate(lat, scale_factor=2, mode="bilinear")
        img(PROMPT, negative_prompt=NEGATIVE, image=lat, strength=0.5, num_inference_steps=steps,
            guidance_scale=7, generator=g, output_type="pil")

    ours = _timed(_ours(engine, size, steps, enable_hr=True, hr_scale=2.0, hr_upscaler="Latent",
                        denoising_strength=0.5), plan.repeats)
    base = _timed(by_hand, plan.repeats)
    return [("SD1.5 hires fix 2x", f"{ours:.2f} s", f"{base:.2f} s", _ratio(ours, base),
             f"{size}->{2 * size}px, {steps}+{steps // 2} steps, latent upscale")]


def row_esrgan(plan: Plan, engines: Engines):
    import numpy as np
    import torch
    from PIL import Image
    from spandrel import ModelLoader
    from spandrel.architectures.ESRGAN import ESRGAN

    from webui.engine.device import select_device
    from webui.engine.postprocess.upscalers import UpscalerLibrary
    from webui.settings import Settings

    data = engines.data
    folder = data / "upscalers"
    folder.mkdir(exist_ok=True)
    path = folder / "4x-RandomRRDB.pth"
    torch.save(ESRGAN(scale=4, **plan.esrgan).state_dict(), path)  # random weights: the time is the architecture's
    device = select_device(Settings(data_dir=data, device=plan.device, precision=plan.precision))
    lib = UpscalerLibrary([folder], device)
    side = plan.upscale_side
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8))
    ours = _timed(lambda: lib.upscale(image, path.stem, 4 * side, 4 * side), 1)
    net = ModelLoader(device.device).load_from_file(str(path)).model.eval().to(device.device, device.dtype)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None].to(device.device,
                                                                                               device.dtype)

    def whole():
        with torch.no_grad():
            net(x).float().clamp(0, 1).mul(255).byte().cpu()
    try:
        base = _timed(whole, 1)
        base_text = f"{base:.2f} s (one untiled call)"
    except torch.OutOfMemoryError:
        base, base_text = 0.0, "out of memory untiled"
    return [(f"4x ESRGAN upscale {side}px", f"{ours:.2f} s", base_text, _ratio(ours, base),
             f"RRDBNet {plan.esrgan}, ours tiled {lib.tile}px")]


def row_lora_step(plan: Plan, engines: Engines):
    import torch
    from peft import LoraConfig

    engine = engines.fresh()  # its UNet gets an adapter: not shared
    try:
        model = engine.load_checkpoint(plan.sd15.stem)
        unet = model.components["unet"]
        dev, dtype = engine.device.device, engine.device.dtype
        unet.add_adapter(LoraConfig(r=16, lora_alpha=16, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        params = [p for p in unet.parameters() if p.requires_grad]
        for p in params:
            p.data = p.data.float()  # the adapter trains in fp32, the frozen UNet stays in its dtype
        opt = torch.optim.AdamW(params, lr=1e-4)
        side = plan.sd_size // 8
        cond_dim = unet.config.cross_attention_dim
        unet.train()

        def step():
            latents = torch.randn(1, 4, side, side, device=dev, dtype=dtype)
            cond = torch.randn(1, 77, cond_dim, device=dev, dtype=dtype)
            with torch.autocast(dev.type, dtype=dtype, enabled=dev.type == "cuda"):
                pred = unet(latents, torch.tensor([500], device=dev), encoder_hidden_states=cond).sample
            loss = torch.nn.functional.mse_loss(pred.float(), latents.float())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        seconds = _timed(step, plan.repeats)
        return [("SD1.5 LoRA training step", f"{seconds:.3f} s/step", "", "",
                 f"peft rank 16 on attention, batch 1, {plan.sd_size}px, {len(params)} adapter tensors")]
    finally:
        engine.close()


def row_vae(plan: Plan, engines: Engines):
    import torch

    from webui.engine.generation import decode_latents

    engine = engines.get()
    model = engine.load_checkpoint(plan.sd15.stem)
    vae = model.components["vae"]
    side = plan.upscale_side // 8
    lat = torch.randn(1, 4, side, side, device=engine.device.device, dtype=engine.device.dtype)
    ours = _timed(lambda: decode_latents(model, lat, engine.device), plan.repeats)

    def raw():
        with torch.no_grad():
            vae.decode(lat / vae.config.scaling_factor, return_dict=False)[0].float().cpu()
    base = _timed(raw, plan.repeats)
    return [(f"VAE decode {plan.upscale_side}px", f"{ours:.3f} s", f"{base:.3f} s", _ratio(ours, base),
             "ours includes the NaN screen and PIL conversion")]


def measure(plan: Plan, budget: float) -> Table:
    engines = Engines(plan, Path(tempfile.mkdtemp(prefix="ls-gpu-bench-")))
    table = Table(budget)
    compiled = {}
    for name, ckpt, size in (("SD1.5", plan.sd15, plan.sd_size), ("SDXL", plan.sdxl, plan.xl_size)):
        label = f"{name} txt2img torch.compile"
        if not plan.compile:
            compiled[name] = lambda label=label: table.rows.append((label, "skipped: --no-compile", "", "", ""))
        else:
            compiled[name] = lambda label=label, ckpt=ckpt, size=size: table.run(
                label, row_speed, plan, engines, ckpt, size, True, label)
    # the most wanted first: a row that would start after the budget is skipped
    table.run("SD1.5 txt2img eager", row_speed, plan, engines, plan.sd15, plan.sd_size, False, "SD1.5 txt2img eager")
    compiled["SD1.5"]()
    table.run("VAE decode", row_vae, plan, engines)
    table.run("SD1.5 attention", row_attention, plan, engines)
    table.run("SD1.5 hires fix 2x", row_hires, plan, engines)
    table.run("4x ESRGAN upscale", row_esrgan, plan, engines)
    table.run("SD1.5 offload", row_offload, plan, engines)  # closes the shared engines first
    table.run("SD1.5 checkpoint swap", row_swap, plan, engines)
    table.run("SD1.5 LoRA training step", row_lora_step, plan, engines)
    if plan.sdxl is not None:
        table.run("SDXL txt2img eager", row_speed, plan, engines, plan.sdxl, plan.xl_size, False,
                  "SDXL txt2img eager")
        compiled["SDXL"]()
    engines.close()
    return table


def smoke_plan(folder: Path, compile_too: bool) -> Plan:
    """Tiny random SD1 and SDXL checkpoints (tests/fixtures/tiny_models.py) on the CPU, 64 px."""
    from tests.fixtures.tiny_models import make_tiny_pipeline, write_single_file

    native = {"modelspec.resolution": "64x64"}
    files = {}
    for key, family, seed in (("a", "sd1", 0), ("b", "sd1", 1), ("xl", "sdxl", 0)):
        path = folder / f"tiny-{key}.safetensors"
        write_single_file(make_tiny_pipeline(family, seed=seed), path, family, native)
        files[key] = path
    return Plan(smoke=True, device="cpu", precision="fp32", sd15=files["a"], sd15b=files["b"], sdxl=files["xl"],
                sd_size=64, xl_size=64, steps=(2, 8), image_steps=4, upscale_side=64,
                esrgan={"num_filters": 8, "num_blocks": 1}, compile=compile_too, repeats=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sd15", type=Path)
    p.add_argument("--sd15b", type=Path, help="a second SD1.5 checkpoint (the swap row)")
    p.add_argument("--sdxl", type=Path)
    p.add_argument("--smoke", action="store_true", help="CPU, tiny models, 64 px")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    p.add_argument("--budget", type=float, default=330.0, help="start no row after this many seconds")
    a = p.parse_args(argv)
    if a.smoke:
        plan = smoke_plan(Path(tempfile.mkdtemp(prefix="ls-gpu-smoke-")), compile_too=not a.no_compile)
    else:
        if not (a.sd15 and a.sd15b):
            p.error("--sd15 and --sd15b are needed (or --smoke)")
        plan = Plan(smoke=False, device="cuda", precision="fp16", sd15=a.sd15, sd15b=a.sd15b, sdxl=a.sdxl,
                    compile=not a.no_compile)
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    print(f"\nLatent Studio GPU bench: {gpu}, torch {torch.__version__}, {plan.device} {plan.precision}"
          f"{' (smoke: tiny models)' if plan.smoke else ''}\n", flush=True)
    table = measure(plan, a.budget)
    print(table.markdown(), flush=True)
    if table.stopped:  # a job may still be running in an engine's worker thread: do not wait for it
        os._exit(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
