"""Request and response bodies of the /sdapi/v1 API. Field names and defaults follow A1111 v1.10.1.

Fields A1111 accepts but this app cannot honour yet are declared too (so the OpenAPI page lists them and old
clients keep working); `webui.api.translate` answers a clear 4xx when one of them is set to something other than
its "off" value. Fields A1111 itself does not know are ignored, as A1111 does (webuiapi still sends
firstphase_width/height, for example).
"""
from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from webui.engine.requests import LONE_SURROGATE


#: Deepest nesting of lists/dicts inside one field (comments, override_settings, alwayson_scripts ...). A1111's own
#: payloads use a few levels; a deeper one could not even be echoed back (serializers give up at a few hundred).
MAX_NESTING = 32


def _bad_item(value: Any) -> str | None:
    """Where inside a field's value (lists and dicts walked, keys too) there is a lone surrogate, a non-finite
    number or too deep a nesting, and what; None when there is none. Iterative: the depth is the client's choice."""
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack:
        where, item, depth = stack.pop()
        at = f" at {where.lstrip('.')}" if where else ""
        if isinstance(item, str):
            bad = LONE_SURROGATE.search(item)
            if bad is not None:
                return (f"a lone surrogate (U+{ord(bad.group()):04X} at position {bad.start()}){at}, which is not "
                        f"valid Unicode text")
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{item} (numbers must be finite){at}"
        elif isinstance(item, (dict, list, tuple)) and depth >= MAX_NESTING:
            return f"lists/objects nested more than {MAX_NESTING} levels deep"
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append((f"{where}.{key}", key, depth + 1))
                stack.append((f"{where}.{key}", sub, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{where}[{i}]", sub, depth + 1) for i, sub in enumerate(item))
    return None


class _Body(BaseModel):
    # allow_inf_nan=False: NaN and +-Infinity (which Python's json accepts) are refused with a 422 naming the field
    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=(), allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _valid_everywhere(cls, value: Any) -> Any:
        """Text that cannot be UTF-8 encoded and non-finite numbers nested in lists/dicts (override_settings,
        comments ...) would only fail later, deep in a job or while writing the answer: refuse them here."""
        bad = _bad_item(value)
        if bad is not None:
            # escaped: the path may quote a key with the very surrogate, which pydantic-core cannot hold
            raise ValueError(f"contains {bad}".encode("utf-8", "backslashreplace").decode("utf-8"))
        return value


class GenerationBody(_Body):
    """Fields shared by txt2img and img2img."""

    prompt: str | None = ""
    negative_prompt: str | None = ""
    styles: list[str] | None = None
    seed: int | None = -1
    subseed: int | None = -1
    subseed_strength: float | None = 0.0
    seed_resize_from_h: int | None = -1
    seed_resize_from_w: int | None = -1
    sampler_name: str | None = None
    scheduler: str | None = None
    batch_size: int | None = 1
    n_iter: int | None = 1
    steps: int | None = 50
    cfg_scale: float | None = 7.0
    width: int | None = 512
    height: int | None = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool | None = False
    do_not_save_grid: bool | None = False
    eta: float | None = None
    denoising_strength: float | None = None
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool | None = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    disable_extra_networks: bool | None = False
    firstpass_image: str | None = None
    comments: dict[str, Any] | None = None
    sampler_index: str | None = "Euler"
    script_name: str | None = None
    script_args: list[Any] | None = Field(default_factory=list)
    send_images: bool | None = True
    save_images: bool | None = False
    alwayson_scripts: dict[str, Any] | None = Field(default_factory=dict)
    force_task_id: str | None = None
    infotext: str | None = None


class Txt2ImgRequest(GenerationBody):
    enable_hr: bool | None = False
    firstphase_width: int | None = 0
    firstphase_height: int | None = 0
    hr_scale: float | None = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int | None = 0
    hr_resize_x: int | None = 0
    hr_resize_y: int | None = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str | None = ""
    hr_negative_prompt: str | None = ""
    hr_cfg: float | None = None  # A1111's "Hires CFG Scale"; None: cfg_scale


class Img2ImgRequest(GenerationBody):
    init_images: list[str] | None = None
    resize_mode: int | None = 0
    denoising_strength: float | None = 0.75
    image_cfg_scale: float | None = None
    mask: str | None = None
    mask_blur_x: int | None = 4
    mask_blur_y: int | None = 4
    mask_blur: int | None = None
    mask_round: bool | None = True
    inpainting_fill: int | None = 0
    inpaint_full_res: bool | None = True
    inpaint_full_res_padding: int | None = 0
    inpainting_mask_invert: int | None = 0
    initial_noise_multiplier: float | None = None
    latent_mask: str | None = None
    include_init_images: bool | None = False


class GenerationResponse(BaseModel):
    images: list[str] | None = Field(default=None, description="Generated images: raw base64 PNG with the infotext "
                                                                 "in the 'parameters' text chunk")
    parameters: dict[str, Any]
    info: str = Field(description="JSON string: seeds, prompts, infotexts, model ...")


class ProgressState(BaseModel):
    skipped: bool = False
    interrupted: bool = False
    stopping_generation: bool = False
    job: str = ""
    job_count: int = 0
    job_timestamp: str = "0"
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0
    queued: int = Field(default=0, description="Jobs waiting behind the current one (not in A1111)")


class ProgressResponse(BaseModel):
    progress: float
    eta_relative: float
    state: ProgressState
    current_image: str | None = None
    textinfo: str | None = None


class PNGInfoRequest(_Body):
    image: str = Field(description="base64 image, with or without a data: prefix")


class PNGInfoResponse(BaseModel):
    info: str
    items: dict[str, Any]
    parameters: dict[str, Any]


class ExtrasBase(_Body):
    resize_mode: Literal[0, 1] = 0
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(default=0, ge=0, le=1)
    codeformer_visibility: float = Field(default=0, ge=0, le=1)
    codeformer_weight: float = Field(default=0, ge=0, le=1)
    upscaling_resize: float = Field(default=2, gt=0)
    upscaling_resize_w: int = Field(default=512, ge=1)
    upscaling_resize_h: int = Field(default=512, ge=1)
    upscaling_crop: bool = True
    upscaler_1: str | None = "None"
    upscaler_2: str | None = "None"
    extras_upscaler_2_visibility: float = Field(default=0, ge=0, le=1)
    upscale_first: bool = False


class ExtrasSingleImageRequest(ExtrasBase):
    image: str = ""


class FileData(_Body):
    data: str
    name: str = ""


class ExtrasBatchImagesRequest(ExtrasBase):
    imageList: list[FileData]


class ExtrasSingleImageResponse(BaseModel):
    html_info: str
    image: str | None = None


class ExtrasBatchImagesResponse(BaseModel):
    html_info: str
    images: list[str]


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float | None = None
    need_inner_model: bool | None = None


class UpscalerItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    name: str
    model_name: str | None = None
    model_path: str | None = None
    model_url: str | None = None
    scale: float | None = None


class LatentUpscalerModeItem(BaseModel):
    name: str


class SDModelItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    title: str
    model_name: str
    hash: str | None = None
    sha256: str | None = None
    filename: str
    config: str | None = None


class SDVaeItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model_name: str
    filename: str


class LoraItem(BaseModel):
    name: str
    alias: str
    path: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class HypernetworkItem(BaseModel):
    name: str
    path: str | None = None


class FaceRestorerItem(BaseModel):
    name: str
    cmd_dir: str | None = None


class RealesrganItem(BaseModel):
    name: str
    path: str | None = None
    scale: int | None = None


class PromptStyleItem(BaseModel):
    name: str
    prompt: str | None = None
    negative_prompt: str | None = None


class EmbeddingItem(BaseModel):
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    shape: int
    vectors: int


class EmbeddingsResponse(BaseModel):
    loaded: dict[str, EmbeddingItem]
    skipped: dict[str, EmbeddingItem]


class MemoryResponse(BaseModel):
    ram: dict[str, Any]
    cuda: dict[str, Any]


class ScriptsList(BaseModel):
    txt2img: list[str] = Field(default_factory=list)
    img2img: list[str] = Field(default_factory=list)


class ScriptInfo(BaseModel):
    name: str | None = None
    is_alwayson: bool | None = None
    is_img2img: bool | None = None
    args: list[dict[str, Any]] = Field(default_factory=list)


class ExtensionItem(BaseModel):
    name: str
    remote: str | None = None
    branch: str | None = None
    commit_hash: str | None = None
    version: str | None = None
    commit_date: int | str | None = None
    enabled: bool = True
