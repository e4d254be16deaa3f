"""ControlNet model files: found in the ControlNet folders, named as sd-webui-controlnet names them
("control_v11p_sd15_canny [d14c016b]"), read safely, and built as diffusers ``ControlNetModel``s, offline.

* Folders: models/ControlNet, A1111's extensions/sd-webui-controlnet/models, and every --controlnet-dir.
* Files: ``.safetensors``; ``.pth``/``.pt``/``.ckpt`` only through ``torch.load(weights_only=True)`` (the
  checkpoint loader's reader: a pickle that holds code is refused).
* Layouts: the original (cldm, LDM names, with or without ``control_model.``) and diffusers' names in one file.
* Config: the family's bundled config (webui/resources/configs/<family>/controlnet), with what the tensor shapes
  say (channels, levels, attention) and, where shapes cannot tell (heads, SDXL's time-embedding width), the
  values of the checkpoint it runs with, whose encoder a ControlNet copies.
* Family: SDXL has ``label_emb`` (the size/crop embedding), SD 2.x a linear ``proj_in`` and 1024-wide text
  features, SD 1.x neither. A file for another family than the checkpoint's is an error naming both.
* Cache: the last ``size`` models built stay in RAM (least recently used goes first), like checkpoints.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from webui import resources
from webui.engine.checkpoints.family import FAMILY_LABELS
from webui.engine.checkpoints.loader import (
    CheckpointLoadError,
    assign_weights,
    read_state_dict,
)
from webui.engine.controlnet import ldm_layout
from webui.engine.errors import EngineError
from webui.engine.requests import NotFoundError, RequestError

EXTENSIONS = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


class ControlNetLoadError(EngineError, RuntimeError):
    """A ControlNet file could not be loaded; the message names it and why."""


class ControlNetMismatch(RequestError):
    """The ControlNet is for another model family (or size) than the checkpoint."""


def short_hash(path: Path) -> str:
    """A1111's short model hash (sha256 of 64 KiB at offset 1 MiB, 8 hex digits): what the extension shows."""
    with open(path, "rb") as f:
        f.seek(0x100000)
        return hashlib.sha256(f.read(0x10000)).hexdigest()[:8]


@dataclass(frozen=True)
class ControlNetInfo:
    name: str  # file stem
    path: Path
    hash: str

    @property
    def title(self) -> str:
        return f"{self.name} [{self.hash}]"


class ControlNetRegistry:
    """The ControlNet files of the search folders (rescanned on refresh)."""

    def __init__(self, folders: list[Path]):
        self.folders = [Path(f) for f in folders]
        self._items: list[ControlNetInfo] | None = None

    def refresh(self) -> list[ControlNetInfo]:
        items, seen = [], set()
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() in EXTENSIONS and path.is_file() and path.stem not in seen:
                    seen.add(path.stem)
                    items.append(ControlNetInfo(path.stem, path, short_hash(path)))
        self._items = sorted(items, key=lambda i: i.name.lower())
        return self._items

    def list(self) -> list[ControlNetInfo]:
        return self._items if self._items is not None else self.refresh()

    def resolve(self, query: str) -> ControlNetInfo:
        """By title ("name [hash]"), name, or file name; NotFoundError listing what there is."""
        for items in (self.list(), None):
            items = items if items is not None else self.refresh()
            q = query.strip()
            bare = re.sub(r"\s*\[[0-9a-fA-F]{8,}\]$", "", q)
            for info in items:
                if q in (info.title, info.name, info.path.name) or bare in (info.name, info.path.name):
                    return info
        names = ", ".join(i.title for i in self.list()) or "none"
        folders = ", ".join(str(f) for f in self.folders)
        raise NotFoundError(f"ControlNet model {query!r} not found (available: {names}; folders: {folders})")


# ---- what a state dict is ------------------------------------------------------------------------------

def _ldm_family(keys, shapes) -> str:
    if "label_emb.0.0.weight" in keys:
        return "sdxl"
    proj = next((k for k in keys if k.endswith(".proj_in.weight")), None)
    cross = next((shapes[k][1] for k in keys if k.endswith("attn2.to_k.weight")), None)
    if cross == 1024 or (proj is not None and len(shapes[proj]) == 2):
        return "sd2"
    return "sd1"


