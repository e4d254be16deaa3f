"""Per-step conditioning for a diffusers SD / SDXL pipeline call (prompt editing, alternation).

``build_conditioning`` encodes every prompt and negative prompt of a job with its
A1111 edit schedule; the result gives the pipeline's keyword arguments for the
first step and, through ``step_update`` inside diffusers' ``callback_on_step_end``,
swaps the embeddings whenever the schedule says so::

    cond = build_conditioning(encoder, prompts, negatives, steps=20, clip_skip=1)
    def on_step_end(pipe, i, t, kwargs):
        return cond.step_update(i, kwargs, pipe.do_classifier_free_guidance)
    pipe(**cond.pipeline_kwargs(), num_inference_steps=20,
         callback_on_step_end=on_step_end if cond.has_schedule else None,
         callback_on_step_end_tensor_inputs=cond.callback_tensor_inputs())

Step counting (see ``schedule.py``): A1111 picks, for its 0-based denoiser call
``k``, the first schedule entry with ``k <= end_at_step``. diffusers calls
``callback_on_step_end`` after step ``i`` (0-based), so ``step_update(i, ...)``
installs the conditioning of step ``i + 1``; ``pipeline_kwargs`` holds step 0's.
Build with ``steps`` = the step count A1111 builds the schedule from (``p.steps``
for txt2img and img2img, twice that for second-order samplers - one entry per
UNet call; diffusers' Heun-type schedulers also call back once per UNet call)
and, for the hires pass, ``steps`` = first-pass steps and ``hires_steps``.

Encoding (A1111's ``get_learned_conditioning``): each distinct prompt is encoded
once per job, the texts of its schedule as one batch; repeated texts (e.g. the
20 entries of ``[a|b]``) run through the text encoder once. Everything is then
padded to the longest chunk count of the job (prompt and negative must match
for diffusers' CFG batch) with the encoding of the empty prompt - A1111's "pad
prompt/negative prompt to be same length"; an SDXL all-zero empty negative is
padded with zeros (what diffusers' ``zeros_like`` default gives).

Rows: one per image (pass ``num_images_per_prompt=1`` to the pipeline, or the
same ``num_images_per_prompt`` here and there - rows are then repeated the way
diffusers repeats them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from webui.engine.prompts.encoder import Conditioning, PromptEncoder
from webui.engine.prompts.schedule import prompt_schedule, text_index_at

__all__ = ["ScheduledConditioning", "build_conditioning", "ScheduledEntry"]


@dataclass(frozen=True)
class ScheduledEntry:
    """One step range of one prompt: used while the 0-based step counter is ``<= end_at_step``."""

    end_at_step: int
    text: str
    embeds: torch.Tensor  # [1, 77*k, D]
    pooled: torch.Tensor | None  # [1, P] (SDXL) or None


@dataclass
class ScheduledConditioning:
    family: str
    positive: list[list[ScheduledEntry]]  # one schedule per image
    negative: list[list[ScheduledEntry]]
    num_images_per_prompt: int = 1
    _cache: dict = field(default_factory=dict, repr=False)

    # -- queries ------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        return len(self.positive)

    @property
    def has_schedule(self) -> bool:
        """True when some prompt or negative changes during sampling."""
        return any(len(s) > 1 for s in self.positive + self.negative)

    @property
    def is_sdxl(self) -> bool:
        return self.family == "sdxl"

    def indices_at(self, step_index: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Schedule entry used by each image at the 0-based step ``step_index``: (positive, negative)."""
        pos = tuple(text_index_at(_ends(s), step_index) for s in self.positive)
        neg = tuple(text_index_at(_ends(s), step_index) for s in self.negative)
        return pos, neg

    def conditioning_at(self, step_index: int) -> tuple[Conditioning, Conditioning]:
        """(positive, negative) conditioning of every image at the 0-based step ``step_index``."""
        key = self.indices_at(step_index)
        cached = self._cache.get(key)
        if cached is None:
            pos_idx, neg_idx = key
            cached = (_stack(self.positive, pos_idx), _stack(self.negative, neg_idx))
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = cached
        return cached

    # -- diffusers glue -------------------------------------------------------------------

    def callback_tensor_inputs(self) -> list[str]:
        """Names to pass as ``callback_on_step_end_tensor_inputs``."""
        return ["prompt_embeds", "add_text_embeds"] if self.is_sdxl else ["prompt_embeds"]

    def pipeline_kwargs(self) -> dict[str, torch.Tensor]:
        """Conditioning keyword arguments for the pipeline call (step 0's conditioning)."""
        pos, neg = self.conditioning_at(0)
        kwargs = {"prompt_embeds": pos.embeds, "negative_prompt_embeds": neg.embeds}
        if self.is_sdxl:
            kwargs["pooled_prompt_embeds"] = pos.pooled
            kwargs["negative_pooled_prompt_embeds"] = neg.pooled
        return kwargs

    def step_update(self, step_index: int, callback_kwargs: dict, do_cfg: bool) -> dict:
        """Tensors for ``callback_on_step_end`` after step ``step_index`` (0-based).

        Returns the conditioning of step ``step_index + 1`` in the layout the
        pipeline keeps: ``prompt_embeds`` = ``cat([negative, positive])`` with CFG
        (positive alone without), and for SDXL ``add_text_embeds`` the same way
        with the pooled embeddings. Returns ``{}`` when nothing changes.
        """
        if not self.has_schedule:
            return {}
        if self.indices_at(step_index + 1) == self.indices_at(step_index):
            return {}
        pos, neg = self.conditioning_at(step_index + 1)
        n = self.num_images_per_prompt
        out = {"prompt_embeds": _layout(pos.embeds, neg.embeds, do_cfg, n, callback_kwargs.get("prompt_embeds"))}
        if self.is_sdxl:
            out["add_text_embeds"] = _layout(
                pos.pooled, neg.pooled, do_cfg, n, callback_kwargs.get("add_text_embeds")
            )
        return out


