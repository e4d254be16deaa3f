"""A training run as a job of the engine's queue: checked and planned before it is queued (bad input never waits
in the queue), then run in the worker on copies of the model's modules, saving a usable file at the end, on an
interrupt and every `save_every` steps."""
from __future__ import annotations

import gc
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from webui.engine.training import embedding as ti
from webui.engine.training import lora as lo
from webui.engine.training.dataset import gather, prepare
from webui.engine.training.defaults import training_defaults
from webui.engine.training.request import (
    LOSS_WEIGHTINGS,
    METHODS,
    TrainingError,
    TrainingNotFound,
    TrainingRequest,
    TrainingResult,
    check_name,
    parse_learning_rate,
)
from webui.engine.training.saving import atomic_write
from webui.engine.training.trainer import Monitor, Settings, Trainer

log = logging.getLogger(__name__)

EMBEDDING_SUFFIXES = (".pt", ".safetensors", ".bin")


@dataclass
class TrainingPlan:
    request: TrainingRequest
    folder: Path  # where the file goes
    raw_images: list  # (image, caption, source) read before queueing
    checkpoint: object = None  # CheckpointInfo when the request names one
    monitor: Monitor = field(default_factory=Monitor)
    resume_vectors: dict | None = None
    resume_tensors: dict | None = None
    resume_step: int = 0

    @property
    def mode(self) -> str:
        return f"train_{self.request.method}"


def output_folder(settings, method: str) -> Path:
    """LoRAs go to the first --lora-dir when one is given, else models/Lora; embeddings to the embeddings folder."""
    if method == "lora":
        return Path(settings.lora_dirs[0]) if settings.lora_dirs else settings.models_root / "Lora"
    return settings.embeddings_path


def existing(plan_folder: Path, name: str, method: str) -> Path | None:
    suffixes = (".safetensors",) if method == "lora" else EMBEDDING_SUFFIXES
    for suffix in suffixes:
        path = plan_folder / f"{name}{suffix}"
        if path.exists():
            return path
    return None


def check(request: TrainingRequest) -> None:
    r = request
    if r.method not in METHODS:
        raise TrainingError(f"Unknown training method {r.method!r}: 'lora' or 'embedding'")
    check_name(r.name, "LoRA" if r.method == "lora" else "Embedding")
    for field_name, low, high in (("steps", 1, 1_000_000), ("batch_size", 1, 256), ("rank", 1, 1024),
                                  ("num_vectors", 1, 75), ("resolution", 64, 4096), ("sample_steps", 1, 150)):
        value = getattr(r, field_name)
        if value is not None and not (low <= int(value) <= high):
            raise TrainingError(f"{field_name} must be between {low} and {high}, got {value}")
    if r.alpha is not None and r.alpha <= 0:
        raise TrainingError(f"alpha must be positive, got {r.alpha}")
    if r.loss_weighting is not None and r.loss_weighting not in LOSS_WEIGHTINGS:
        raise TrainingError(f"loss_weighting must be one of {', '.join(LOSS_WEIGHTINGS)}, got {r.loss_weighting!r}")
    if not 0 <= r.tag_dropout < 1:
        raise TrainingError(f"tag_dropout must be at least 0 and under 1, got {r.tag_dropout}")
    if r.sample_every < 0 or r.save_every < 0:
        raise TrainingError("sample_every and save_every must be 0 (off) or more")
    if r.learning_rate is not None:
        parse_learning_rate(r.learning_rate, r.steps or 1)


def plan(engine, request: TrainingRequest) -> TrainingPlan:
    """Check the request, read its images and whatever it resumes from; TrainingError says what is wrong."""
    check(request)
    folder = output_folder(engine.settings, request.method)
    found = existing(folder, request.name, request.method)
    if request.resume and found is None:
        raise TrainingNotFound(f"Nothing to resume: no {request.method} file named {request.name!r} in {folder}")
    if found is not None and not request.resume and not request.overwrite:
        raise TrainingError(f"{found.name} already exists in {folder}: choose another name, resume it, or "
                            "allow overwriting (--overwrite)")
    checkpoint = engine.resolve_checkpoint(request.checkpoint) if request.checkpoint else None
    p = TrainingPlan(request, folder, gather(request), checkpoint)
    if request.resume:
        _read_resume(p, found)
    return p


def _read_resume(p: TrainingPlan, path: Path) -> None:
    if p.request.method == "lora":
        from safetensors.torch import load_file

        from webui.engine.networks.common import read_safetensors_metadata

        p.resume_tensors = load_file(str(path))
        p.resume_step = int(read_safetensors_metadata(path).get("ss_steps") or 0)
        return
    from webui.engine.networks.embeddings import EmbeddingFileError, read_embedding

    try:
        emb = read_embedding(path)
    except EmbeddingFileError as exc:
        raise TrainingError(f"Cannot resume {path.name}: {exc}") from None
    p.resume_vectors, p.resume_step = emb.vectors, emb.step or 0
    p.request.num_vectors = emb.num_vectors


