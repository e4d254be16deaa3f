"""One training run in the worker: the images' latents (and, when the text encoders stay frozen, their text
conditioning) computed once, copies of the UNet and text encoder(s) with LoRA adapters or textual-inversion vectors,
and the step loop (mixed precision and an 8-bit optimizer on CUDA where available; progress, loss, samples and
interrupt through the job state)."""
from __future__ import annotations

import contextlib
import copy
import logging
import random
import time
from dataclasses import dataclass, field

import torch

from webui.engine.training import embedding as ti
from webui.engine.training import lora as lo
from webui.engine.training.conditioning import Conditioner
from webui.engine.training.dataset import TrainingImage
from webui.engine.training.objective import denoise_loss, lr_at
from webui.engine.training.previews import sample_image, sample_pipeline
from webui.engine.training.request import TrainingError, rate_at

log = logging.getLogger(__name__)


@dataclass
class Settings:
    """The request with every default filled in for the model at hand."""
    steps: int
    schedule: list  # [(rate, until_step)] from an A1111 schedule string, or [] for warm-up + cosine
    learning_rate: float
    batch_size: int
    rank: int
    alpha: float
    gradient_checkpointing: bool
    seed: int
    side: int
    loss_weighting: str = "min-snr"


@dataclass
class Monitor:
    """What the UI shows while a run goes on (read from other threads; appended to only)."""
    losses: list = field(default_factory=list)  # (step, loss)
    samples: list = field(default_factory=list)  # (step, PIL image)
    status: str = ""
    path: object = None


def mixed_precision(device) -> tuple[torch.dtype | None, str]:
    if device.type != "cuda":
        return None, "no"
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, "bf16"
    return torch.float16, "fp16"


def make_optimizer(params, lr: float, device) -> tuple[torch.optim.Optimizer, str]:
    """bitsandbytes' AdamW8bit on CUDA when installed (a quarter of AdamW's state memory), else torch's AdamW."""
    if device.type == "cuda":
        try:
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=0.0), "bitsandbytes.optim.AdamW8bit"
        except Exception as exc:  # noqa: BLE001 - not installed or no CUDA build: plain AdamW
            log.info("AdamW8bit not available (%s); using AdamW", exc)
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.0), "torch.optim.AdamW"


