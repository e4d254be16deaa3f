"""Training through the API: A1111's POST /sdapi/v1/create/embedding and /sdapi/v1/train/embedding (their bodies
and `{"info": ...}` answers), and our POST /sdapi/v1/train/lora. A run is a job of the engine's queue, so
/sdapi/v1/progress shows it (textinfo: the loss) and /sdapi/v1/interrupt stops it with the file saved. Bad input is
a 4xx with the reason (A1111 answers 200 with the error in `info`)."""
from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from webui.api.errors import ApiError, unsupported
from webui.api.images import decode_image
from webui.engine import TrainingRequest

MAX_TRAINING_IMAGES = 1000

# A1111's textual_inversion_templates: the ones it ships, one caption template per line (a line is picked per image)
A1111_TEMPLATES = {
    "none": "picture",
    "subject": "a photo of a [name]\na rendering of a [name]\na cropped photo of the [name]\nthe photo of a [name]\n"
               "a photo of a clean [name]\na close-up photo of a [name]\na bright photo of the [name]",
    "subject_filewords": "a photo of a [name], [filewords]\na rendering of a [name], [filewords]\n"
                         "a cropped photo of the [name], [filewords]\na close-up photo of a [name], [filewords]",
    "style": "a painting, art by [name]\na rendering, art by [name]\na cropped painting, art by [name]\n"
             "the painting, art by [name]",
    "style_filewords": "a painting of [filewords], art by [name]\na rendering of [filewords], art by [name]\n"
                       "a cropped painting of [filewords], art by [name]",
    "hypernetwork": "[filewords]",
}


class CreateEmbeddingBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=120)
    num_vectors_per_token: int = Field(1, ge=1, le=75)
    overwrite_old: bool = False
    init_text: str = Field("*", max_length=1000)


class TrainEmbeddingBody(BaseModel):
    """A1111's train_embedding arguments (modules/textual_inversion/textual_inversion.py)."""
    model_config = ConfigDict(extra="ignore")
    embedding_name: str = Field(min_length=1, max_length=120)
    learn_rate: str | float = "0.005"
    batch_size: int = Field(1, ge=1, le=256)
    gradient_step: int = Field(1, ge=1)
    data_root: str
    log_directory: str = ""
    training_width: int = Field(512, ge=64, le=4096)
    training_height: int = Field(512, ge=64, le=4096)
    varsize: bool = False
    steps: int = Field(100000, ge=1, le=1_000_000)
    clip_grad_mode: str = "disabled"
    clip_grad_value: str | float = "0.1"
    shuffle_tags: bool = False
    tag_drop_out: float = Field(0.0, ge=0.0, le=1.0)
    latent_sampling_method: str = "once"
    use_weight: bool = False
    create_image_every: int = Field(500, ge=0)
    save_embedding_every: int = Field(500, ge=0)
    template_filename: str = "subject_filewords.txt"
    save_image_with_stored_embedding: bool = True
    preview_from_txt2img: bool = False
    preview_prompt: str = ""
    preview_negative_prompt: str = ""
    preview_steps: int = Field(20, ge=1, le=150)
    preview_sampler_name: str | None = None
    preview_cfg_scale: float = 7.0
    preview_seed: int = -1
    preview_width: int = 512
    preview_height: int = 512


class TrainLoraBody(BaseModel):
    """Our LoRA training: `images` (base64, with optional `captions`) and/or a server folder `data_root`."""
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120)
    images: list[str] = Field(default_factory=list, max_length=MAX_TRAINING_IMAGES)
    captions: list[str] = Field(default_factory=list, max_length=MAX_TRAINING_IMAGES)
    data_root: str | None = None
    trigger: str = Field("", max_length=200)
    class_prompt: str = Field("", max_length=1000)
    steps: int | None = Field(None, ge=1, le=1_000_000)
    learning_rate: str | float | None = None
    batch_size: int | None = Field(None, ge=1, le=256)
    rank: int | None = Field(None, ge=1, le=1024)
    alpha: float | None = Field(None, gt=0)
    train_text_encoder: bool = True
    seed: int = -1
    resolution: int | None = Field(None, ge=64, le=4096)
    buckets: bool = False
    flip: bool = False
    gradient_checkpointing: bool | None = None
    loss_weighting: str | None = None
    sample_every: int = Field(0, ge=0)
    sample_prompt: str = ""
    save_every: int = Field(0, ge=0)
    resume: bool = False
    overwrite: bool = False
    sd_model_checkpoint: str | None = None


class TrainResponse(BaseModel):
    info: str


class TrainLoraResponse(BaseModel):
    info: str
    filename: str
    steps: int
    interrupted: bool
    loss: float | None
    metadata: dict