def settings_for(plan: TrainingPlan, unet) -> Settings:
    r = plan.request
    d = training_defaults(r.method, sum(p.numel() for p in unet.parameters()))
    steps = r.steps or d.steps
    if plan.resume_step >= steps:
        raise TrainingError(f"{r.name} has already been trained for {plan.resume_step} steps: ask for more than that")
    rate = r.learning_rate if r.learning_rate is not None else d.learning_rate
    schedule = parse_learning_rate(rate, steps) if isinstance(rate, str) else []
    lr = schedule[0][0] if schedule else float(rate)
    rank = r.rank or d.rank
    alpha = r.alpha if r.alpha is not None else (d.alpha if r.rank is None else rank)
    gc_on = d.gradient_checkpointing if r.gradient_checkpointing is None else r.gradient_checkpointing
    seed = r.seed if r.seed is not None and r.seed >= 0 else random.randrange(2**32)
    return Settings(steps, schedule, lr, r.batch_size or d.batch_size, rank, alpha, gc_on, seed, 0,
                    r.loss_weighting or d.loss_weighting)


def native_side(model) -> int:
    """The checkpoint's native size (from its family and metadata: diffusers' SD pipeline raises a UNet config's
    sample_size under 64 to 64 when it is built, so the config is not a reliable witness)."""
    return max(model.spec.native_size)


def size_multiple(model) -> int:
    vae = model.components["vae"]
    unet = model.components["unet"]
    return 2 ** (len(vae.config.block_out_channels) - 1) * 2 ** (len(unet.config.down_block_types) - 1)


def run(engine, plan: TrainingPlan, state) -> TrainingResult:
    """In the worker: train, save, refresh the listings. Out of memory becomes a TrainingError that says so."""
    started = time.time()
    state.job_count = 1
    model = engine.ensure_model(plan.checkpoint)
    cfg = settings_for(plan, model.components["unet"])
    cfg.side = plan.request.resolution or native_side(model)
    images = prepare(plan.raw_images, cfg.side, plan.request.buckets, size_multiple(model))
    state.set_step(plan.resume_step, cfg.steps)
    trainer = Trainer(model, engine.device, plan, cfg, images, state, plan.monitor)
    try:
        trainer.prepare()
        if plan.resume_tensors is not None:
            _load_lora_state(trainer, plan)
        _load_optimizer(trainer, plan)
        save = lambda step: _save(engine, plan, trainer, model, step, started)
        interrupted = trainer.run(plan.resume_step, save)
        path, meta = save(trainer.step)
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise TrainingError(f"Not enough memory to train on {model.title} ({type(exc).__name__}): lower the batch "
                            "size, the resolution or the rank, or turn gradient checkpointing on") from None
    finally:
        trainer.close()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return TrainingResult(plan.request.method, plan.request.name, path, trainer.step, interrupted,
                          list(plan.monitor.losses), list(plan.monitor.samples), meta, time.time() - started,
                          model.title)


def _load_lora_state(trainer: Trainer, plan: TrainingPlan) -> None:
    try:
        for model, prefix in trainer.peft_models:
            lo.load_kohya_into(model, plan.resume_tensors, prefix)
    except ValueError as exc:
        raise TrainingError(f"Cannot resume {plan.request.name}: {exc} (trained with another rank, model or "
                            "text-encoder setting?)") from None


def optim_path(path: Path) -> Path:
    """The optimizer state beside the file (A1111 writes `name.pt.optim` for embeddings)."""
    return path.with_name(path.name + ".optim")


def _load_optimizer(trainer: Trainer, plan: TrainingPlan) -> None:
    if not plan.request.resume:
        return
    found = existing(plan.folder, plan.request.name, plan.request.method)
    path = optim_path(found) if found else None
    if path is None or not path.is_file():
        return
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
        trainer.optimizer.load_state_dict(data["optimizer_state_dict"])
    except Exception as exc:  # noqa: BLE001 - a stale or foreign state: start the optimizer afresh
        log.warning("Optimizer state %s not used: %s", path.name, exc)