class Trainer:
    """Set up with `prepare`, then `run`; `files()` gives what to save at any point (also after an interrupt)."""

    def __init__(self, model, device, plan, settings: Settings, images: list[TrainingImage], state, monitor: Monitor):
        self.model, self.device, self.plan, self.cfg = model, device, plan, settings
        self.request = plan.request
        self.images, self.state, self.monitor = images, state, monitor
        self.family = model.family
        self.amp_dtype, self.precision = mixed_precision(device.device)
        self.rng = random.Random(settings.seed)
        self.generator = torch.Generator("cpu").manual_seed(settings.seed)
        self.step = 0
        self.injectors: list = []
        self.vectors: list[torch.nn.Parameter] = []
        self.peft_models: list = []  # (peft model, kohya prefix)
        self.cached_cond: dict | None = None

    # ---- setup -----------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        from diffusers import DDPMScheduler

        self.noise_scheduler = DDPMScheduler.from_config(self.model.scheduler_config)
        self.latents = self._encode_images()
        comps = self.model.components
        names = ["text_encoder", "text_encoder_2"] if self.family == "sdxl" else ["text_encoder"]
        self.tokenizers = [comps[n.replace("text_encoder", "tokenizer")] for n in names]
        self.encoders = [self._copy(n) for n in names]
        self.unet = self._copy("unet")
        if self.cfg.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        if self.request.method == "lora":
            self._add_lora()
        else:
            self._add_vectors()
        self.conditioner = Conditioner(self.family, self.tokenizers, self.encoders, self.repeat)
        r = self.request
        if r.method == "lora" and not r.train_text_encoder and not (r.shuffle_tags or r.tag_dropout):
            self._cache_conditioning()
        self.optimizer, self.optimizer_name = make_optimizer(self.params, self.cfg.learning_rate, self.device.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

    def _copy(self, component: str):
        from webui.engine.training.copies import clean_copy

        module = clean_copy(self.model, component).to(self.device.device)
        return module

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.device.type, dtype=self.amp_dtype)

    @torch.no_grad()
    def _encode_images(self) -> list[dict[bool, torch.Tensor]]:
        """Each image's latent (the distribution's mean, scaled) once; with flip also the mirrored one."""
        vae = self.model.components["vae"]
        p = next(vae.parameters())
        dev = self.device.device if self.device.offload != "none" else p.device
        scale = vae.config.scaling_factor
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        out = []
        for item in self.images:
            pair = {}
            for flip in ((False, True) if self.request.flip else (False,)):
                img = item.image.transpose(0) if flip else item.image  # 0 = FLIP_LEFT_RIGHT
                x = torch.from_numpy(_array(img)).permute(2, 0, 1)[None].to(dev, p.dtype) * 2 - 1
                lat = vae.encode(x).latent_dist.mean
                if not torch.isfinite(lat).all():  # fp16 VAEs (SDXL's) overflow: encode this one in fp32
                    lat = copy.deepcopy(vae).float().encode(x.float()).latent_dist.mean
                pair[flip] = ((lat.float() - shift) * scale).to(self.device.device)
            out.append(pair)
        return out

    def _add_lora(self) -> None:
        rank, alpha = self.cfg.rank, self.cfg.alpha
        self.repeat = []
        peft_unet = lo.add_lora(self.unet, lo.LORA_TARGETS, rank, alpha, init=True)
        self.peft_models = [(peft_unet, "lora_unet_")]
        self.unet = peft_unet.get_base_model()
        if self.request.train_text_encoder:
            prefixes = lo.TE_PREFIXES[len(self.encoders)]
            for i, prefix in enumerate(prefixes):
                if self.cfg.gradient_checkpointing:
                    self.encoders[i].gradient_checkpointing_enable(
                        gradient_checkpointing_kwargs={"use_reentrant": False})
                peft_te = lo.add_lora(self.encoders[i], lo.LORA_TE_TARGETS, rank, alpha, init=True)
                self.peft_models.append((peft_te, prefix))
                self.encoders[i] = peft_te.get_base_model()
        self.params = [p for m, _ in self.peft_models for p in m.parameters() if p.requires_grad]
        for m, _ in self.peft_models:  # adapters in fp32 even when the base weights are fp16
            for p in m.parameters():
                if p.requires_grad:
                    p.data = p.data.float()

    def _add_vectors(self) -> None:
        self.tokenizers = [copy.deepcopy(t) for t in self.tokenizers]
        self.repeat = []
        keys = ["clip_l", "clip_g"] if self.family == "sdxl" else [""]
        start = self.plan.resume_vectors or {}
        for key, tok, enc in zip(keys, self.tokenizers, self.encoders):
            pid = ti.add_placeholder(tok, enc)
            init = start.get(key)
            if init is None:
                init = ti.init_vectors(tok, enc, self.request.init_text, self.request.num_vectors)
            vec = torch.nn.Parameter(init.float().to(self.device.device))
            self.vectors.append(vec)
            self.injectors.append(ti.TokenInjector(enc, pid, vec))
            self.repeat.append({pid: vec.shape[0]})
            if self.cfg.gradient_checkpointing:
                enc.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.vector_keys = keys
        self.params = list(self.vectors)

    @torch.no_grad()
    def _cache_conditioning(self) -> None:
        self.cached_cond = {}
        for i, item in enumerate(self.images):
            with self._autocast():
                cond, added = self.conditioner.encode([self.caption(i)], [item.image.size])
            self.cached_cond[i] = (cond, added)

    # ---- captions --------------------------------------------------------------------------------------------
    def caption(self, i: int, augment: bool = False) -> str:
        """LoRA: "trigger, caption" (the class prompt when an image has no caption); embedding: a line of the
        template with [name] as the placeholder and [filewords] as the caption. `augment`: tags shuffled and
        dropped as asked, a random template line."""
        r = self.request
        text = self.images[i].caption or r.class_prompt.strip()
        if augment and (r.shuffle_tags or r.tag_dropout):
            tags = [t.strip() for t in text.split(",") if t.strip()]
            if r.shuffle_tags:
                self.rng.shuffle(tags)
            text = ", ".join(t for t in tags if self.rng.random() >= r.tag_dropout)
        if r.method == "lora":
            return ", ".join(t for t in (r.trigger.strip(), text) if t)
        lines = [ln for ln in r.template.splitlines() if ln.strip()] or ["[name]"]
        line = self.rng.choice(lines) if augment else lines[0]
        out = line.replace("[name]", ti.PLACEHOLDER).replace("[filewords]", text)
        return ", ".join(p.strip() for p in out.split(",") if p.strip()) or ti.PLACEHOLDER

    def captions(self) -> list[str]:
        return [self.caption(i) for i in range(len(self.images))]

    # ---- steps -----------------------------------------------------------------------------------------------
    def lr(self, step: int) -> float:
        if self.cfg.schedule:
            return rate_at(self.cfg.schedule, step)
        return lr_at(step, self.cfg.steps, self.cfg.learning_rate, warmup=min(20, max(1, self.cfg.steps // 10)))

    def batch(self) -> list[int]:
        """Indices of one batch, all of one size (a bucket), drawn with replacement."""
        first = self.rng.randrange(len(self.images))
        size = self.images[first].image.size
        same = [i for i, it in enumerate(self.images) if it.image.size == size]
        return [first] + [self.rng.choice(same) for _ in range(self.cfg.batch_size - 1)]

    def train_step(self, step: int) -> float:
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr(step)
        idx = self.batch()
        latents = torch.cat([self.latents[i][self.request.flip and self.rng.random() < 0.5] for i in idx])
        with self._autocast():
            if self.cached_cond is not None:
                cond = torch.cat([self.cached_cond[i][0] for i in idx])
                added = _cat_added([self.cached_cond[i][1] for i in idx])
            else:
                cond, added = self.conditioner.encode([self.caption(i, augment=True) for i in idx],
                                                      [self.images[i].image.size for i in idx])
            loss = denoise_loss(self.unet, self.noise_scheduler, latents, cond, self.generator,
                                offset_noise=self.request.noise_offset, added_cond=added, **self.weighting())
        if not torch.isfinite(loss):
            raise TrainingError(f"The loss became {loss.item()} at step {step + 1}: lower the learning rate")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())

    def weighting(self) -> dict:
        w = self.cfg.loss_weighting
        if w == "x0":
            return {"max_weight": 100.0}
        return {"min_snr_gamma": self.request.min_snr_gamma} if w == "min-snr" else {}

    def run(self, start: int, on_save) -> bool:
        """Steps `start`..steps; returns True when interrupted. `on_save(step)` writes the file."""
        r, state = self.request, self.state
        for m in [self.unet, *self.encoders]:
            m.train()
        t0 = time.time()
        self.step = start
        for step in range(start, self.cfg.steps):
            if state.interrupted:
                return True
            loss = self.train_step(step)
            self.step = step + 1
            self.monitor.losses.append((self.step, loss))
            recent = [v for _, v in self.monitor.losses[-20:]]
            state.set_step(self.step, self.cfg.steps)
            state.textinfo = f"Loss: {sum(recent) / len(recent):.5f}, step {self.step}/{self.cfg.steps}"
            self.monitor.status = state.textinfo
            if r.sample_every and self.step % r.sample_every == 0:
                self.sample()
            if r.save_every and self.step % r.save_every == 0 and self.step < self.cfg.steps:
                on_save(self.step)
        log.info("trained %s steps in %.1fs", self.cfg.steps - start, time.time() - t0)
        return False

    # ---- samples and results ---------------------------------------------------------------------------------
    def sample_prompt(self) -> str:
        r = self.request
        if r.sample_prompt:
            text = r.sample_prompt
            return text.replace(r.name, ti.PLACEHOLDER) if r.method == "embedding" else text
        return self.caption(0)

    def sample(self) -> None:
        if not hasattr(self, "_pipe"):
            self._pipe = sample_pipeline(self.model, self.unet, self.encoders, self.tokenizers)
        prompt = self.sample_prompt()
        if self.request.method == "embedding":
            n = self.vectors[0].shape[0]
            prompt = prompt.replace(ti.PLACEHOLDER, " ".join([ti.PLACEHOLDER] * n))
        image = sample_image(self._pipe, prompt, self.request.sample_seed, self.request.sample_steps,
                             self.images[0].image.size, self.device.device, self._autocast)
        self.monitor.samples.append((self.step, image))
        self.state.preview, self.state.preview_step = image, self.step

    def lora_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for model, prefix in self.peft_models:
            out.update(lo.peft_to_kohya(model, self.cfg.alpha, prefix))
        return out

    def embedding_vectors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().float().cpu() for k, v in zip(self.vector_keys, self.vectors)}

    def close(self) -> None:
        """Drop the hooks and the copies (nothing of them stays in memory or in the model)."""
        for inj in self.injectors:
            inj.remove()
        self.injectors = []
        self.unet = self.encoders = self.peft_models = self.optimizer = self._pipe = None


def _cat_added(items: list):
    if items[0] is None:
        return None
    return {k: torch.cat([it[k] for it in items]) for k in items[0]}


def _array(image):
    import numpy as np

    return np.asarray(image, dtype=np.float32) / 255.0