def _folder(engine, data_root: str | None) -> Path | None:
    if not data_root:
        return None
    if engine.settings.lock_folders:
        raise ApiError(403, "data_root is refused while folders are locked (a server reachable from other "
                            "machines, or --hide-ui-dir-config): send the images in the request instead")
    return Path(data_root).expanduser()


def template_text(engine, filename: str) -> str:
    """A1111's template file: textual_inversion_templates/<name> under the data folder, else the one it ships."""
    stem = Path(filename).stem
    path = Path(engine.settings.data_dir) / "textual_inversion_templates" / Path(filename).name
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if stem in A1111_TEMPLATES:
        return A1111_TEMPLATES[stem]
    raise ApiError(404, f"template {filename!r} not found (known: {', '.join(sorted(A1111_TEMPLATES))})")


def embedding_request(engine, body: TrainEmbeddingBody) -> TrainingRequest:
    if body.gradient_step != 1:
        raise unsupported("gradient_step", body.gradient_step, "gradient accumulation is not supported")
    if body.clip_grad_mode != "disabled":
        raise unsupported("clip_grad_mode", body.clip_grad_mode, "gradient clipping is not supported")
    if body.use_weight:
        raise unsupported("use_weight", True, "alpha-channel loss weights are not supported")
    if body.training_width != body.training_height and not body.varsize:
        raise unsupported("training_width", body.training_width, "the training size is square (or set varsize "
                          "for aspect-ratio buckets)")
    return TrainingRequest(
        "embedding", body.embedding_name, image_dir=_folder(engine, body.data_root), learning_rate=body.learn_rate,
        batch_size=body.batch_size, resolution=body.training_width, buckets=body.varsize, steps=body.steps,
        shuffle_tags=body.shuffle_tags, tag_dropout=body.tag_drop_out, template=template_text(
            engine, body.template_filename), sample_every=body.create_image_every, save_every=body.save_embedding_every,
        sample_prompt=body.preview_prompt if body.preview_from_txt2img else "", sample_steps=body.preview_steps,
        sample_seed=body.preview_seed if body.preview_seed >= 0 else 1234, resume=True)


def lora_request(engine, body: TrainLoraBody) -> TrainingRequest:
    images = [decode_image(data, f"images[{i}]") for i, data in enumerate(body.images)]
    return TrainingRequest(
        "lora", body.name, image_dir=_folder(engine, body.data_root), images=images, captions=body.captions,
        trigger=body.trigger, class_prompt=body.class_prompt, steps=body.steps, learning_rate=body.learning_rate,
        batch_size=body.batch_size, rank=body.rank, alpha=body.alpha, train_text_encoder=body.train_text_encoder,
        seed=body.seed, resolution=body.resolution, buckets=body.buckets, flip=body.flip,
        gradient_checkpointing=body.gradient_checkpointing, loss_weighting=body.loss_weighting,
        sample_every=body.sample_every,
        sample_prompt=body.sample_prompt, save_every=body.save_every, resume=body.resume, overwrite=body.overwrite,
        checkpoint=body.sd_model_checkpoint)


def add_training_routes(api) -> None:
    """Register the routes on the SdApi's router (`api.engine`, `api._wait`). The Ray Serve ingress's engine
    answers them with a 501 (training is not forwarded to replicas yet)."""
    engine = api.engine

    def create_embedding(body: CreateEmbeddingBody) -> dict:
        path = engine.create_embedding(body.name, body.num_vectors_per_token, body.init_text, body.overwrite_old)
        return {"info": f"create embedding filename: {path}"}

    async def train_embedding(body: TrainEmbeddingBody, request: Request) -> dict:
        req = await run_in_threadpool(embedding_request, engine, body)
        job = await run_in_threadpool(engine.submit_training, req)
        result = await api._wait(job, request)
        return {"info": f"train embedding complete: filename: {result.path} error: None"}

    async def train_lora(body: TrainLoraBody, request: Request) -> dict:
        req = await run_in_threadpool(lora_request, engine, body)
        job = await run_in_threadpool(engine.submit_training, req)
        result = await api._wait(job, request)
        recent = [v for _, v in result.losses[-20:]]
        state = "interrupted" if result.interrupted else "complete"
        return {"info": f"train lora {state}: filename: {result.path}", "filename": str(result.path),
                "steps": result.steps, "interrupted": result.interrupted,
                "loss": sum(recent) / len(recent) if recent else None, "metadata": result.metadata}

    r = api.router.add_api_route
    r("/create/embedding", create_embedding, methods=["POST"], response_model=TrainResponse)
    r("/train/embedding", train_embedding, methods=["POST"], response_model=TrainResponse)
    r("/train/lora", train_lora, methods=["POST"], response_model=TrainLoraResponse)