def _save(engine, plan: TrainingPlan, trainer: Trainer, model, step: int, started: float):
    r = plan.request
    plan.folder.mkdir(parents=True, exist_ok=True)
    ckpt_hash = _checkpoint_hash(engine, model)
    if r.method == "lora":
        path = plan.folder / f"{r.name}.safetensors"
        tensors = trainer.lora_tensors()
        meta = _lora_metadata(plan, trainer, model, step, started, ckpt_hash)
        meta["sshs_model_hash"] = lo.precomputed_hash(tensors)
        _write_safetensors(path, tensors, meta)
    else:
        path = ti.embedding_path(plan.folder, r.name, model.family)
        meta = {"name": r.name, "step": step, "sd_checkpoint": (ckpt_hash or "")[:10] or None,
                "sd_checkpoint_name": Path(model.title.split(" [")[0]).stem}
        ti.save_embedding(path, r.name, trainer.embedding_vectors(), step, meta["sd_checkpoint"],
                          meta["sd_checkpoint_name"])
    state = {"step": step, "optimizer_state_dict": trainer.optimizer.state_dict()}
    atomic_write(optim_path(path), lambda tmp: torch.save(state, tmp))
    plan.monitor.path = path
    _refresh(engine, r.method)
    return path, meta


def _write_safetensors(path: Path, tensors: dict, meta: dict) -> None:
    from safetensors.torch import save_file

    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _checkpoint_hash(engine, model) -> str | None:
    if model.sha256:
        return model.sha256
    try:
        return engine.hashes.sha256(model.path) if Path(model.path).is_file() else None
    except OSError:
        return None


def _lora_metadata(plan, trainer: Trainer, model, step, started, ckpt_hash) -> dict:
    r, cfg = plan.request, trainer.cfg
    legacy = lo.legacy_model_hash(model.path) if Path(model.path).is_file() else ""
    return lo.kohya_metadata(
        name=r.name, family=model.family, v_prediction=model.scheduler_config.get("prediction_type") == "v_prediction",
        checkpoint_name=Path(model.path).name, checkpoint_sha256=ckpt_hash, checkpoint_legacy_hash=legacy,
        trigger=r.trigger.strip(), captions=trainer.captions(), sources=[i.source for i in trainer.images],
        folder=(r.image_dir.name if r.image_dir else "images"), resolution=(cfg.side, cfg.side), buckets=r.buckets,
        rank=cfg.rank, alpha=cfg.alpha, learning_rate=cfg.learning_rate, text_lr=cfg.learning_rate,
        train_text_encoder=r.train_text_encoder, steps=step, max_steps=cfg.steps, batch_size=cfg.batch_size,
        seed=cfg.seed, optimizer=trainer.optimizer_name, mixed_precision=trainer.precision,
        gradient_checkpointing=cfg.gradient_checkpointing, noise_offset=r.noise_offset,
        min_snr_gamma=r.min_snr_gamma if cfg.loss_weighting == "min-snr" else None, flip=r.flip, started=started,
        loss_weighting=cfg.loss_weighting)


def _refresh(engine, method: str) -> None:
    """So the new file shows at once in /sdapi/v1/loras, the LoRA tab, the cards and /sdapi/v1/embeddings."""
    if method == "lora":
        engine.networks.loras.refresh()
    else:
        engine.networks.embeddings.refresh(force=True)


def create_embedding(engine, name: str, num_vectors: int = 1, init_text: str = "*", overwrite: bool = False) -> Path:
    """A1111's "Create embedding": an untrained embedding (its vectors the token embeddings of `init_text`) for the
    loaded model, written to the embeddings folder (through the queue: it reads the model)."""
    check(TrainingRequest("embedding", name, num_vectors=num_vectors))
    folder = output_folder(engine.settings, "embedding")
    found = existing(folder, name, "embedding")
    if found is not None and not overwrite:
        raise TrainingError(f"{found.name} already exists in {folder}: choose another name or overwrite it")

    def make(state) -> Path:
        model = engine.ensure_model()
        keys = [("clip_l", "tokenizer", "text_encoder"), ("clip_g", "tokenizer_2", "text_encoder_2")] \
            if model.family == "sdxl" else [("", "tokenizer", "text_encoder")]
        c = model.components
        vectors = {k: ti.init_vectors(c[t], c[e], init_text, num_vectors) for k, t, e in keys}
        folder.mkdir(parents=True, exist_ok=True)
        path = ti.embedding_path(folder, name, model.family)
        ckpt = (_checkpoint_hash(engine, model) or "")[:10] or None
        ti.save_embedding(path, name, vectors, 0, ckpt, Path(model.title.split(" [")[0]).stem)
        _refresh(engine, "embedding")
        return path

    return engine.queue.run("create_embedding", make)


def submit(engine, request: TrainingRequest):
    """Plan now, then queue; the job's `plan.monitor` holds the losses and samples as they come."""
    p = plan(engine, request)
    job = engine.queue.submit(p.mode, lambda state: run(engine, p, state))
    job.plan = p
    return job