def _ldm_config(shapes: dict) -> dict:
    """What the cldm tensor shapes say about the architecture."""
    keys = shapes.keys()
    levels = [{"res": 0, "attn": False, "ch": shapes["input_blocks.0.0.weight"][0]}]
    i = 1
    while any(k.startswith(f"input_blocks.{i}.") for k in keys):
        if f"input_blocks.{i}.0.op.weight" in keys:
            levels.append({"res": 0, "attn": False, "ch": levels[-1]["ch"]})
        else:
            levels[-1]["res"] += 1
            levels[-1]["ch"] = shapes[f"input_blocks.{i}.0.out_layers.3.weight"][0]
            levels[-1]["attn"] |= f"input_blocks.{i}.1.norm.weight" in keys
        i += 1
    hint = sorted(int(m.group(1)) for k in keys if (m := re.fullmatch(r"input_hint_block\.(\d+)\.weight", k)))
    hint_out = [shapes[f"input_hint_block.{n}.weight"][0] for n in hint]
    cfg = {
        "in_channels": shapes["input_blocks.0.0.weight"][1],
        "block_out_channels": [lvl["ch"] for lvl in levels],
        "layers_per_block": levels[0]["res"],
        "down_block_types": ["CrossAttnDownBlock2D" if lvl["attn"] else "DownBlock2D" for lvl in levels],
        "conditioning_channels": shapes["input_hint_block.0.weight"][1],
        "conditioning_embedding_out_channels": hint_out[0:-1:2],
        "mid_block_type": "UNetMidBlock2DCrossAttn" if "middle_block.1.norm.weight" in keys else "UNetMidBlock2D",
    }
    cross = next((shapes[k][1] for k in keys if k.endswith("attn2.to_k.weight")), None)
    if cross is not None:
        cfg["cross_attention_dim"] = cross
    if shapes["input_blocks.0.0.weight"][2] != 3:
        raise ControlNetLoadError("its first convolution is not 3x3, which diffusers' ControlNetModel cannot build")
    return cfg