def _ends(schedule: list[ScheduledEntry]) -> list[tuple[int, str]]:
    return [(e.end_at_step, e.text) for e in schedule]


def _stack(schedules: list[list[ScheduledEntry]], indices: tuple[int, ...]) -> Conditioning:
    entries = [s[i] for s, i in zip(schedules, indices)]
    embeds = torch.cat([e.embeds for e in entries], dim=0)
    pooled = None
    if entries[0].pooled is not None:
        pooled = torch.cat([e.pooled for e in entries], dim=0)
    return Conditioning(embeds=embeds, pooled=pooled)


def _layout(pos: torch.Tensor, neg: torch.Tensor, do_cfg: bool, repeat: int, like: torch.Tensor | None):
    if repeat > 1:
        pos = pos.repeat_interleave(repeat, dim=0)
        neg = neg.repeat_interleave(repeat, dim=0)
    tensor = torch.cat([neg, pos], dim=0) if do_cfg else pos
    if like is not None:
        tensor = tensor.to(device=like.device, dtype=like.dtype)
    return tensor


def _pad_chunks(cond: Conditioning, chunks: int, filler: torch.Tensor) -> torch.Tensor:
    """``cond.embeds`` ([1, 77*k, D]) padded with ``filler`` ([1, 77, D]) to ``chunks`` chunks."""
    have = cond.chunks
    if have >= chunks:
        return cond.embeds
    pad = filler.to(device=cond.embeds.device, dtype=cond.embeds.dtype).repeat(1, chunks - have, 1)
    return torch.cat([cond.embeds, pad], dim=1)


def build_conditioning(
    encoder: PromptEncoder,
    prompts: list[str],
    negative_prompts: list[str],
    steps: int,
    clip_skip: int = 1,
    *,
    hires_steps: int | None = None,
    use_old_scheduling: bool = False,
    num_images_per_prompt: int = 1,
) -> ScheduledConditioning:
    """Encode a job's prompts (one per image) with their edit schedules.

    ``negative_prompts`` has one entry per prompt, or a single entry for all.
    Prompts must already be free of extra-network tags and wildcards.
    """
    prompts = list(prompts)
    negative_prompts = list(negative_prompts)
    if not prompts:
        raise ValueError("build_conditioning needs at least one prompt")
    if len(negative_prompts) == 1 and len(prompts) > 1:
        negative_prompts = negative_prompts * len(prompts)
    if len(negative_prompts) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(negative_prompts)} negative prompts")
    if steps < 1:
        raise ValueError("steps must be at least 1")

    def encode_all(texts: list[str], negative: bool) -> dict[str, tuple[list[tuple[int, str]], list[Conditioning]]]:
        done: dict[str, tuple[list[tuple[int, str]], list[Conditioning]]] = {}
        for prompt in texts:
            if prompt in done:
                continue
            schedule = prompt_schedule(prompt, steps, hires_steps, use_old_scheduling)
            distinct, cond, index = encoder.encode_distinct([t for _, t in schedule], clip_skip, negative=negative)
            rows = [
                Conditioning(
                    embeds=cond.embeds[i : i + 1],
                    pooled=cond.pooled[i : i + 1] if cond.pooled is not None else None,
                )
                for i in range(len(distinct))
            ]
            done[prompt] = (schedule, [rows[i] for i in index])
        return done

    positive = encode_all(prompts, negative=False)
    negative = encode_all(negative_prompts, negative=True)

    chunks = max(c.chunks for _, conds in list(positive.values()) + list(negative.values()) for c in conds)
    empty_chunk = None
    if any(c.chunks < chunks for _, conds in list(positive.values()) + list(negative.values()) for c in conds):
        empty_chunk = encoder.encode([""], clip_skip).embeds

    padded: dict[int, torch.Tensor] = {}  # id(row) -> embeds padded to `chunks` (once per distinct row)

    def pad(cond: Conditioning, negative_side: bool) -> torch.Tensor:
        if cond.chunks >= chunks:
            return cond.embeds
        key = id(cond)
        if key not in padded:
            zero = negative_side and encoder.family == "sdxl" and not bool(cond.embeds.any())
            filler = torch.zeros_like(cond.embeds[:, :77]) if zero else empty_chunk
            padded[key] = _pad_chunks(cond, chunks, filler)
        return padded[key]

    def entries(done, prompt: str, negative_side: bool) -> list[ScheduledEntry]:
        schedule, conds = done[prompt]
        return [
            ScheduledEntry(end_at_step, text, pad(cond, negative_side), cond.pooled)
            for (end_at_step, text), cond in zip(schedule, conds)
        ]

    return ScheduledConditioning(
        family=encoder.family,
        positive=[entries(positive, p, False) for p in prompts],
        negative=[entries(negative, p, True) for p in negative_prompts],
        num_images_per_prompt=int(num_images_per_prompt),
    )
