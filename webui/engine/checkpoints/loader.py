"""Reading checkpoint files safely and turning them into diffusers components, fully offline.

Single files: the state dict is read once (safetensors, or torch.load(weights_only=True) for .ckpt/.pt), the family
and configs are read off the keys and shapes (family.py, starting from the configs shipped in webui/resources),
diffusers' own LDM->diffusers converters rename the weights, and the modules are built from those local configs.
Diffusers folders load with `from_pretrained(local_files_only=True)`. Nothing here can reach the network.
"""
from __future__ import annotations

import json
import pickle
import time
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open

from webui import resources
from webui.engine.checkpoints import family as fam
from webui.engine.checkpoints.sidecar import apply_sidecar
from webui.engine.errors import EngineError
from webui.engine.requests import NotFoundError

if TYPE_CHECKING:  # types of the state below (these modules do not import this one)
    from webui.engine.preview import PreviewMap
    from webui.engine.prompts.encoder import PromptEncoder


class CheckpointLoadError(EngineError, RuntimeError):
    """A checkpoint could not be loaded; the message names the file and why."""


class CheckpointNotFound(CheckpointLoadError, NotFoundError):
    """No checkpoint of that title, name or hash (the message lists the available ones)."""


@dataclass
class LoadedModel:
    """The components of one checkpoint (shared by the txt2img / img2img / inpaint pipelines)."""

    title: str
    spec: fam.ModelSpec
    components: dict  # unet, vae, text_encoder, tokenizer, [text_encoder_2, tokenizer_2]
    scheduler_config: dict
    path: Path
    sha256: str | None = None
    load_seconds: float = 0.0
    own_vae: object | None = None  # the checkpoint's VAE, kept when another VAE is swapped in
    # Built on first use and kept here, so they leave the RAM cache together with the model:
    pipelines: dict[str, Any] = field(default_factory=dict)  # diffusers pipelines by kind, sharing `components`
    prompt_encoder: PromptEncoder | None = None  # A1111 prompt encoding over this model's tokenizers/encoders
    # the network modules' own state (typed there; they import this module, so it names them only in words):
    vae_cache: Any = None  # networks.vae.CachedVae: the last VAE file loaded for this model (swapping back is free)
    loras: Any = None  # networks.lora.ModelLoras: LoRA adapters loaded into this model (ModelLoras.of)
    embeddings: Any = None  # networks.embeddings.ModelEmbeddings: textual-inversion vectors in its tokenizers
    preview_map: PreviewMap | None = None  # latent -> RGB map for live previews, fitted to the current VAE
    fp32_vaes: Any = field(default_factory=weakref.WeakSet)  # VAEs that make NaNs in fp16: decoded in fp32
    accelerated: Any = None  # acceleration: what --compile / --backend openvino built for this model, by name

    @property
    def family(self) -> str:
        return self.spec.family

    def modules(self):
        return [m for k, m in self.components.items() if isinstance(m, torch.nn.Module)]

    def to(self, device=None, dtype=None):
        for m in self.modules():
            m.to(device=device, dtype=dtype)
        return self


def _fail(path: Path, why: str) -> CheckpointLoadError:
    return CheckpointLoadError(f"Cannot load checkpoint {Path(path).name}: {why}")