def _diffusers_config(shapes: dict) -> dict:
    keys = shapes.keys()
    n = 1 + max(int(m.group(1)) for k in keys if (m := re.match(r"down_blocks\.(\d+)\.", k)))
    chans = [shapes[f"down_blocks.{i}.resnets.0.conv2.weight"][0] for i in range(n)]
    emb = sorted(int(m.group(1)) for k in keys
                 if (m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)\.weight", k)))
    emb_out = [shapes["controlnet_cond_embedding.conv_in.weight"][0]] + \
              [shapes[f"controlnet_cond_embedding.blocks.{b}.weight"][0] for b in emb[1::2]]
    cfg = {
        "in_channels": shapes["conv_in.weight"][1],
        "block_out_channels": chans,
        "layers_per_block": 1 + max(int(m.group(1)) for k in keys if (m := re.match(r"down_blocks\.0\.resnets\.(\d+)\.", k))),
        "down_block_types": ["CrossAttnDownBlock2D" if any(k.startswith(f"down_blocks.{i}.attentions.") for k in keys)
                             else "DownBlock2D" for i in range(n)],
        "conditioning_channels": shapes["controlnet_cond_embedding.conv_in.weight"][1],
        "conditioning_embedding_out_channels": emb_out,
        "mid_block_type": "UNetMidBlock2DCrossAttn" if any(k.startswith("mid_block.attentions.") for k in keys)
        else "UNetMidBlock2D",
    }
    cross = next((shapes[k][1] for k in keys if k.endswith("attn2.to_k.weight")), None)
    if cross is not None:
        cfg["cross_attention_dim"] = cross
    return cfg


def _diffusers_family(keys, shapes) -> str:
    if "add_embedding.linear_1.weight" in keys:
        return "sdxl"
    proj = next((k for k in keys if k.endswith(".proj_in.weight")), None)
    cross = next((shapes[k][1] for k in keys if k.endswith("attn2.to_k.weight")), None)
    return "sd2" if cross == 1024 or (proj is not None and len(shapes[proj]) == 2) else "sd1"


def inspect_state_dict(sd: dict) -> tuple[str, dict]:
    """(family, architecture from the shapes) of a ControlNet state dict; ControlNetLoadError if it is none."""
    sd = ldm_layout.strip_prefix(sd)
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    if ldm_layout.is_diffusers_layout(shapes):
        return _diffusers_family(shapes.keys(), shapes), _diffusers_config(shapes)
    if "input_hint_block.0.weight" not in shapes or "input_blocks.0.0.weight" not in shapes:
        what = ("a T2I-Adapter or Control-LoRA" if any("adapter" in k or "lora" in k for k in shapes)
                else "not a ControlNet (no input_hint_block / controlnet_cond_embedding weights)")
        raise ControlNetLoadError(f"{what}; only ControlNet models are supported")
    return _ldm_family(shapes.keys(), shapes), _ldm_config(shapes)


# ---- building one for a checkpoint -------------------------------------------------------------------

COPIED_FROM_UNET = ("attention_head_dim", "num_attention_heads", "transformer_layers_per_block",
                    "use_linear_projection", "upcast_attention", "addition_embed_type", "addition_time_embed_dim",
                    "projection_class_embeddings_input_dim", "norm_num_groups", "norm_eps", "flip_sin_to_cos",
                    "freq_shift", "act_fn", "only_cross_attention", "class_embed_type", "resnet_time_scale_shift")


def check_fits(name: str, family: str, arch: dict, model_title: str, model_family: str, unet_config: dict) -> None:
    """ControlNetMismatch naming both families (or the sizes that differ)."""
    if family != model_family:
        raise ControlNetMismatch(
            f"ControlNet {name} is a {FAMILY_LABELS[family]} model, but the checkpoint {model_title} is "
            f"{FAMILY_LABELS[model_family]}: choose a {FAMILY_LABELS[model_family]} ControlNet (or a "
            f"{FAMILY_LABELS[family]} checkpoint)")
    for key in ("block_out_channels", "layers_per_block", "cross_attention_dim"):
        want = unet_config.get(key)
        if key in arch and want is not None and list(arch[key] if isinstance(arch[key], (list, tuple)) else [arch[key]]) \
                != list(want if isinstance(want, (list, tuple)) else [want]):
            raise ControlNetMismatch(
                f"ControlNet {name} does not fit the checkpoint {model_title} (both {FAMILY_LABELS[family]}): "
                f"its {key} is {arch[key]}, the checkpoint's {want}")


def controlnet_config(family: str, arch: dict, unet_config: dict) -> dict:
    base = json.loads((resources.config_dir(family) / "controlnet" / "config.json").read_text())
    cfg = {**base, **{k: unet_config[k] for k in COPIED_FROM_UNET if k in unet_config}, **arch}
    cfg.pop("sample_size", None)
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def build(sd: dict, config: dict, dtype: torch.dtype):
    from accelerate import init_empty_weights
    from diffusers import ControlNetModel

    with init_empty_weights():
        net = ControlNetModel.from_config(config)
    weights = ldm_layout.to_diffusers(sd, config)
    problem = assign_weights(net, weights, dtype)
    if problem:
        raise ControlNetLoadError(problem)
    return net.to(dtype).eval().requires_grad_(False)


def read_controlnet(path: Path) -> dict:
    try:
        sd, _ = read_state_dict(Path(path))
    except CheckpointLoadError as exc:
        raise ControlNetLoadError(str(exc).replace("Cannot load checkpoint", "Cannot load ControlNet")) from exc
    return sd


class ControlNetCache:
    """Built ControlNets by (file, its change time, dtype, device, config): the ``size`` last used stay."""

    def __init__(self, size: int = 2):
        self.size = max(1, int(size))
        self.items: OrderedDict[tuple, object] = OrderedDict()
        self.loads = 0

    def get(self, info: ControlNetInfo, model, dtype: torch.dtype, device: torch.device):
        """The ControlNet of ``info`` built for the LoadedModel ``model`` (family checked)."""
        sd = None
        family, arch = self._inspect(info)
        unet_config = dict(model.components["unet"].config)
        check_fits(info.title, family, arch, model.title, model.family, unet_config)
        config = controlnet_config(family, arch, unet_config)
        key = (str(info.path), info.path.stat().st_mtime_ns, str(dtype), str(device), json.dumps(config, sort_keys=True,
                                                                                                  default=str))
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        sd = read_controlnet(info.path)
        try:
            net = build(sd, config, dtype).to(device)
        except ControlNetLoadError as exc:
            raise ControlNetLoadError(f"Cannot load ControlNet {info.path.name}: {exc}") from exc
        except Exception as exc:  # anything a damaged file can cause
            raise ControlNetLoadError(f"Cannot load ControlNet {info.path.name}: {type(exc).__name__}: {exc}") from exc
        self.items[key] = net
        self.loads += 1
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return net

    def _inspect(self, info: ControlNetInfo) -> tuple[str, dict]:
        """Family and architecture, from the header only when the file is a .safetensors."""
        if info.path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            try:
                with safe_open(str(info.path), framework="pt") as f:
                    shapes = {k: _Shape(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
            except Exception as exc:
                raise ControlNetLoadError(f"Cannot load ControlNet {info.path.name}: not a valid .safetensors file "
                                          f"(corrupt or truncated?): {exc}") from exc
        else:
            shapes = {k: _Shape(v.shape) for k, v in read_controlnet(info.path).items()}
        try:
            return inspect_state_dict(shapes)
        except ControlNetLoadError as exc:
            raise ControlNetLoadError(f"Cannot load ControlNet {info.path.name}: {exc}") from exc


class _Shape:
    """Stands in for a tensor where only ``.shape`` is read (family and architecture from a file's header)."""

    def __init__(self, shape):
        self.shape = tuple(shape)
