"""--backend openvino: the loaded checkpoint's UNet and VAE decoder run as OpenVINO models on the CPU.

Exported once from the model in memory with `openvino.convert_model` (offline: no hub, no optimum), with any
LoRA already fused into the weights, and saved as OpenVINO IR under `cache/openvino/<key>/`, the key being the
checkpoint's hash, the fused LoRA set (files and weights) and the OpenVINO version. The IR has dynamic batch,
size and prompt length; each input shape is compiled when first seen (OpenVINO's own compiled-blob cache in
`cache/openvino/blobs` makes that fast on the next start). The text encoder stays on PyTorch: it runs once per
prompt, a small share of an image's time, and our prompt encoder needs its hidden layers (CLIP skip).

What the sampler sees is `OpenVinoUNet`: the pipeline's UNet call, same arguments, same outputs. Calls it cannot
serve (ControlNet residuals, LCM's timestep_cond, attention-processor arguments) run on the PyTorch UNet."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from webui.engine.acceleration.state import model_state

log = logging.getLogger(__name__)

KEEP_EXPORTS = 4  # exported models kept on disk (each is the size of the weights in fp16); oldest go first
KEEP_SHAPES = 2  # compiled input shapes kept in memory per part (hires fix uses two)


def available() -> tuple[bool, str]:
    try:
        import openvino  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a broken install raises all sorts of errors
        return False, f"openvino could not be imported ({type(exc).__name__}: {exc})"
    return True, "openvino available"


class _UNetExport(torch.nn.Module):
    """The UNet with positional tensor inputs and one tensor output, as convert_model traces it."""

    def __init__(self, unet, sdxl: bool):
        super().__init__()
        self.unet, self.sdxl = unet, sdxl

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds=None, time_ids=None):
        added = {"text_embeds": text_embeds, "time_ids": time_ids} if self.sdxl else None
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added,
                         return_dict=False)[0]


class _DecoderExport(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        return self.vae.decode(latents, return_dict=False)[0]


class _Part:
    """One exported model (IR on disk) and its compiled shapes."""

    def __init__(self, backend: OpenVinoBackend, key: str, ir):
        self.backend, self.key, self.ir = backend, key, ir
        self.compiled: OrderedDict[tuple, Any] = OrderedDict()

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        shapes = tuple(a.shape for a in arrays)
        compiled = self.compiled.get(shapes)
        if compiled is None:
            compiled = self.backend.compile(self.ir, shapes)
            self.compiled[shapes] = compiled
            while len(self.compiled) > KEEP_SHAPES:
                self.compiled.popitem(last=False)
        self.compiled.move_to_end(shapes)
        return compiled(list(arrays))[0]


class OpenVinoUNet(torch.nn.Module):
    """Stands in for the pipeline's UNet2DConditionModel: the same call and outputs, computed by OpenVINO.
    Attributes the pipeline reads (config, dtype, device, add_embedding ...) come from the PyTorch UNet, which is
    not a submodule here (its weights are not this module's)."""

    def __init__(self, unet, part: _Part, sdxl: bool):
        super().__init__()
        self.__dict__["_base"] = unet
        self.part, self.sdxl = part, sdxl

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            base = self.__dict__.get("_base")
            if base is None:
                raise
            return getattr(base, name)

    def forward(self, sample, timestep, encoder_hidden_states, class_labels=None, timestep_cond=None,
                attention_mask=None, cross_attention_kwargs=None, added_cond_kwargs=None, return_dict=True,
                **others):
        if class_labels is not None or timestep_cond is not None or attention_mask is not None \
                or cross_attention_kwargs or any(v is not None for v in others.values()):
            return self._base(sample, timestep, encoder_hidden_states, class_labels=class_labels,
                              timestep_cond=timestep_cond, attention_mask=attention_mask,
                              cross_attention_kwargs=cross_attention_kwargs, added_cond_kwargs=added_cond_kwargs,
                              return_dict=return_dict, **others)
        batch = sample.shape[0]
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(batch)
        inputs = [sample, t, encoder_hidden_states]
        if self.sdxl:
            inputs += [added_cond_kwargs["text_embeds"], added_cond_kwargs["time_ids"]]
        out = self.part(*(_array(x) for x in inputs))
        out = torch.from_numpy(out).to(sample.device, sample.dtype)
        if not return_dict:
            return (out,)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=out)