def read_header(path: Path) -> tuple[dict[str, tuple], dict]:
    """Tensor shapes and metadata without reading the weights (safetensors only)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        return shapes, meta
    except (SafetensorError, OSError, ValueError) as exc:
        raise _fail(path, f"not a valid .safetensors file (corrupt or truncated?): {exc}") from exc


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and metadata. Pickle files only through torch.load(weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file not found")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            return load_file(str(path)), meta
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise _fail(path, f"not a valid .safetensors file (corrupt or truncated?): {exc}") from exc
    if suffix in (".ckpt", ".pt", ".pth", ".bin"):
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=False)
        except pickle.UnpicklingError as exc:
            text = str(exc)
            if "Unsupported global" in text or "GLOBAL" in text:
                detail = next((ln.strip() for ln in text.splitlines() if "GLOBAL" in ln), "")
                raise _fail(path, "refused: the pickle holds code or objects other than plain tensors "
                                  "(only weights-only pickles are loaded; convert it to .safetensors). "
                                  f"{detail}") from exc
            raise _fail(path, f"not a readable PyTorch checkpoint (corrupt or truncated?): {text.splitlines()[-1]}") from exc
        except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
            raise _fail(path, f"not a readable PyTorch checkpoint (corrupt or truncated?): {exc}") from exc
        # weights one level down: Lightning's "state_dict"; Real-ESRGAN's and GFPGAN's "params_ema" / "params"
        while isinstance(obj, dict) and (inner := next((obj[k] for k in ("state_dict", "params_ema", "params")
                                                        if isinstance(obj.get(k), dict)), None)) is not None:
            obj = inner
        if not isinstance(obj, dict):
            raise _fail(path, "the file holds no state dict")
        return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}, {}
    raise _fail(path, f"unsupported file type {suffix!r} (use .safetensors or .ckpt)")


def inspect_checkpoint(path: Path) -> fam.ModelSpec:
    """Family and configs of a file, reading only what is needed."""
    path = Path(path)
    if path.is_dir():
        return _folder_spec(path)
    if path.suffix.lower() == ".safetensors":
        shapes, meta = read_header(path)
    else:
        sd, meta = read_state_dict(path)
        shapes = {k: tuple(v.shape) for k, v in sd.items()}
    try:
        return apply_sidecar(fam.detect(shapes, meta), path)
    except (fam.UnknownModelError, EngineError) as exc:
        raise _fail(path, str(exc)) from exc


def load_single_file(path: Path, dtype: torch.dtype, reuse: dict | None = None) -> tuple[fam.ModelSpec, dict]:
    """Build the components of a single-file checkpoint.

    diffusers' converters turn the LDM keys into diffusers keys; the modules are built from the inferred configs
    on the meta device (or taken from `reuse`, the modules of an unloaded checkpoint with identical configs) and
    the weights are assigned in one pass, cast once. Measured on SD1.5 (bench/swap.py) this is ~2.5x faster than
    `from_single_file`, whose per-tensor copies dominate; the configs are the same local ones either way.
    """
    sd, meta = read_state_dict(path)
    try:
        spec = apply_sidecar(fam.detect({k: tuple(v.shape) for k, v in sd.items()}, meta), path, sd)
    except (fam.UnknownModelError, EngineError) as exc:
        raise _fail(path, str(exc)) from exc
    reuse = reuse if reuse and reuse.get("_config_key") == spec.config_key() else {}
    try:
        comps = {name: _build(name, spec, sd, dtype, reuse.get(name)) for name in _MODEL_PARTS[spec.family]}
    except CheckpointLoadError as exc:
        raise _fail(path, str(exc)) from exc
    except Exception as exc:  # anything else a damaged file can cause
        raise _fail(path, f"{type(exc).__name__}: {exc}") from exc
    comps.update(resources.tokenizers_for(spec.family))
    return spec, comps


_MODEL_PARTS = {"sd1": ("unet", "vae", "text_encoder"), "sd2": ("unet", "vae", "text_encoder"),
                "sdxl": ("unet", "vae", "text_encoder", "text_encoder_2")}


def _build(name: str, spec: fam.ModelSpec, sd: dict, dtype: torch.dtype, module=None):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = spec.configs[name]
    if module is None:
        with init_empty_weights():  # parameters on meta, buffers real
            if name == "unet":
                module = UNet2DConditionModel.from_config(cfg)
            elif name == "vae":
                module = AutoencoderKL.from_config(cfg)
            else:
                cls = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
                module = cls(CLIPTextConfig(**{k: v for k, v in cfg.items() if not k.startswith("_")}))
    if name == "unet":
        weights = sfu.convert_ldm_unet_checkpoint(sd, dict(module.config))
    elif name == "vae":
        weights = sfu.convert_ldm_vae_checkpoint(sd, dict(module.config))
    elif name == "text_encoder" and spec.family == "sd2":
        weights = sfu.convert_open_clip_checkpoint(module, sd, prefix=fam.SD2_TE)
    elif name == "text_encoder":
        weights = sfu.convert_ldm_clip_checkpoint(sd)
    else:
        weights = sfu.convert_open_clip_checkpoint(module, sd, prefix=fam.XL_TE2)
    if not hasattr(module, "text_model"):  # transformers 5 flattened CLIPTextModel
        weights = {k.removeprefix("text_model."): v for k, v in weights.items()}
    problem = assign_weights(module, weights, dtype)
    if problem:
        raise CheckpointLoadError(f"{name}: {problem}")
    return module.to(dtype)


def assign_weights(module: torch.nn.Module, weights: dict, dtype: torch.dtype) -> str | None:
    """Put converted weights into a module (cast once, no copies when the dtype matches). Returns what does not
    fit (missing weights, wrong shapes) instead, leaving the module untouched."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in weights]
    if missing:
        return f"weights missing from the file: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
    for k, v in expected.items():
        if tuple(weights[k].shape) != tuple(v.shape):
            return f"weight {k} has shape {tuple(weights[k].shape)}, expected {tuple(v.shape)}"
    module.load_state_dict({k: weights[k].to(dtype) for k in expected}, strict=True, assign=True)
    return None


