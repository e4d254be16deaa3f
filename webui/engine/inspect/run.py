"""Inspect jobs on the engine's own path: the request is planned by the engine's planner (bad input fails before
the queue) and sampled by the same stages as a plain generation (`GenerationJob`), with a `SamplingInspector`
given to the first pass. A walk's frames are plain generations too: seeds are walked with A1111's variation seed
(slerp of the noise: seed A, variation seed B, strength t), prompts by interpolating the conditioning; the two end
frames are exactly the plain generations of (seed A, prompt A) and (seed B, prompt B).

    result = engine.inspect(InspectRequest(engine.request_defaults(prompt="...", seed=1), walk_to_seed=2))
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from webui.engine.infotext import quote
from webui.engine.inspect import media
from webui.engine.inspect.attention import LAYER_GROUPS
from webui.engine.inspect.sampling import (
    AttentionChoice,
    PromptBlend,
    SamplingInspector,
)
from webui.engine.inspect.steps import StepRecord, convergence
from webui.engine.inspect.tokens import TokenInfo, TokenView, token_view
from webui.engine.requests import GenerationRequest, RequestError

DECODES = ("preview", "full")
MAX_FRAMES = 64
INSPECT_DECODES = DECODES  # the public name (webui.engine)


@dataclass
class InspectRequest:
    request: GenerationRequest  # one txt2img image: prompt, seed, steps, sampler, size ...
    record_steps: bool = True  # x0 and the noisy latents at every step
    decode: str = "preview"  # "preview": the cheap linear map; "full": the VAE
    attention: bool = True  # per-token cross-attention maps
    attention_layers: list[str] = field(default_factory=lambda: list(LAYER_GROUPS))  # groups: down, mid, up
    attention_layer_names: list[str] | None = None  # exact processor names instead of groups
    attention_steps: list[int] | None = None  # 1-based steps to capture; None = all
    walk_to_seed: int | None = None
    walk_to_prompt: str | None = None
    walk_frames: int = 8
    save: bool = True  # write the results to outputs/inspect-images/ (with infotext)

    @property
    def walks(self) -> bool:
        return self.walk_to_seed is not None or bool(self.walk_to_prompt)


@dataclass
class StepFrame:
    step: int
    timestep: float
    sigma: float
    x0: Image.Image  # the predicted clean image after this step
    noisy: Image.Image  # the noisy latents after this step, decoded the same way
    distance: float  # RMS distance of this x0 (latents) to the final one


@dataclass
class TokenMap:
    token: TokenInfo
    heat: np.ndarray  # [latent h, latent w], the averaged attention probability
    mass: float  # the map's share of all prompt tokens' attention (how much this token is looked at)


@dataclass
class WalkFrame:
    t: float
    seed: int
    image: Image.Image
    infotext: str
    path: Path | None = None


@dataclass
class InspectResult:
    image: Image.Image
    infotext: str
    seed: int
    tokens: TokenView
    path: Path | None = None
    steps: list[StepFrame] = field(default_factory=list)
    attention: list[TokenMap] = field(default_factory=list)
    attention_info: dict = field(default_factory=dict)  # layers, steps, calls, latent size, bytes kept
    walk: list[WalkFrame] = field(default_factory=list)
    saved: dict[str, Path] = field(default_factory=dict)  # what was written to outputs/ ("steps", "walk" ...)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False

    def maps(self) -> np.ndarray:
        """[prompt tokens, latent h, latent w]."""
        if not self.attention:
            return np.zeros((0, 0, 0), np.float32)
        return np.stack([m.heat for m in self.attention]).astype(np.float32)

    def overlays(self) -> list[Image.Image]:
        return [media.heat_overlay(self.image, m.heat) for m in self.attention]

    def sigmas(self) -> list[float]:
        return [s.sigma for s in self.steps]

    def steps_strip(self, noisy: bool = False) -> Image.Image:
        return media.strip([s.noisy if noisy else s.x0 for s in self.steps], [str(s.step) for s in self.steps])

    def steps_animation(self) -> bytes:
        return media.animation_bytes([s.x0 for s in self.steps] + [self.image], self.infotext, size=256)

    def attention_strip(self) -> Image.Image:
        return media.strip(self.overlays(), [m.token.word for m in self.attention])

    def walk_strip(self) -> Image.Image:
        return media.strip([f.image for f in self.walk], [f"{f.t:.2f}" for f in self.walk])

    def walk_animation(self) -> bytes:
        frames = [f.image for f in self.walk]
        return media.animation_bytes(frames + frames[-2:0:-1], self.walk[0].infotext if self.walk else None,
                                     size=256)

    def noise_plot(self) -> Image.Image:
        return media.noise_plot(self.sigmas())


class InspectPlan:
    """The planned main image and, for a walk, each frame's plan and prompt blend."""

    def __init__(self, engine, ireq: InspectRequest):
        check(ireq)
        req = replace(ireq.request, save_images=ireq.save, batch_grid=False)
        if ireq.save:
            req.outpath = engine.outputs.folder("inspect")
        self.request = ireq
        self.main = engine.plan(req)
        self.frames: list[tuple[float, object, PromptBlend | None]] = []
        if ireq.walks:
            self.frames = [self._frame(engine, req, i) for i in range(ireq.walk_frames)]

    def _frame(self, engine, req: GenerationRequest, i: int):
        ireq, seed = self.request, self.main.seeds[0]
        last = ireq.walk_frames - 1
        t = i / last
        to_seed = seed if ireq.walk_to_seed is None else int(ireq.walk_to_seed)
        to_prompt = ireq.walk_to_prompt or req.prompt
        if i == 0:
            return t, self.main, None
        if i == last:  # exactly the plain generation of the other end
            return t, engine.plan(replace(req, seed=to_seed, prompt=to_prompt)), None
        frame = replace(req, seed=seed, extra_generation_params=dict(req.extra_generation_params))
        if to_seed != seed:
            frame.subseed, frame.subseed_strength = to_seed, round(t, 6)
        blend = None
        if to_prompt != req.prompt:
            blend = PromptBlend(to_prompt, t)
            frame.extra_generation_params["Prompt walk"] = f"{t:.4g} to {quote(to_prompt)}"
        return t, engine.plan(frame), blend


