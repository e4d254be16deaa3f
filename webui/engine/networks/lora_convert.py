"""LoRA files of every common layout -> one canonical PEFT state dict for diffusers' ``load_lora_weights``.

Layouts read (all resolved against the *loaded model's own module names*, so every key either lands on a real
module with the right shape or is reported):

* kohya / A1111 (``lora_unet_*``, ``lora_te_*``, SDXL ``lora_te1_*`` / ``lora_te2_*``; ``lora_down`` /
  ``lora_up`` / ``alpha``), including LoCon conv layers (3x3 ``lora_down``, 1x1 ``lora_up``). UNet module names are
  accepted in diffusers spelling (``down_blocks_0_attentions_0_...``, what kohya uses for SD 1.x/2.x) and in the
  original LDM spelling (``input_blocks_1_1_...``, what kohya uses for SDXL and some SD 1.x tools write); the LDM
  names come from the project's diffusers->LDM exporter applied to the loaded UNet, so they follow its real block
  layout.
* diffusers / PEFT (``unet.<module>.lora_A.weight``, ``text_encoder.<module>.lora_B.weight``; the older
  ``...processor.to_q_lora.down.weight`` and ``lora_linear_layer`` spellings; ``.alpha`` keys or diffusers'
  ``lora_adapter_metadata``).

The ``alpha / rank`` scale of each module is baked into ``lora_B`` (so the PEFT config needs alpha == rank, which is
what diffusers assumes when no alphas are given). Not supported (``UnsupportedNetworkError``): LoHa, LoKr, LyCORIS
full/IA3/norm/GLoRA modules, Tucker-decomposed LoCon (``lora_mid``) and DoRA (``dora_scale``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import torch

from webui.engine.networks.common import NetworkError, UnsupportedNetworkError, family_label

COMPONENTS = ("unet", "text_encoder", "text_encoder_2")
KOHYA_PREFIXES = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder",
                  "lora_te2_": "text_encoder_2"}
LORA_PARTS = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}
UNSUPPORTED_PARTS = (
    ("hada_", "LoHa"), ("lokr_", "LoKr"), ("lora_mid", "LoCon with Tucker decomposition (lora_mid)"),
    ("dora_scale", "DoRA"), ("diff", "LyCORIS full weight difference"), ("on_input", "IA3"), ("w_norm", "norm layers"),
    ("b_norm", "norm layers"), ("a1.weight", "GLoRA"), ("lora_up.bias", "LoRA with bias"), ("bias_indices", "sparse bias"),
)


@dataclass(frozen=True)
class Target:
    component: str
    name: str  # module path inside the component (diffusers / transformers names)
    kind: str  # linear | conv
    in_features: int
    out_features: int
    kernel: tuple[int, int] = (1, 1)


@dataclass
class ModuleTable:
    """Every LoRA-able module (Linear / Conv2d) of a model, under all names a LoRA file may use for it."""
    family: str
    by_path: dict[tuple[str, str], Target]
    kohya: dict[str, Target]


@dataclass
class ConvertedLora:
    state_dict: dict[str, torch.Tensor]  # "<component>.<module>.lora_A.weight" / ".lora_B.weight"
    components: set[str]
    modules: int  # modules in the file
    matched: int  # modules applied
    warnings: list[str] = field(default_factory=list)


def _flat(name: str) -> str:
    return name.replace(".", "_")


def build_module_table(model) -> ModuleTable:
    """The LoRA-able modules of `model` (a LoadedModel). Call before adapters are injected (cached by the caller);
    PEFT-wrapped modules are still recognised through their base layer."""
    from webui.engine.checkpoints.ldm_export import unet_to_ldm

    by_path: dict[tuple[str, str], Target] = {}
    kohya: dict[str, Target] = {}
    te_prefix = {"text_encoder": "lora_te1_" if model.family == "sdxl" else "lora_te_", "text_encoder_2": "lora_te2_"}
    for comp in COMPONENTS:
        module = model.components.get(comp)
        if module is None:
            continue
        for name, mod in _lora_able(module):
            if isinstance(mod, torch.nn.Conv2d):
                t = Target(comp, name, "conv", mod.in_channels, mod.out_channels, tuple(mod.kernel_size))
            else:
                t = Target(comp, name, "linear", mod.in_features, mod.out_features)
            by_path[(comp, name)] = t
            if comp == "unet":
                kohya.setdefault("lora_unet_" + _flat(name), t)
            else:
                hf = name if name.startswith("text_model.") else "text_model." + name
                by_path.setdefault((comp, hf), t)
                by_path.setdefault((comp, name.removeprefix("text_model.")), t)
                kohya.setdefault(te_prefix[comp] + _flat(hf), t)
                kohya.setdefault(te_prefix[comp] + _flat(name.removeprefix("text_model.")), t)
    unet = model.components.get("unet")
    if unet is not None:
        # LDM ("sgm") names: map the UNet's parameter names through the exporter (same order, one key per key)
        params = [k for k in unet.state_dict() if ".lora_" not in k]
        clean = [k.replace(".base_layer", "") for k in params]
        try:
            ldm = list(unet_to_ldm(unet).keys())
        except (KeyError, AttributeError):
            ldm = []
        ldm = [k for k in ldm if ".lora_" not in k]
        if len(ldm) == len(clean):
            for d_key, l_key in zip(clean, ldm):
                if d_key.endswith(".weight"):
                    t = by_path.get(("unet", d_key[: -len(".weight")]))
                    if t is not None:
                        kohya.setdefault("lora_unet_" + _flat(l_key.replace(".base_layer", "")[: -len(".weight")]), t)
    return ModuleTable(model.family, by_path, kohya)


def _lora_able(root: torch.nn.Module):
    from peft.tuners.tuners_utils import BaseTunerLayer

    skip: list[str] = []
    for name, mod in root.named_modules():
        if any(name.startswith(s + ".") for s in skip):
            continue
        if isinstance(mod, BaseTunerLayer):
            skip.append(name)
            mod = mod.get_base_layer()
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            yield name, mod


# ---- reading the file's layout -------------------------------------------------------------------------------

_PEFT_PATTERNS = (
    (re.compile(r"^(.*)\.lora_([AB])(?:\.[A-Za-z0-9_]+)?\.weight$"), lambda m: (m[1], "down" if m[2] == "A" else "up")),
    (re.compile(r"^(.*)\.lora(?:_linear_layer)?\.(down|up)\.weight$"), lambda m: (m[1], m[2])),
    (re.compile(r"^(.*)_lora\.(down|up)\.weight$"), lambda m: (m[1], m[2])),
    (re.compile(r"^(.*)\.lora_(down|up)\.weight$"), lambda m: (m[1], m[2])),
    (re.compile(r"^(.*)\.alpha$"), lambda m: (m[1], "alpha")),
)
_TE_ATTN = {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj", "to_out.0": "out_proj"}


def _split_peft(key: str) -> tuple[str, str, str] | None:
    """(component, module path, part) of a diffusers/PEFT key, or None."""
    k = key.removeprefix("base_model.model.")
    for rx, fn in _PEFT_PATTERNS:
        m = rx.match(k)
        if m:
            module, part = fn(m)
            break
    else:
        return None
    head, _, rest = module.partition(".")
    if head in COMPONENTS:
        comp, module = head, rest
    else:
        comp = "unet"  # bare UNet attention-processor files
    module = module.replace(".processor.", ".").removesuffix(".processor")
    if comp == "unet":
        if module.endswith(".to_out"):
            module += ".0"
    else:
        for old, new in _TE_ATTN.items():
            if module.endswith("." + old):
                module = module[: -len(old)] + new
                break
    return comp, module, part


def _unsupported_kinds(keys) -> list[str]:
    found = []
    for key in keys:
        tail = key.split(".", 1)[1] if "." in key else key
        for marker, label in UNSUPPORTED_PARTS:
            if marker == "diff":
                hit = tail in ("diff", "diff_b")
            else:
                hit = marker in tail
            if hit and label not in found:
                found.append(label)
    return found


def guess_family(state_dict: dict, metadata: dict) -> str | None:
    """The family a LoRA was made for, from its metadata or keys (None when unknown)."""
    base = str(metadata.get("ss_base_model_version", "")).lower()
    arch = str(metadata.get("modelspec.architecture", "")).lower()
    if base.startswith("sdxl") or "stable-diffusion-xl" in arch:
        return "sdxl"
    if base.startswith("sd_v2") or str(metadata.get("ss_v2", "")).lower() == "true" or "stable-diffusion-v2" in arch:
        return "sd2"
    if base.startswith("sd_v1") or "stable-diffusion-v1" in arch:
        return "sd1"
    if any(k.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) for k in state_dict):
        return "sdxl"
    for k, v in state_dict.items():  # cross-attention context width of the real models
        if ("attn2_to_k" in k or "attn2.to_k" in k) and ("lora_down" in k or "lora_A" in k or ".down." in k):
            return {768: "sd1", 1024: "sd2", 2048: "sdxl"}.get(int(v.shape[-1]))
    return None


def _adapter_alphas(metadata: dict) -> dict:
    raw = metadata.get("lora_adapter_metadata")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    return raw if isinstance(raw, dict) else {}


def _metadata_alpha(adapter_meta: dict, comp: str, module: str, rank: int) -> float:
    pattern = adapter_meta.get(f"{comp}.alpha_pattern") or {}
    for key, value in (pattern.items() if isinstance(pattern, dict) else []):
        k = key.lstrip("^")
        if module == k or module.endswith("." + k):
            return float(value)
    if f"{comp}.lora_alpha" in adapter_meta:
        return float(adapter_meta[f"{comp}.lora_alpha"])
    return float(rank)


def convert_lora(lora_name: str, state_dict: dict[str, torch.Tensor], metadata: dict, table: ModuleTable,
                 model_title: str = "") -> ConvertedLora:
    """Map a LoRA file's tensors onto the model described by `table`. Raises NetworkError when nothing fits or the
    LoRA was made for another family, UnsupportedNetworkError for formats PEFT/diffusers cannot apply."""
    fam = family_label(table.family)
    where = f"the loaded {fam} model" + (f" ({model_title})" if model_title else "")
    if not state_dict:
        raise NetworkError(f"LoRA {lora_name!r} holds no tensors")
    kinds = _unsupported_kinds(state_dict)
    if kinds:
        raise UnsupportedNetworkError(
            f"LoRA {lora_name!r} uses an unsupported format ({', '.join(kinds)}); supported are LoRA and LoCon "
            f"(kohya, A1111, diffusers/PEFT layouts)")

    groups: dict[tuple[str, str], dict[str, torch.Tensor]] = {}  # (layout key) -> parts
    resolved: dict[tuple[str, str], Target | None] = {}
    unknown_keys = []
    for key, tensor in state_dict.items():
        prefix = next((p for p in KOHYA_PREFIXES if key.startswith(p)), None)
        if prefix is not None and "." in key:
            base, part = key.split(".", 1)
            part = LORA_PARTS.get(part)
            if part is None:
                unknown_keys.append(key)
                continue
            gk = ("kohya", base)
            groups.setdefault(gk, {})[part] = tensor
            if gk not in resolved:
                resolved[gk] = table.kohya.get(base)
            continue
        split = _split_peft(key)
        if split is None:
            unknown_keys.append(key)
            continue
        comp, module, part = split
        gk = (comp, module)
        groups.setdefault(gk, {})[part] = tensor
        if gk not in resolved:
            resolved[gk] = table.by_path.get((comp, module))
    if unknown_keys:
        raise UnsupportedNetworkError(
            f"LoRA {lora_name!r}: {len(unknown_keys)} key(s) of an unknown layout, e.g. {', '.join(unknown_keys[:3])}")

    adapter_meta = _adapter_alphas(metadata)
    out: dict[str, torch.Tensor] = {}
    unmatched, wrong_shape, incomplete = [], [], []
    components: set[str] = set()
    for gk, parts in groups.items():
        label = gk[1] if gk[0] == "kohya" else f"{gk[0]}.{gk[1]}"
        if "down" not in parts or "up" not in parts:
            incomplete.append(label)
            continue
        target = resolved.get(gk)
        if target is None:
            unmatched.append(label)
            continue
        down, up = _fit(parts["down"], parts["up"], target)
        if down is None:
            wrong_shape.append(f"{label} {tuple(parts['down'].shape)}->{tuple(parts['up'].shape)} vs "
                               f"{target.kind} {target.in_features}->{target.out_features}")
            continue
        rank = down.shape[0]
        if "alpha" in parts:
            alpha = float(parts["alpha"].float().reshape(-1)[0])
        elif gk[0] != "kohya":
            alpha = _metadata_alpha(adapter_meta, target.component, target.name, rank)
        else:
            alpha = float(rank)
        scale = alpha / rank if alpha else 1.0  # kohya: alpha 0 / missing means "no scaling"
        key = f"{target.component}.{target.name}"
        out[f"{key}.lora_A.weight"] = down.contiguous()
        out[f"{key}.lora_B.weight"] = (up.float() * scale).to(up.dtype).contiguous() if scale != 1.0 else up.contiguous()
        components.add(target.component)

    total = len(groups)
    matched = len(out) // 2
    guess = guess_family(state_dict, metadata)
    other = f" (it looks like an {family_label(guess)} LoRA)" if guess and guess != table.family else ""
    if incomplete and not matched:
        raise NetworkError(f"LoRA {lora_name!r} is damaged: modules without both lora_down and lora_up, "
                           f"e.g. {', '.join(incomplete[:3])}")
    if wrong_shape and ((guess is not None and guess != table.family) or len(wrong_shape) * 2 >= total):
        raise NetworkError(
            f"LoRA {lora_name!r} does not fit {where}: {len(wrong_shape)} of its {total} modules have other shapes"
            f"{other or ' (made for another model family?)'}, e.g. {wrong_shape[0]}")
    if not matched:
        raise NetworkError(
            f"LoRA {lora_name!r} matches no module of {where}{other or ' (made for another model family?)'}; "
            f"e.g. {', '.join((unmatched or wrong_shape)[:3])}")
    if guess and guess != table.family and (unmatched or wrong_shape):
        raise NetworkError(
            f"LoRA {lora_name!r} was made for {family_label(guess)}, not for {where}: {len(unmatched) + len(wrong_shape)} "
            f"of its {total} modules do not fit")
    warnings = []
    skipped = unmatched + wrong_shape + incomplete
    if skipped:
        warnings.append(f"LoRA {lora_name!r}: {len(skipped)} of its {total} modules fit nothing in {where} and were "
                        f"ignored, e.g. {', '.join(skipped[:3])}")
    return ConvertedLora(out, components, total, matched, warnings)


def _fit(down: torch.Tensor, up: torch.Tensor, t: Target):
    """(down, up) reshaped for the target module, or (None, None) when the shapes do not fit it."""
    if down.ndim < 2 or up.ndim < 2:
        return None, None
    rank = down.shape[0]
    if up.shape[1] != rank:
        return None, None
    if t.kind == "linear":
        if down.ndim == 4 and down.shape[2:] == (1, 1):
            down = down[:, :, 0, 0]
        if up.ndim == 4 and up.shape[2:] == (1, 1):
            up = up[:, :, 0, 0]
        if down.ndim != 2 or up.ndim != 2 or down.shape[1] != t.in_features or up.shape[0] != t.out_features:
            return None, None
        return down, up
    if down.ndim == 2:
        if t.kernel != (1, 1):
            return None, None
        down = down[:, :, None, None]
    if up.ndim == 2:
        up = up[:, :, None, None]
    if (down.shape[1] != t.in_features or tuple(down.shape[2:]) != t.kernel or up.shape[0] != t.out_features
            or tuple(up.shape[2:]) != (1, 1)):
        return None, None
    return down, up
