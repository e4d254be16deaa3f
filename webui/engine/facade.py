"""Engine: the one object the UI, the REST API, the CLI and the tests talk to."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from webui.engine import noise
from webui.engine.checkpoints.loader import CheckpointLoadError, LoadedModel
from webui.engine.checkpoints.manager import ModelManager
from webui.engine.checkpoints.registry import CheckpointInfo, CheckpointRegistry, HashCache
from webui.engine.device import DeviceConfig, select_device
from webui.engine.generation import Batch, prompt_encoder, resize_image, run_batch
from webui.engine.infotext import build_infotext
from webui.engine.jobs import Job, JobQueue, JobState
from webui.engine.networks import NetworkManager
from webui.engine.outputs import OutputWriter
from webui.engine.preview import latent_preview
from webui.engine.prompts.encoder import PromptEncoder
from webui.engine.prompts.prepare import prepare_prompts, strip_comments
from webui.engine.prompts.styles import StyleStore
from webui.engine.prompts.wildcards import WildcardExpander
from webui.engine.requests import GenerationRequest, GenerationResult, RequestError
from webui.engine.samplers import SamplerError, resolve
from webui.extensions import ExtensionManager, ImageContext
from webui.files import remove_stale_temps
from webui.settings import Settings, updated_settings

log = logging.getLogger(__name__)

VERSION = "latent-studio-0.1.0"
BUILTIN_PREFIX = "latent-studio-shapes"


class Engine:
    def __init__(self, settings: Settings, device: DeviceConfig | None = None,
                 extensions: ExtensionManager | None = None):
        self.settings = settings
        if extensions is None:
            extensions = ExtensionManager(settings.extensions_path, settings.cache_path / "extensions.json")
            extensions.discover()
        self.extensions = extensions
        self.device = device or select_device(settings)
        self.hashes = HashCache(settings.cache_path / "hashes.json")
        self.checkpoints = CheckpointRegistry(settings.checkpoint_dirs, self.hashes)
        self.models = ModelManager(self.checkpoints, self.device, settings.cache_path, settings.checkpoint_cache_size)
        self.queue = JobQueue(settings.queue_size)
        self.outputs = OutputWriter(settings.outputs_path)
        remove_stale_temps(settings.outputs_path)  # left by a write that a crash cut short
        remove_stale_temps(settings.data_dir, recursive=False)  # the settings file's
        self.styles = StyleStore(settings.styles_file)
        self.wildcards = WildcardExpander(settings.wildcards_path, max_combinations=settings.max_combinations)
        self.networks = NetworkManager(settings, self.hashes)  # LoRA, embeddings, VAE
        self.checkpoints.refresh()

    # ---- checkpoints ---------------------------------------------------------------------------------
    def list_checkpoints(self, refresh: bool = False) -> list[CheckpointInfo]:
        return self.checkpoints.refresh() if refresh else self.checkpoints.list()

    def default_checkpoint(self) -> CheckpointInfo:
        """--ckpt if given, else the built-in model, else the first checkpoint found."""
        if self.settings.ckpt:
            return self.models.resolve(self.settings.ckpt)
        items = self.checkpoints.list() or self.checkpoints.refresh()
        if not items:
            dirs = ", ".join(str(d) for d in self.settings.checkpoint_dirs)
            raise CheckpointLoadError(f"No checkpoint found. Put a .safetensors/.ckpt file or a diffusers folder in {dirs}")
        builtin = [i for i in items if Path(i.name).name.startswith(BUILTIN_PREFIX)]
        return (builtin or items)[0]

    def load_checkpoint(self, query: str | None = None) -> LoadedModel:
        """Switch the active checkpoint through the job queue (waits for running jobs)."""
        target = self.models.resolve(query) if query else self.default_checkpoint()
        return self.queue.run("load", lambda state: self.models.select(target))

    def ensure_model(self, query: str | None = None) -> LoadedModel:
        if query:
            return self.models.select(query)
        return self.models.active or self.models.select(self.default_checkpoint())

    def unload_checkpoint(self) -> None:
        self.queue.run("unload", lambda state: self.models.unload())

    # ---- LoRA, embeddings, VAE -----------------------------------------------------------------------
    def list_loras(self, refresh: bool = False):
        """LoraInfo items (`.as_api()` = an item of /sdapi/v1/loras, `.details()` for the LoRA tab)."""
        return self.networks.loras.refresh() if refresh else self.networks.loras.list()

    def list_embeddings(self, refresh: bool = False) -> dict:
        """A1111's /sdapi/v1/embeddings for the active model: {"loaded": {...}, "skipped": {...}}."""
        self.networks.embeddings.refresh(force=refresh)
        return self.networks.embeddings.report(self.models.active)

    def list_vaes(self, refresh: bool = False):
        """VaeInfo items (`.as_api()` = an item of /sdapi/v1/sd-vae); choices: 'Automatic', 'None', names."""
        return self.networks.vaes.refresh() if refresh else self.networks.vaes.list()

    def select_vae(self, name: str | None) -> str:
        """A1111's "SD VAE" option ('Automatic', 'None' or a file name), applied to the active model now. An unknown
        name or a file that fails to load raises NetworkError (a RequestError) and the previous VAE stays."""
        choice = self.networks.vaes.validate(name)  # an unknown name fails before the queue
        if self.models.active is None:
            return self.networks.set_vae_choice(choice)
        return self.queue.run("vae", lambda state: self.networks.set_vae_choice(choice, self.models.active))

    # ---- prompts -------------------------------------------------------------------------------------
    def token_count(self, text: str) -> tuple[int, int]:
        """A1111's counter (count, limit) for the active model's tokenizer (or the CLIP-L one before any load)."""
        from webui.engine.prompts.extra_networks import extract_extra_networks

        text = extract_extra_networks(strip_comments(text))[0]
        model = self.models.active
        if model is not None:
            return prompt_encoder(model).token_count(text)
        if self._plain_counter is None:
            from webui import resources

            self._plain_counter = PromptEncoder([resources.clip_tokenizer()], [None], "sd1")
        return self._plain_counter.token_count(text)

    _plain_counter: PromptEncoder | None = None

    # ---- generation ----------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> Job:
        """Validate now (bad input never reaches the queue), then queue the job."""
        self._check(request)
        return self.queue.submit("img2img" if request.is_img2img else "txt2img", lambda st: self._generate(request, st))

    def generate(self, request: GenerationRequest, timeout: float | None = None) -> GenerationResult:
        return self.submit(request).result(timeout)

    txt2img = generate
    img2img = generate

    def interrupt(self) -> bool:
        return self.queue.interrupt()

    def cancel(self, job: Job) -> bool:
        """Drop a job that has not started yet; False when it is already running or done."""
        return self.queue.cancel(job)

    def skip(self) -> bool:
        return self.queue.skip()

    def _check(self, req: GenerationRequest) -> None:
        req.validate(self.settings.max_image_side, self.settings.max_batch_images)
        try:
            resolve(req.sampler_name, req.scheduler, self.settings.default_sampler)
        except SamplerError as exc:
            raise RequestError(str(exc)) from exc
        if req.checkpoint and self.checkpoints.find(req.checkpoint) is None:
            self.models.resolve(req.checkpoint)  # raises with the list of available titles
        if (req.override_settings or {}).get("sd_vae"):
            self.networks.vaes.validate(req.override_settings["sd_vae"])

    def _generate(self, req: GenerationRequest, state: JobState) -> GenerationResult:
        t_start = time.perf_counter()
        req = self.extensions.transform_request(req)
        model = self.ensure_model(req.checkpoint)
        t_model = time.perf_counter()
        choice = resolve(req.sampler_name, req.scheduler, self.settings.default_sampler)
        width = req.width or model.spec.native_size[0]
        height = req.height or model.spec.native_size[1]
        n_images = req.batch_size * req.n_iter
        seed = noise.fix_seed(req.seed)
        subseed = noise.fix_seed(req.subseed)
        prompt, negative = self.extensions.transform_prompts(req.prompt, req.negative_prompt, req)
        prepared = prepare_prompts(prompt, negative, req.styles, [seed + i for i in range(n_images)],
                                   self.styles, self.wildcards, req.combinatorial, self.settings.max_combinations)
        seeds = prepared.seeds
        subseeds = [subseed + i for i in range(len(seeds))]
        n_iter = -(-len(seeds) // req.batch_size)
        init = [resize_image(im, width, height, req.resize_mode) for im in req.init_images]
        mode = "img2img" if init else "txt2img"
        texts, neg_texts = prepared.encoder_texts()
        # LoRAs resolved and loaded, embeddings loaded, the job's VAE in place (NetworkError is a RequestError)
        nets = self.networks.prepare(model, self.device, prepared.networks, texts + neg_texts, req.override_settings)

        params = {
            "Steps": req.steps, "Sampler": choice.sampler.name, "Schedule type": choice.schedule,
            "CFG scale": req.cfg_scale, "Seed": None, "Size": f"{width}x{height}",
            "Model hash": (model.sha256 or "")[:10] or None, "Model": Path(model.title.split(" [")[0]).stem,
            "VAE hash": nets.vae_hash, "VAE": nets.vae_name,
            "Variation seed": None, "Variation seed strength": req.subseed_strength or None,
            "Denoising strength": req.denoising_strength if init else None,
            "Clip skip": req.clip_skip if req.clip_skip > 1 else None, "RNG": "CPU",
            **prepared.params, **nets.params, **self.extensions.infotext_params(req), "Version": VERSION,
        }
        result = GenerationResult(width=width, height=height, model_title=model.title, params=dict(params),
                                  warnings=list(prepared.warnings))
        state.job_count = n_iter
        for it in range(n_iter):
            if state.interrupted:
                break
            state.job_no = it
            sl = slice(it * req.batch_size, min(len(seeds), (it + 1) * req.batch_size))
            batch = Batch(seeds[sl], subseeds[sl], texts[sl], neg_texts[sl],
                          init_images=[init[i % len(init)] for i in range(sl.start, sl.stop)] if init else None,
                          mask=req.mask)
            nets.activate(prepared.networks[sl])
            images = run_batch(model, self.device, choice, batch, steps=req.steps, cfg_scale=req.cfg_scale,
                               width=width, height=height, subseed_strength=req.subseed_strength,
                               denoising_strength=req.denoising_strength, clip_skip=req.clip_skip, state=state,
                               eta=req.eta, on_step=self._previewer(model),
                               in_use=f"checkpoint {model.title}, {nets.describe()}", warnings=result.warnings)
            if images is None:
                if state.skipped and not state.interrupted:
                    state.skipped = False
                    result.skipped += len(batch.seeds)
                continue
            for j, image in enumerate(images):
                k = sl.start + j
                p = dict(params, Seed=seeds[k])
                if req.subseed_strength > 0:
                    p["Variation seed"] = subseeds[k]
                ctx = ImageContext(req, k, seeds[k], prepared.prompts[k], prepared.negative_prompts[k], p)
                image = self.extensions.postprocess_image(image, ctx)
                info = build_infotext(prepared.prompts[k], prepared.negative_prompts[k], p)
                if req.save_images and self.settings.save_images:
                    path = self.outputs.save(image, info, seeds[k], mode, req.outpath)
                    result.paths.append(path)
                    self.extensions.call("saved", path, info, ctx)
                result.images.append(image)
                result.infotexts.append(info)
                result.seeds.append(seeds[k])
                result.subseeds.append(subseeds[k])
                result.prompts.append(prepared.prompts[k])
                result.negative_prompts.append(prepared.negative_prompts[k])
        result.warnings += [w for w in nets.warnings if w not in result.warnings]
        result.interrupted = state.interrupted
        result.timings = {"model": t_model - t_start, "total": time.perf_counter() - t_start}
        return result

    def _previewer(self, model: LoadedModel):
        every = self.settings.preview_every

        def on_step(state: JobState, step_index: int, latents) -> None:
            if every > 0 and (step_index + 1) % every == 0:
                state.preview = latent_preview(model, latents)
                state.preview_step = step_index + 1
            self.extensions.call("step", state, step_index, latents)

        return on_step

    def update_settings(self, changes: dict) -> list[str]:
        """The one way to change settings while running (Settings tab, POST /sdapi/v1/options): checked against
        one table, saved to the settings file, applied at once where possible. Returns the changed settings that
        apply after a restart. SettingError (SettingLocked for frozen or locked ones) names what was refused."""
        self.settings, restart = updated_settings(self.settings, changes)
        self.models.set_cache_size(self.settings.checkpoint_cache_size)
        self.wildcards.max_combinations = self.settings.max_combinations
        return restart

    def request_defaults(self, **fields) -> GenerationRequest:
        """A request filled with the user's defaults (sampler, steps, CFG)."""
        base = GenerationRequest(sampler_name=self.settings.default_sampler, scheduler=self.settings.default_scheduler,
                                 steps=self.settings.default_steps, cfg_scale=self.settings.default_cfg_scale)
        return replace(base, **fields)

    def close(self) -> None:
        self.queue.shutdown()
