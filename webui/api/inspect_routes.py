"""Our own routes under /ls/v1/inspect (not A1111's): see inside one generation. Documented in /docs by their
response models.

    POST /ls/v1/inspect/tokens   the token view of a prompt (chunks of 77, BOS/EOS/padding, weights, embeddings)
    POST /ls/v1/inspect/run      one image with its steps (x0 and noisy), noise levels, per-token attention maps
                                 and, when asked, a latent walk
    POST /ls/v1/inspect/walk     a latent walk only: frames between two seeds and/or two prompts
"""
from __future__ import annotations

import base64

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from webui.api.errors import ApiError, ApiRoute
from webui.api.images import encode_png
from webui.engine import INSPECT_DECODES, INSPECT_LAYER_GROUPS, InspectRequest

PREFIX = "/ls/v1/inspect"


class TokensBody(BaseModel):
    prompt: str = Field(max_length=100_000)
    steps: int = Field(20, ge=1, le=1000, description="for prompt editing: the first step's text is shown")


class TokenItem(BaseModel):
    index: int = Field(description="position in the encoded sequence: chunk * 77 + position")
    chunk: int
    position: int
    id: int
    text: str = Field(description="the tokenizer's sub-word, e.g. 'circle</w>'")
    word: str
    weight: float = Field(description="A1111 emphasis weight")
    kind: str = Field(description="bos | eos | pad | word | embedding")
    embedding: str | None = None


class ChunkItem(BaseModel):
    ended_by_break: bool
    used: int = Field(description="prompt tokens in this chunk (of 75)")
    tokens: list[TokenItem]


class TokensResponse(BaseModel):
    prompt: str
    count: int
    limit: int
    chunk_size: int
    embeddings: dict[str, list[int]]
    chunks: list[ChunkItem]


class InspectBody(BaseModel):
    prompt: str = Field(max_length=100_000)
    negative_prompt: str = Field("", max_length=100_000)
    seed: int = -1
    steps: int | None = Field(None, ge=1)
    sampler_name: str | None = None
    scheduler: str | None = None
    cfg_scale: float | None = None
    width: int | None = Field(None, ge=8)
    height: int | None = Field(None, ge=8)
    clip_skip: int = Field(1, ge=1, le=12)
    record_steps: bool = True
    decode: str = Field("preview", description=f"step pictures: {' or '.join(INSPECT_DECODES)}")
    attention: bool = True
    attention_layers: list[str] = Field(default_factory=lambda: list(INSPECT_LAYER_GROUPS),
                                        description="cross-attention layer groups: down, mid, up")
    attention_layer_names: list[str] | None = Field(None, description="exact attention processor names instead")
    attention_steps: list[int] | None = Field(None, description="1-based steps to capture; default all")
    walk_to_seed: int | None = None
    walk_to_prompt: str | None = Field(None, max_length=100_000)
    walk_frames: int = Field(8, ge=2, le=64)
    save_images: bool = Field(False, description="also save the results in outputs/inspect-images/")
    include_maps: bool = Field(True, description="the raw maps (latent resolution) as nested lists")


class StepItem(BaseModel):
    step: int
    timestep: float
    sigma: float
    x0_distance_to_final: float
    x0: str = Field(description="base64 PNG: the predicted clean image after this step")
    noisy: str = Field(description="base64 PNG: the noisy latents after this step")


class AttentionItem(BaseModel):
    token: TokenItem
    mass: float = Field(description="this token's share of the prompt tokens' attention")
    overlay: str = Field(description="base64 PNG: the map over the image")
    map: list[list[float]] | None = Field(None, description="the map at latent resolution")


class WalkItem(BaseModel):
    t: float
    seed: int
    image: str
    infotext: str


class WalkResponse(BaseModel):
    frames: list[WalkItem]
    strip: str | None = None
    animation: str | None = Field(None, description="base64 animated WebP")
    saved: dict[str, str] = {}


class InspectResponse(BaseModel):
    image: str
    infotext: str
    seed: int
    tokens: TokensResponse
    steps: list[StepItem]
    noise_plot: str | None = None
    steps_animation: str | None = Field(None, description="base64 animated WebP of the x0 frames")
    attention: list[AttentionItem]
    attention_info: dict
    walk: WalkResponse | None = None
    saved: dict[str, str] = {}
    warnings: list[str] = []
    interrupted: bool = False


