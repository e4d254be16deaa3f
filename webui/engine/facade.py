"""Engine: the one object the UI, the REST API, the CLI and the tests talk to (its shape: `EngineAPI`).

Callers use its methods, and read `settings` (changed only through `update_settings`), `styles` and `wildcards`
(the libraries the Prompts and Wildcards tabs edit), `device` and `hooks`. The other attributes (models, queue,
outputs, networks, checkpoints, planner) are the engine's own parts, which the job stages use."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from webui.engine.checkpoints.loader import CheckpointLoadError, LoadedModel
from webui.engine.checkpoints.manager import ModelManager
from webui.engine.checkpoints.registry import CheckpointInfo, CheckpointRegistry, HashCache
from webui.engine.controlnet.manager import ControlNets
from webui.engine import extras
from webui.engine.device import DeviceConfig, select_device
from webui.engine.extras import ExtrasRequest, ExtrasResult
from webui.engine.generation import prompt_encoder
from webui.engine.hooks import Hooks
from webui.engine.jobs import Job, JobQueue
from webui.engine.networks import NetworkManager, catalog
from webui.engine.outputs import OutputWriter
from webui.engine.plan import JobPlan, Planner
from webui.engine.postprocess.face_restore import FaceRestorers
from webui.engine.postprocess.upscalers import UpscalerLibrary
from webui.engine.prompts.encoder import PromptEncoder
from webui.engine.prompts.prepare import longest_count
from webui.engine.prompts.styles import StyleStore
from webui.engine.prompts.wildcards import WildcardExpander
from webui.engine.requests import GenerationRequest, GenerationResult
from webui.engine.scripts import register_builtin_scripts
from webui.engine.scripts import runner as scripts
from webui.engine.stages import GenerationJob
from webui.files import remove_stale_temps
from webui.settings import Settings, updated_settings

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "latent-studio-shapes"


@dataclass
class ModelCache:
    size: int  # checkpoints kept in RAM
    titles: list[str]  # those in RAM now
    loads: int  # checkpoint files read from disk since start


class Engine:
    def __init__(self, settings: Settings, device: DeviceConfig | None = None, hooks: Hooks | None = None):
        """`hooks`: the extension points' registered hooks (webui/extensions.py discovers extension folders and
        passes `manager.hooks`); none by default."""
        self.settings = settings
        self.hooks = hooks or Hooks()
        register_builtin_scripts(self.hooks)  # X/Y/Z plot, SD upscale ...: script hooks like an extension's
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
        self.upscalers = UpscalerLibrary(settings.upscaler_search_dirs, self.device, settings.upscaler_tile,
                                         settings.upscaler_tile_overlap)
        self.faces = FaceRestorers(settings.face_model_dirs, self.device)
        self.controlnets = ControlNets(settings.controlnet_search_dirs, settings.controlnet_annotator_search_dirs,
                                       settings.controlnet_cache_size, settings.controlnet_unit_count)
        self.planner = Planner(settings, self.models, self.styles, self.wildcards, self.networks, self.hooks,
                               self.upscalers, self.faces, self.controlnets)
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

    def ensure_model(self, query: str | CheckpointInfo | None = None) -> LoadedModel:
        """In the worker: the given checkpoint, else the active one, else the default one."""
        if query:
            return self.models.select(query)
        return self.models.active or self.models.select(self.default_checkpoint())

    def unload_checkpoint(self) -> None:
        self.queue.run("unload", lambda state: self.models.unload())

    def active_model(self) -> LoadedModel | None:
        return self.models.active

    def resolve_checkpoint(self, query: str) -> CheckpointInfo:
        """The checkpoint of the checkpoint folders that a title, name or hash means (never a path elsewhere: what
        a remote client names must be one of the listed checkpoints); CheckpointLoadError naming the available."""
        return self.models.resolve(query, allow_path=False)

    def model_cache(self) -> ModelCache:
        return ModelCache(self.models.cache_size, self.models.cached_titles(), self.models.loads)

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

    @property
    def vae_choice(self) -> str:
        """A1111's "SD VAE" option now: 'Automatic', 'None' or a VAE file name."""
        return self.networks.vae_choice

    def check_vae(self, name: str | None) -> str:
        """The normalised VAE choice; NetworkNotFound (with close matches) for an unknown name."""
        return self.networks.vaes.validate(name)

    def select_vae(self, name: str | None) -> str:
        """A1111's "SD VAE" option ('Automatic', 'None' or a file name), applied to the active model now. An unknown
        name or a file that fails to load raises NetworkError (a RequestError) and the previous VAE stays."""
        choice = self.networks.vaes.validate(name)  # an unknown name fails before the queue
        if self.models.active is None:
            return self.networks.set_vae_choice(choice)
        return self.queue.run("vae", lambda state: self.networks.set_vae_choice(choice, self.models.active))

    # ---- prompts -------------------------------------------------------------------------------------
    def token_count(self, text: str, steps: int = 20) -> tuple[int, int]:
        """A1111's counter (count, limit) for the active model's tokenizer (or the CLIP-L one before any load):
        the longest of the prompt's scheduled texts and AND parts, without comments and extra-network tags."""
        model = self.models.active
        if model is not None:
            return longest_count(prompt_encoder(model).token_count, text, steps)
        if self._plain_counter is None:
            from webui import resources

            self._plain_counter = PromptEncoder([resources.clip_tokenizer()], [None], "sd1")
        return longest_count(self._plain_counter.token_count, text, steps)

    _plain_counter: PromptEncoder | None = None

    # ---- generation ----------------------------------------------------------------------------------
    def plan(self, request: GenerationRequest) -> JobPlan:
        """The request resolved once (checkpoint, sampler, seeds, prompts, LoRAs, VAE); bad input raises here."""
        return self.planner.plan(request)

    def submit(self, request: GenerationRequest) -> Job:
        """Plan now (bad input never reaches the queue), then queue the job; `job.plan` is what will run. A request
        with a `script_name` is run by that script (its arguments are checked now too), as one job."""
        if request.script_name:
            return scripts.submit_script(self, request)
        plan = self.plan(request)
        job = self.queue.submit(plan.mode, lambda state: GenerationJob(self, plan, state).run())
        job.plan = plan
        return job

    def generate(self, request: GenerationRequest, timeout: float | None = None) -> GenerationResult:
        return self.submit(request).result(timeout)

    txt2img = generate
    img2img = generate

    # ---- inspect (webui/engine/inspect/) --------------------------------------------------------------------
    def submit_inspect(self, request):
        """An InspectRequest planned now (bad input raises here) and queued as one job; its result an
        InspectResult (the image, token view, steps, attention maps, walk frames)."""
        from webui.engine.inspect import run as inspect_run

        plan = inspect_run.InspectPlan(self, request)
        job = self.queue.submit("inspect", lambda state: inspect_run.run(self, plan, state))
        job.plan = plan.main
        return job

    def inspect(self, request, timeout: float | None = None):
        return self.submit_inspect(request).result(timeout)

    def inspect_tokens(self, prompt: str, steps: int = 20):
        """The TokenView of a prompt for the active model (through the queue: loads the model if none is)."""
        from webui.engine.inspect import run as inspect_run

        return self.queue.run("tokens", lambda state: inspect_run.prompt_tokens(self, prompt, steps))

    def list_scripts(self, mode: str) -> list[str]:
        """The scripts a request of this mode ("txt2img" | "img2img") may name, as A1111's /sdapi/v1/scripts lists
        them (titles in lower case)."""
        return scripts.script_titles(self, mode)

    def script_info(self) -> list[dict]:
        """A1111's /sdapi/v1/script-info: each tab's scripts with their arguments ({label, value, minimum, maximum,
        step, choices} in script_args order)."""
        return scripts.script_info(self)

    def script_args(self, name: str, mode: str) -> list:
        """The arguments (ScriptArg: label, value, minimum, maximum, step, choices, kind) of the script titled
        `name` for a UI; RequestError when there is none."""
        return scripts.script_args(self, name, mode)

    def interrupt(self) -> bool:
        return self.queue.interrupt()

    def cancel(self, job: Job) -> bool:
        """Drop a job that has not started yet; False when it is already running or done."""
        return self.queue.cancel(job)

    def skip(self) -> bool:
        return self.queue.skip()

    def current_job(self) -> Job | None:
        return self.queue.current

    def queue_position(self, job: Job) -> int:
        """0 = running, 1 = next, ...; -1 when done."""
        return self.queue.position(job)

    def queue_length(self) -> int:
        """Jobs waiting (not counting the running one)."""
        return self.queue.waiting

    def list_upscalers(self, refresh: bool = False) -> list[str]:
        """Upscaler names: None, Lanczos, Nearest, then the model files of the upscaler folders."""
        if refresh:
            self.upscalers.refresh()
        return self.upscalers.names()

    def upscaler_items(self) -> list[dict]:
        """/sdapi/v1/upscalers items (a model's scale read from its weights)."""
        return [{"name": n, "model_name": None, "model_path": None, "model_url": None, "scale": 4.0}
                for n in ("None", "Lanczos", "Nearest")] + \
            [info.as_api(info.scale_from_name) for info in self.upscalers.models()]

    def extras(self, request: ExtrasRequest) -> ExtrasResult:
        """A1111's Extras (upscale finished images), through the queue; saved in outputs/extras-images/."""
        extras.check(request, self.upscalers, self.faces)
        save = lambda image, info, name: self.outputs.save(image, info, name, "extras")  # noqa: E731
        return self.queue.run("extras", lambda state: extras.run(request, save, self.upscalers, self.faces))

    # ---- extra-networks cards (the panel under the prompt) ----------------------------------------------------
    def network_cards(self, kind: str, query: str = "", sort: str = "name", refresh: bool = False) -> list:
        """NetworkCard items of one kind ("checkpoints", "textual_inversion", "lora"): preview, trigger words, what
        a click inserts; filtered by `query` (every word must match) and sorted ("name", "name-desc", "date",
        "date-asc")."""
        return catalog.search_and_sort(catalog.network_cards(self, kind, refresh), query, sort)

    def network_card(self, kind: str, key: str):
        """The card of one network (None when it is gone)."""
        return catalog.find_card(self, kind, key)

    def previews_writable(self) -> bool:
        """Whether "Replace preview" may write into the model folders (not while folders are locked or settings
        frozen)."""
        try:
            catalog.check_preview_allowed(self.settings)
        except catalog.PreviewRefused:
            return False
        return True

    def save_network_preview(self, card, image, infotext: str | None = None) -> Path:
        """Save `image` as the card's `name.preview.png` beside its file; PreviewRefused (a RequestError) when not
        allowed."""
        return catalog.save_preview(self.settings, card.path, image, infotext)

    # ---- training (LoRA, textual inversion) ------------------------------------------------------------------
    def submit_training(self, request):
        """Check a TrainingRequest and read its images now (TrainingError for bad input), then queue the run; the
        job's `plan.monitor` has the losses and sample images so far, its result is a TrainingResult."""
        from webui.engine import training

        return training.submit(self, request)

    def train(self, request, timeout: float | None = None):
        return self.submit_training(request).result(timeout)

    def create_embedding(self, name: str, num_vectors: int = 1, init_text: str = "*", overwrite: bool = False) -> Path:
        """A1111's Create embedding: an untrained embedding for the loaded model in the embeddings folder."""
        from webui.engine import training

        return training.create_embedding(self, name, num_vectors, init_text, overwrite)

    def face_restorers(self, refresh: bool = False) -> list:
        """The installed face restorers (FaceRestorerInfo: kind and file; `.as_api()` = A1111's item), one per
        kind: CodeFormer, GFPGAN, RestoreFormer."""
        return self.faces.refresh() if refresh else self.faces.installed()

    # ---- ControlNet (webui/engine/controlnet) ---------------------------------------------------------
    def controlnet_models(self, refresh: bool = False) -> list[str]:
        """ControlNet model titles as sd-webui-controlnet lists them ("name [hash]")."""
        return self.controlnets.model_titles(refresh)

    def controlnet_modules(self, alias_names: bool = False) -> list[str]:
        return self.controlnets.module_names(alias_names)

    def controlnet_module_detail(self, alias_names: bool = False) -> dict:
        return self.controlnets.preprocessors.detail(alias_names)

    def controlnet_detect(self, module: str, images: list, processor_res: float = -1, threshold_a: float = -1,
                          threshold_b: float = -1) -> list:
        """The detected maps of ``images`` (PIL) with a module; an unknown module or missing weights fail now,
        the detection runs in the job queue (a neural module uses the device)."""
        self.controlnets.preprocessors.check(module)
        run = self.controlnets.preprocessors.run
        return self.queue.run("controlnet-detect", lambda state: [run(module, im, processor_res, threshold_a,
                                                                      threshold_b) for im in images])

    def update_settings(self, changes: dict) -> list[str]:
        """The one way to change settings while running (Settings tab, POST /sdapi/v1/options): checked against
        one table, saved to the settings file, applied at once where possible. Returns the changed settings that
        apply after a restart. SettingError (SettingLocked for frozen or locked ones) names what was refused."""
        self.settings, restart = updated_settings(self.settings, changes)
        self.planner.settings = self.settings
        self.models.set_cache_size(self.settings.checkpoint_cache_size)
        self.wildcards.max_combinations = self.settings.max_combinations
        self.controlnets.cache.size = self.settings.controlnet_cache_size
        self.controlnets.unit_count = self.settings.controlnet_unit_count
        self.upscalers.tile, self.upscalers.overlap = self.settings.upscaler_tile, self.settings.upscaler_tile_overlap
        return restart

    def request_defaults(self, **fields) -> GenerationRequest:
        """A request filled with the user's defaults (sampler, steps, CFG)."""
        base = GenerationRequest(sampler_name=self.settings.default_sampler, scheduler=self.settings.default_scheduler,
                                 steps=self.settings.default_steps, cfg_scale=self.settings.default_cfg_scale)
        return replace(base, **fields)

    def close(self) -> None:
        self.queue.shutdown()