def check(ireq: InspectRequest) -> None:
    """What Inspect supports (one txt2img image, no second pass or script); RequestError otherwise."""
    req = ireq.request
    if req.batch_size * req.n_iter != 1:
        raise RequestError("Inspect looks at one image: batch_size and n_iter must be 1")
    if req.enable_hr:
        raise RequestError("Inspect does not support the hires fix (its second pass); turn enable_hr off")
    if req.script_name:
        raise RequestError("Inspect does not run scripts; remove script_name")
    if req.init_images or req.mask is not None:
        raise RequestError("Inspect supports txt2img only (no init images or mask)")
    if ireq.decode not in DECODES:
        raise RequestError(f"decode must be one of {', '.join(DECODES)} (got {ireq.decode!r})")
    bad = [g for g in ireq.attention_layers if g not in LAYER_GROUPS]
    if ireq.attention and not ireq.attention_layer_names and (bad or not ireq.attention_layers):
        raise RequestError(f"attention_layers must be some of {', '.join(LAYER_GROUPS)} "
                           f"(got {list(ireq.attention_layers)})")
    steps = ireq.attention_steps
    if steps is not None and (not steps or any(not 1 <= int(s) <= req.steps for s in steps)):
        raise RequestError(f"attention_steps must be step numbers from 1 to {req.steps}")
    if ireq.walks:
        if not 2 <= int(ireq.walk_frames) <= MAX_FRAMES:
            raise RequestError(f"walk_frames must be from 2 to {MAX_FRAMES}")
        if ireq.walk_to_seed is not None and req.subseed_strength > 0:
            raise RequestError("a walk between seeds uses the variation seed: set subseed_strength to 0")
        if ireq.walk_to_seed is not None and int(ireq.walk_to_seed) < 0:
            raise RequestError("walk_to_seed must be a seed (0 or more)")
        if ireq.walk_to_prompt and any(_scheduled(t, req.steps) for t in (req.prompt, ireq.walk_to_prompt)):
            raise RequestError("a walk between prompts does not support prompt editing or alternation "
                               "([a:b:n], [a|b]): the conditioning is interpolated once for all steps")


def _scheduled(text: str, steps: int) -> bool:
    from webui.engine.prompts.schedule import prompt_schedule

    return len(prompt_schedule(text, max(1, steps))) > 1


def run(engine, iplan: InspectPlan, state) -> InspectResult:
    """In the worker: the main image with the inspection hooks, then the walk's frames."""
    from webui.engine.stages import GenerationJob

    ireq = iplan.request
    choice = None
    if ireq.attention:
        steps = {int(s) for s in ireq.attention_steps} if ireq.attention_steps else None
        choice = AttentionChoice(list(ireq.attention_layers), ireq.attention_layer_names, steps)
    inspector = SamplingInspector(record_steps=ireq.record_steps, attention=choice)
    job = GenerationJob(engine, iplan.main, state, inspector)
    gen = job.run()
    if not gen.images:
        raise RequestError("Inspect: the generation was interrupted before its first step")
    model = job.model
    result = InspectResult(gen.images[0], gen.infotexts[0], gen.seeds[0], _tokens(engine, model, job),
                           gen.paths[0] if gen.paths else None, warnings=list(gen.warnings),
                           interrupted=gen.interrupted)
    if inspector.recorder is not None:
        result.steps = _step_frames(engine, model, inspector.recorder.records, ireq.decode)
    if inspector.capture is not None:
        result.attention, result.attention_info = _token_maps(result.tokens, inspector)
    if iplan.frames and not state.interrupted:
        result.walk = _walk(engine, iplan, state)
    if ireq.save:
        _save(engine, result)
    return result


