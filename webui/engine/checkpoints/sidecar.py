"""A checkpoint's own config, as A1111 allows: `name.yaml` next to `name.safetensors` (an original LDM/SGM config:
model.params.unet_config, first_stage_config, parameterization, scale_factor, ...). It wins over what the weights'
shapes suggest, for what shapes cannot tell: attention heads, v-prediction, the VAE's scaling factor, the noise
schedule. diffusers' own converters read the LDM keys; the file is parsed with yaml.safe_load (data, never code)."""
from __future__ import annotations

from pathlib import Path

import yaml

from webui.engine.checkpoints import family as fam
from webui.engine.errors import EngineError


def sidecar_path(checkpoint: Path) -> Path | None:
    for suffix in (".yaml", ".yml"):
        candidate = Path(checkpoint).with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def apply_sidecar(spec: fam.ModelSpec, checkpoint: Path, state_dict: dict | None = None) -> fam.ModelSpec:
    """`spec` with the sidecar config's values, when the checkpoint has one. Without the weights (`state_dict`
    None, a header-only inspection) only the prediction type and the schedule are taken."""
    path = sidecar_path(checkpoint)
    if path is None:
        return spec
    params = _params(path)
    scheduler = spec.configs["scheduler"]
    if params.get("parameterization") == "v":
        spec.prediction_type, spec.prediction_known = "v_prediction", True
    elif "parameterization" in params or spec.family != "sd2":
        spec.prediction_type, spec.prediction_known = "epsilon", True
    scheduler["prediction_type"] = spec.prediction_type
    for ours, theirs in (("beta_start", "linear_start"), ("beta_end", "linear_end"),
                         ("num_train_timesteps", "timesteps")):
        if theirs in params:
            scheduler[ours] = params[theirs]
    if state_dict is not None:
        _models(spec, path, params, state_dict)
    return spec


def _params(path: Path) -> dict:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        params = config["model"]["params"]
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise EngineError(f"{path.name}: not a readable checkpoint config (model.params expected): {exc}") from None
    if not isinstance(params, dict):
        raise EngineError(f"{path.name}: model.params must be a mapping")
    return params


def _models(spec: fam.ModelSpec, path: Path, params: dict, state_dict: dict) -> None:
    from diffusers.loaders import single_file_utils as sfu

    config = {"model": {"params": params}}
    try:
        unet = sfu.create_unet_diffusers_config_from_ldm(config, state_dict)
        vae = sfu.create_vae_diffusers_config_from_ldm(config, state_dict, scaling_factor=params.get("scale_factor"))
    except (KeyError, TypeError, ValueError) as exc:
        raise EngineError(f"{path.name}: its unet_config / first_stage_config could not be read ({exc!r})") from None
    keep = ("sample_size",)  # the native size comes from the file's metadata or the family
    spec.configs["unet"].update({k: v for k, v in unet.items() if k not in keep})
    spec.configs["vae"].update({k: v for k, v in vae.items() if k not in keep})
