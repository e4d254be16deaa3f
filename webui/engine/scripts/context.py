"""What a script gets: the engine's own planning, stages, upscalers and outputs, for one job.

In the worker, `generate()` plans a sub-request and runs its stages right there (as Engine.submit's queued function
does): a script's job is one queue job, and never waits on the queue it is running in. Progress and interrupt are
the script job's own: every sub-generation reports its batches as batches of the whole job.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from webui.engine import samplers
from webui.engine.hires import LATENT_MODES, upscaler_name
from webui.engine.requests import GenerationRequest, GenerationResult
from webui.engine.stages import GenerationJob


class ScriptContext:
    def __init__(self, engine, mode: str, state=None):
        """`engine`: the Engine (not imported here: the engine imports this module); `state`: the running job's
        JobState (None before the job runs: when arguments are described or checked)."""
        self.engine, self.mode, self.state = engine, mode, state
        self.done = 0  # batches of sub-generations finished

    def bind(self, state) -> "ScriptContext":
        return ScriptContext(self.engine, self.mode, state)

    @property
    def settings(self):
        return self.engine.settings

    # ---- what there is (argument choices, checks before the queue) --------------------------------------------
    def sampler_names(self) -> list[str]:
        return samplers.sampler_names()

    def schedule_names(self) -> list[str]:
        return samplers.schedule_names()

    def checkpoint_titles(self) -> list[str]:
        return sorted((i.title for i in self.engine.checkpoints.list()), key=str.casefold)

    def vae_choices(self) -> list[str]:
        return self.engine.networks.vaes.choices()

    def upscaler_names(self, latent: bool = False) -> list[str]:
        return [*LATENT_MODES, *self.engine.upscalers.names()] if latent else self.engine.upscalers.names()

    def style_names(self) -> list[str]:
        return self.engine.styles.names()

    def resolve_checkpoint(self, name: str) -> str:
        """The title of a listed checkpoint (NotFoundError naming the available)."""
        return self.engine.models.resolve(name, allow_path=False).title

    def resolve_sampler(self, name: str) -> str:
        return samplers.resolve(name, None).sampler.name

    def resolve_vae(self, name: str) -> str:
        return self.engine.networks.vaes.validate(name)

    def resolve_upscaler(self, name: str) -> str:
        return self.engine.upscalers.resolve(name)

    def resolve_hires_upscaler(self, name: str) -> str:
        """A latent mode or an upscaler (as hires fix takes them)."""
        return upscaler_name(name, self.engine.upscalers)

    # ---- running (in the worker) -------------------------------------------------------------------------------
    def plan(self, request: GenerationRequest):
        """The request resolved as Engine.submit resolves one (RequestError for bad input)."""
        return self.engine.planner.plan(request)

    def begin(self, batches: int) -> None:
        """How many batches the whole script will run (the job's progress bar)."""
        if self.state is not None:
            self.state.job_count = max(1, batches)

    @property
    def interrupted(self) -> bool:
        return self.state is not None and self.state.interrupted

    def generate(self, request: GenerationRequest, plan=None) -> GenerationResult:
        """One sub-generation through the engine's stages, in this worker (saved as its request says)."""
        plan = plan or self.plan(request)
        result = GenerationJob(self.engine, plan, _SubState(self.state, self.done)).run()
        self.done += plan.n_iter
        return result

    def upscale(self, image: Image.Image, upscaler: str, width: int, height: int) -> Image.Image:
        return self.engine.upscalers.upscale(image, upscaler, width, height)

    def save_image(self, image: Image.Image, infotext: str, seed: int, request: GenerationRequest) -> Path | None:
        """A finished image of the script (not of a sub-generation) in outputs/<mode>-images/, if saving is on."""
        if not (request.save_images and self.settings.save_images):
            return None
        return self.engine.outputs.save(image, infotext, seed, self.mode, request.outpath)

    def save_grid(self, image: Image.Image, infotext: str, kind: str) -> Path | None:
        """A script's grid in outputs/<mode>-grids/ when the grid_save setting is on (as A1111: whatever the
        request's save_images)."""
        if not self.settings.grid_save:
            return None
        return self.engine.outputs.save_grid(image, infotext, self.mode, kind)


class _SubState:
    """The script job's JobState as a sub-generation sees it: its batch numbers count on from the batches done
    before it, and it does not set the job's total; everything else (steps, previews, interrupt, skip) is the
    job's own."""

    def __init__(self, parent, offset: int):
        object.__setattr__(self, "_parent", parent)
        object.__setattr__(self, "_offset", offset)

    def __getattr__(self, name):
        value = getattr(self._parent, name)
        return value - self._offset if name == "job_no" else value

    def __setattr__(self, name, value):
        if name == "job_count":
            return
        setattr(self._parent, name, value + self._offset if name == "job_no" else value)