def _tokens(engine, model, job) -> TokenView:
    from webui.engine.generation import prompt_encoder
    from webui.engine.networks.embeddings import ModelEmbeddings
    from webui.engine.prompts.schedule import prompt_schedule

    text = job.texts[0]
    first = prompt_schedule(text, job.spec.steps)[0][1]  # with prompt editing: the text of the first step
    names = list(ModelEmbeddings.of(model).loaded)
    return token_view(prompt_encoder(model), model.components["tokenizer"], first, names)


def _step_frames(engine, model, records: list[StepRecord], decode: str) -> list[StepFrame]:
    from webui.engine.generation import decode_latents
    from webui.engine.preview import latent_preview

    def picture(latents):
        if decode == "full":
            return decode_latents(model, latents[None], engine.device)[0]
        return latent_preview(model, latents[None])

    distances = convergence(records)
    return [StepFrame(r.step, r.timestep, r.sigma, picture(r.x0), picture(r.latents), d)
            for r, d in zip(records, distances)]


def _token_maps(view: TokenView, inspector: SamplingInspector) -> tuple[list[TokenMap], dict]:
    capture = inspector.capture
    maps = capture.maps.mean()
    tokens = [t for t in view.prompt_tokens() if t.index < maps.shape[0]]
    heats = [maps[t.index].numpy() for t in tokens]
    total = sum(float(h.sum()) for h in heats) or 1.0
    info = {"layers": capture.layers, "steps": sorted(capture.steps) if capture.steps else "all",
            "calls": capture.maps.count, "latent_size": [capture.maps.height, capture.maps.width],
            "bytes": capture.maps.nbytes}
    return [TokenMap(t, h, float(h.sum()) / total) for t, h in zip(tokens, heats)], info


def _walk(engine, iplan: InspectPlan, state) -> list[WalkFrame]:
    from webui.engine.stages import GenerationJob

    frames = []
    for t, plan, blend in iplan.frames:
        if state.interrupted:
            break
        inspector = SamplingInspector(blend=blend) if blend is not None else None
        gen = GenerationJob(engine, plan, state, inspector).run()
        if not gen.images:
            break
        frames.append(WalkFrame(t, gen.seeds[0], gen.images[0], gen.infotexts[0],
                                gen.paths[0] if gen.paths else None))
    return frames


def _save(engine, result: InspectResult) -> None:
    """The pictures of the run next to its image in outputs/inspect-images/, each with the run's infotext."""
    def note(what: str) -> str:
        return f"{result.infotext}, Inspect: {what}"

    out = engine.outputs
    seed = result.seed
    if result.steps:
        path = out.save(result.steps_strip(), note("x0 per step"), f"{seed}-steps", "inspect")
        result.saved["steps"] = path
        result.saved["steps_animation"] = media.write_bytes(path.with_suffix(".webp"), result.steps_animation())
        result.saved["noise"] = out.save(result.noise_plot(), note("noise level per step"), f"{seed}-noise",
                                         "inspect")
    if result.attention:
        result.saved["attention"] = out.save(result.attention_strip(), note("attention per token"),
                                             f"{seed}-attention", "inspect")
    if result.walk:
        path = out.save(result.walk_strip(), note("walk"), f"{seed}-walk", "inspect")
        result.saved["walk"] = path
        result.saved["walk_animation"] = media.write_bytes(path.with_suffix(".webp"), result.walk_animation())



def prompt_tokens(engine, prompt: str, steps: int = 20) -> TokenView:
    """In the worker: the token view of a prompt as the active (or default) model encodes it, with the embeddings
    of the embeddings folder loaded (as a generation would); comments and <lora:...> tags are not text the encoder
    sees, and with prompt editing the first step's text is shown."""
    from webui.engine.generation import prompt_encoder
    from webui.engine.networks.embeddings import ModelEmbeddings
    from webui.engine.networks.manager import network_pipeline
    from webui.engine.prompts.extra_networks import extract_extra_networks
    from webui.engine.prompts.prepare import strip_comments
    from webui.engine.prompts.schedule import prompt_schedule

    model = engine.ensure_model()
    engine.networks.embeddings.ensure_loaded(model, network_pipeline(model, engine.device))
    text = extract_extra_networks(strip_comments(prompt))[0]
    first = prompt_schedule(text, max(1, int(steps)))[0][1]
    names = list(ModelEmbeddings.of(model).loaded)
    return token_view(prompt_encoder(model), model.components["tokenizer"], first, names)
