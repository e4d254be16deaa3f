"""The hooks an inspected sampling run installs, and only that run: a step recorder on the step callback, the
attention capture processors (installed for the pipeline call, restored after it), and for a walk between prompts
the interpolated conditioning. A plain generation passes no `SamplingInspector` and nothing here runs."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch

from webui.engine.inspect.attention import AttentionCapture, cross_attention_layers
from webui.engine.inspect.steps import StepRecorder


@dataclass
class AttentionChoice:
    groups: list[str]  # down, mid, up
    names: list[str] | None  # exact processor names instead of groups
    steps: set[int] | None  # 1-based; None = every step


@dataclass
class PromptBlend:
    """A walk between two prompts: the positive conditioning is (1 - t) * cond(prompt) + t * cond(other)."""
    other: str
    t: float


class SamplingInspector:
    def __init__(self, record_steps: bool = False, attention: AttentionChoice | None = None,
                 blend: PromptBlend | None = None):
        self.recorder = StepRecorder() if record_steps else None
        self.attention = attention
        self.blend = blend
        self.capture: AttentionCapture | None = None
        self.prompt_embeds: torch.Tensor | None = None  # the positive conditioning the run used

    @contextmanager
    def sampling(self, pipe, args: dict, callback, denoised, *, model, spec, batch):
        """Around one pipeline call (`args` are its keyword arguments, changed here before the call)."""
        if self.blend is not None:
            self._blend(model, spec, batch, args)
        self.prompt_embeds = args["prompt_embeds"]
        before = callback.on_step
        callback.on_step = self._on_step(pipe, denoised, before)
        try:
            with ExitStack() as stack:
                if self.attention is not None:
                    self.capture = self._capture(pipe, args, spec, batch)
                    stack.enter_context(self.capture.installed(pipe.unet))
                yield self
        finally:
            callback.on_step = before

    def _on_step(self, pipe, denoised, then):
        def on_step(state, step_index: int, latents):
            if self.recorder is not None:
                self.recorder.record(pipe.scheduler, step_index, latents, denoised.latents)
            if self.capture is not None:
                self.capture.next_step()
            if then is not None:
                then(state, step_index, latents)
        return on_step

    def _capture(self, pipe, args: dict, spec, batch) -> AttentionCapture:
        n = len(batch.seeds)
        cfg = spec.cfg_scale > 1 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None
        rows = slice(n, 2 * n) if cfg else slice(0, n)  # diffusers' CFG batch is cat([negative, positive])
        tokens = args["prompt_embeds"].shape[1]
        layers = cross_attention_layers(pipe.unet, self.attention.groups, self.attention.names)
        return AttentionCapture(layers, self.attention.steps, (spec.height // 8, spec.width // 8),
                                tokens, rows)

    def _blend(self, model, spec, batch, args: dict) -> None:
        """Both prompts encoded as one job (so they are padded to the same chunks, negative too), then lerped."""
        from webui.engine.generation import prompt_encoder
        from webui.engine.prompts.conditioning import build_conditioning
        from webui.engine.prompts.extra_networks import extract_extra_networks
        from webui.engine.prompts.prepare import strip_comments

        texts = [batch.prompts[0], extract_extra_networks(strip_comments(self.blend.other))[0]]
        cond = build_conditioning(prompt_encoder(model), texts, [batch.negative_prompts[0]] * 2, spec.steps,
                                  spec.clip_skip)
        a, b = cond.positive[0][0].embeds, cond.positive[1][0].embeds
        like = args["prompt_embeds"]
        t = self.blend.t
        args["prompt_embeds"] = torch.lerp(a.float(), b.float(), t).to(like.device, like.dtype)
        args["negative_prompt_embeds"] = cond.negative[0][0].embeds.to(like.device, like.dtype)
        if cond.is_sdxl:
            pa, pb = cond.positive[0][0].pooled, cond.positive[1][0].pooled
            args["pooled_prompt_embeds"] = torch.lerp(pa.float(), pb.float(), t).to(like.device, like.dtype)
            args["negative_pooled_prompt_embeds"] = cond.negative[0][0].pooled.to(like.device, like.dtype)