def _array(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


@dataclass
class _ModelParts:
    unet_key: str | None = None
    unet: OpenVinoUNet | None = None
    decoders: dict = field(default_factory=dict)  # key -> _Part


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, cache_dir: Path, precision: str = "f32"):
        import openvino as ov

        self.ov = ov
        self.cache_dir = Path(cache_dir)
        self.precision = precision  # OpenVINO's INFERENCE_PRECISION_HINT: f32 (as PyTorch) or bf16 (faster, looser)
        self.core = ov.Core()
        self.core.set_property({"CACHE_DIR": str(self.cache_dir / "blobs")})
        self.exports = 0  # models converted from PyTorch (for tests and the benchmark)
        self.export_seconds = 0.0
        self.compiles = 0

    # ---- per model -----------------------------------------------------------------------------------------
    def unet(self, model) -> OpenVinoUNet:
        st: _ModelParts = model_state(model, self.name, _ModelParts)
        key = self._key(model, "unet", _lora_set(model))
        if st.unet_key != key:
            if st.unet_key is not None:
                log.warning("OpenVINO: the LoRA set changed; using the UNet exported with these LoRAs "
                            "(exported now unless cached)")
            sdxl = model.family == "sdxl"
            unet = model.components["unet"]
            part = self._part(key, lambda: self._convert_unet(unet, sdxl))
            st.unet_key, st.unet = key, OpenVinoUNet(unet, part, sdxl)
        return st.unet

    def decoder(self, model, vae):
        st: _ModelParts = model_state(model, self.name, _ModelParts)
        key = self._key(model, "vae-decoder", _vae_identity(model, vae))
        part = st.decoders.get(key)
        if part is None:
            part = self._part(key, lambda: self._convert_decoder(vae))
            st.decoders = {key: part}  # one VAE at a time
        scale = vae.config.scaling_factor
        shift = getattr(vae.config, "shift_factor", None) or 0.0

        def run(latents: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(part(_array(latents / scale + shift)))

        return run

    # ---- export and cache ----------------------------------------------------------------------------------
    def _key(self, model, part: str, extra) -> str:
        ident = model.sha256 or _file_stamp(model.path)
        text = json.dumps([ident, part, extra, self.ov.__version__, str(model.components["unet"].dtype)])
        return f"{part}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    def _part(self, key: str, convert) -> _Part:
        folder = self.cache_dir / key
        xml = folder / "model.xml"
        if not xml.is_file():
            t0 = time.perf_counter()
            log.info("OpenVINO: exporting %s (once; cached in %s)", key, folder)
            with warnings.catch_warnings():  # the tracer's notes on shape checks it turns into constants
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                ir = convert()
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self.ov.save_model(ir, str(tmp / "model.xml"))  # weights stored in fp16 (OpenVINO's default)
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
            self.exports += 1
            self.export_seconds += time.perf_counter() - t0
            log.info("OpenVINO: exported %s in %.1fs", key, time.perf_counter() - t0)
            self._prune(keep=folder)
        else:
            folder.touch()  # most recently used
        return _Part(self, key, self.core.read_model(str(xml)))

    def _prune(self, keep: Path) -> None:
        exports = sorted((p for p in self.cache_dir.iterdir() if (p / "model.xml").is_file() and p != keep),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in exports[KEEP_EXPORTS - 1:]:
            shutil.rmtree(old, ignore_errors=True)

    @torch.no_grad()
    def _convert_unet(self, unet, sdxl: bool):
        ov = self.ov
        cfg = unet.config
        ch, dim = cfg.in_channels, cfg.cross_attention_dim
        p = next(unet.parameters())
        example = [torch.randn(2, ch, 8, 8), torch.tensor([500.0, 500.0]), torch.randn(2, 77, dim)]
        shapes = [ov.PartialShape([-1, ch, -1, -1]), ov.PartialShape([-1]), ov.PartialShape([-1, -1, dim])]
        if sdxl:
            pooled = unet.add_embedding.linear_1.in_features - 6 * cfg.addition_time_embed_dim
            example += [torch.randn(2, pooled), torch.tensor([[64.0, 64, 0, 0, 64, 64]] * 2)]
            shapes += [ov.PartialShape([-1, pooled]), ov.PartialShape([-1, 6])]
        example = [x.to(p.device, p.dtype) for x in example]
        return ov.convert_model(_UNetExport(unet, sdxl).eval(), example_input=tuple(example), input=shapes)

    @torch.no_grad()
    def _convert_decoder(self, vae):
        ov = self.ov
        c = vae.config.latent_channels
        p = next(vae.parameters())
        example = torch.randn(1, c, 8, 8).to(p.device, p.dtype)
        return ov.convert_model(_DecoderExport(vae).eval(), example_input=(example,),
                                input=[ov.PartialShape([-1, c, -1, -1])])

    def compile(self, ir, shapes: tuple):
        t0 = time.perf_counter()
        model = ir.clone()
        model.reshape({i: list(s) for i, s in enumerate(shapes)})
        compiled = self.core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": self.precision})
        self.compiles += 1
        log.info("OpenVINO: compiled for %s in %.1fs", shapes, time.perf_counter() - t0)
        return compiled


def _file_stamp(path: Path) -> str:
    st = Path(path).stat()
    return f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _lora_set(model) -> list:
    """The LoRAs fused into the UNet now: file, its size/mtime and UNet weight (adapter names are per session)."""
    loras = model.loras
    if loras is None or not loras.applied:
        return []
    by_adapter = {item.adapter: item for item in loras.loaded.values()}
    out = []
    for adapter, _te, unet_weight in loras.applied:
        item = by_adapter.get(adapter)
        if item is not None and "unet" in item.components:
            out.append([str(item.info.path), list(item.stamp), unet_weight])
    return out


def _vae_identity(model, vae) -> str:
    if vae is model.own_vae:
        return "own"
    cached = model.vae_cache
    if cached is not None and cached.module is vae:
        return f"{cached.key}:{list(cached.stamp)}"
    return f"object:{id(vae)}"  # a VAE from elsewhere: exported again in each session