class InspectApi:
    def __init__(self, engine, dependencies=()):
        self.engine = engine
        self.router = APIRouter(prefix=PREFIX, tags=["inspect"], route_class=ApiRoute,
                                dependencies=list(dependencies))
        r = self.router.add_api_route
        r("/tokens", self.tokens, methods=["POST"], response_model=TokensResponse,
          summary="The prompt as the model's tokenizer and encoder split it")
        r("/run", self.run, methods=["POST"], response_model=InspectResponse,
          summary="One image with its steps, noise levels, attention maps and (optionally) a latent walk")
        r("/walk", self.walk, methods=["POST"], response_model=WalkResponse,
          summary="Frames between two seeds (slerp of the noise) and/or two prompts (lerp of the conditioning)")

    async def tokens(self, body: TokensBody) -> dict:
        view = await run_in_threadpool(self.engine.inspect_tokens, body.prompt, body.steps)
        return view.as_dict()

    async def run(self, body: InspectBody) -> dict:
        result = await self._inspect(body)
        return await run_in_threadpool(_response, result, body.include_maps)

    async def walk(self, body: InspectBody) -> dict:
        if body.walk_to_seed is None and not body.walk_to_prompt:
            raise ApiError(422, "a walk needs walk_to_seed or walk_to_prompt")
        body = body.model_copy(update={"record_steps": False, "attention": False})
        result = await self._inspect(body)
        return await run_in_threadpool(_walk, result)

    async def _inspect(self, body: InspectBody):
        def submit():
            fields = {"prompt": body.prompt, "negative_prompt": body.negative_prompt, "seed": body.seed,
                          "width": body.width, "height": body.height, "clip_skip": body.clip_skip}
            fields.update({k: v for k in ("steps", "sampler_name", "scheduler", "cfg_scale")
                           if (v := getattr(body, k)) is not None})
            req = self.engine.request_defaults(**fields)
            return self.engine.submit_inspect(InspectRequest(
                req, record_steps=body.record_steps, decode=body.decode, attention=body.attention,
                attention_layers=body.attention_layers, attention_layer_names=body.attention_layer_names,
                attention_steps=body.attention_steps, walk_to_seed=body.walk_to_seed,
                walk_to_prompt=body.walk_to_prompt, walk_frames=body.walk_frames, save=body.save_images))

        job = await run_in_threadpool(submit)
        return await run_in_threadpool(job.result)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _walk(result) -> dict:
    frames = [{"t": f.t, "seed": f.seed, "image": encode_png(f.image, f.infotext), "infotext": f.infotext}
              for f in result.walk]
    saved = {k: str(v) for k, v in result.saved.items() if k.startswith("walk")}
    if not frames:
        return {"frames": [], "saved": saved}
    return {"frames": frames, "strip": encode_png(result.walk_strip(), result.walk[0].infotext),
            "animation": _b64(result.walk_animation()), "saved": saved}


def _response(result, include_maps: bool) -> dict:
    info = result.infotext
    steps = [{"step": s.step, "timestep": s.timestep, "sigma": s.sigma, "x0_distance_to_final": s.distance,
              "x0": encode_png(s.x0), "noisy": encode_png(s.noisy)} for s in result.steps]
    attention = [{"token": vars(m.token), "mass": m.mass, "overlay": encode_png(o, info),
                  "map": m.heat.tolist() if include_maps else None}
                 for m, o in zip(result.attention, result.overlays())]
    return {"image": encode_png(result.image, info), "infotext": info, "seed": result.seed,
            "tokens": result.tokens.as_dict(), "steps": steps,
            "noise_plot": encode_png(result.noise_plot(), info) if result.steps else None,
            "steps_animation": _b64(result.steps_animation()) if result.steps else None,
            "attention": attention, "attention_info": result.attention_info,
            "walk": _walk(result) if result.walk else None,
            "saved": {k: str(v) for k, v in result.saved.items()}, "warnings": result.warnings,
            "interrupted": result.interrupted}