def _folder_spec(folder: Path) -> fam.ModelSpec:
    try:
        index = json.loads((folder / "model_index.json").read_text())
        unet = json.loads((folder / "unet" / "config.json").read_text())
        sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise _fail(folder, f"not a diffusers model folder ({exc})") from exc
    cls = index.get("_class_name", "")
    family = "sdxl" if "XL" in cls else ("sd2" if unet.get("cross_attention_dim") == 1024 else "sd1")
    side = unet.get("sample_size", 64) * 8
    configs = {"unet": unet, "scheduler": sched}
    pred = sched.get("prediction_type", "epsilon")
    return fam.ModelSpec(family, unet.get("in_channels") == 9, pred, configs, (side, side))


def load_folder(folder: Path, dtype: torch.dtype) -> tuple[fam.ModelSpec, dict]:
    from diffusers import DiffusionPipeline

    spec = _folder_spec(folder)
    try:
        pipe = DiffusionPipeline.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype,
                                                 safety_checker=None, requires_safety_checker=False)
    except Exception as exc:
        raise _fail(folder, f"{type(exc).__name__}: {exc}") from exc
    keep = ("unet", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
    comps = {k: v for k, v in pipe.components.items() if k in keep and v is not None}
    spec.configs.update({k: dict(comps[k].config) for k in ("vae",) if k in comps})
    return spec, comps


def load_checkpoint(path: Path, title: str, device: torch.device, dtype: torch.dtype, reuse: dict | None = None) -> LoadedModel:
    t0 = time.perf_counter()
    path = Path(path)
    spec, comps = load_folder(path, dtype) if path.is_dir() else load_single_file(path, dtype, reuse)
    for m in comps.values():
        if isinstance(m, torch.nn.Module):
            m.requires_grad_(False).eval()
    model = LoadedModel(title=title, spec=spec, components=comps, scheduler_config=dict(spec.configs["scheduler"]), path=path)
    model.own_vae = comps["vae"]
    if spec.family == "sd2" and not spec.prediction_known:
        _decide_sd2_prediction(model)
    if device.type != "cpu":
        model.to(device)
    model.load_seconds = time.perf_counter() - t0
    return model


@torch.no_grad()
def _decide_sd2_prediction(model: LoadedModel) -> None:
    """SD 2.x files don't say whether they predict noise or v. A1111's test: run the UNet at t=999 on a flat
    input; a v-prediction model's output is far below the input (mean(out - x) < -1)."""
    unet = model.components["unet"]
    dt = next(unet.parameters()).dtype
    x = torch.full((1, unet.config.in_channels, 8, 8), 0.5, dtype=dt)
    cond = torch.full((1, 2, unet.config.cross_attention_dim), 0.5, dtype=dt)
    out = unet(x, torch.tensor([999]), encoder_hidden_states=cond).sample
    is_v = (out.float() - x[:, :out.shape[1]].float()).mean().item() < -1
    model.spec.prediction_type = "v_prediction" if is_v else "epsilon"
    model.spec.prediction_known = True
    model.scheduler_config["prediction_type"] = model.spec.prediction_type
