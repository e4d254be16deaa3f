"""Cross-attention maps, DAAM's way (Tang et al. 2022, "What the DAAM: Interpreting Stable Diffusion Using Cross
Attention"): in the chosen cross-attention layers and steps, the attention probabilities of every image position
(query) over the text tokens (keys) are averaged over the heads, upsampled to the latent's resolution and averaged
over layers and steps as they arrive. What is kept is one running sum [tokens, latent h, latent w] and a count:
memory does not grow with steps or layers.

Capture goes through diffusers' attention processors: `CaptureProcessor` is installed with
`unet.set_attn_processor` on the chosen layers only (every other layer keeps its processor) and the saved
processors are put back afterwards (`AttentionCapture.installed`). It wraps each layer's own processor, which still
computes the layer's output: PyTorch's fused attention (SDPA) never forms the probabilities, so the captured layers
compute them besides, explicitly (the same arithmetic as diffusers' `AttnProcessor`), and only in captured steps.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from webui.engine.requests import RequestError

LAYER_GROUPS = ("down", "mid", "up")


def cross_attention_layers(unet, groups=LAYER_GROUPS, names: list[str] | None = None) -> list[str]:
    """The processor names of the UNet's cross-attention layers (`attn2`) in the chosen groups (down, mid, up
    blocks), or exactly `names` (each must be one of them)."""
    every = [n for n in unet.attn_processors if ".attn2." in n]
    if names:
        unknown = [n for n in names if n not in every]
        if unknown:
            raise RequestError(f"attention layers not found in this model: {', '.join(unknown[:5])}; "
                               f"choose from {', '.join(every[:3])} ... ({len(every)} layers)")
        return list(names)
    bad = [g for g in groups if g not in LAYER_GROUPS]
    if bad or not groups:
        raise RequestError(f"attention layer groups must be some of {', '.join(LAYER_GROUPS)} (got {list(groups)})")
    return [n for n in every if n.split("_")[0] in groups]


class AttentionMaps:
    """The running average of per-token maps at latent resolution: `add` one layer call's probabilities."""

    def __init__(self, latent_size: tuple[int, int], tokens: int, rows: slice):
        self.height, self.width = latent_size
        self.tokens = tokens  # keys kept (the conditioning's 77 * chunks)
        self.rows = rows  # which images of the UNet batch are the prompt's (the positive half with CFG)
        self.total = torch.zeros(tokens, self.height, self.width)
        self.count = 0

    @torch.no_grad()
    def add(self, probs: torch.Tensor, batch: int, heads: int) -> None:
        """`probs`: [batch * heads, queries, keys] of one cross-attention call."""
        queries = probs.shape[1]
        h, w = self._grid(queries)
        per_image = probs.view(batch, heads, queries, -1)[self.rows].float().mean(dim=(0, 1))  # [queries, keys]
        maps = per_image[:, : self.tokens].T.reshape(1, -1, h, w)
        if (h, w) != (self.height, self.width):
            maps = F.interpolate(maps, size=(self.height, self.width), mode="bilinear", align_corners=False)
        self.total += maps[0].cpu()
        self.count += 1

    def _grid(self, queries: int) -> tuple[int, int]:
        """The layer's spatial size: the latent downsampled by a power of two (odd sizes round up, as the UNet's
        strided convolutions do)."""
        for level in range(8):
            h, w = math.ceil(self.height / 2 ** level), math.ceil(self.width / 2 ** level)
            if h * w == queries:
                return h, w
        raise ValueError(f"cannot place {queries} attention queries on a {self.height}x{self.width} latent")

    def mean(self) -> torch.Tensor:
        """[tokens, h, w]: the average map of every captured call (zeros when nothing was captured)."""
        return self.total / max(self.count, 1)

    @property
    def nbytes(self) -> int:
        return self.total.numel() * self.total.element_size()


class CaptureProcessor:
    """Wraps one layer's own processor: the layer's output is what that processor computes (so the image is the
    plain generation's, bit for bit), and while the capture's steps are active the attention probabilities are
    computed besides, explicitly (the query and key projections and softmax of diffusers' `AttnProcessor`), since
    fused attention (SDPA, xformers) never forms them."""

    def __init__(self, capture: AttentionCapture, original):
        self.capture = capture
        self.original = original

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        if encoder_hidden_states is not None and self.capture.active:
            self._capture(attn, hidden_states, encoder_hidden_states, temb)
        return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)

    @torch.no_grad()
    def _capture(self, attn, hidden_states, encoder_hidden_states, temb) -> None:
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        if hidden_states.ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key, None)  # [batch * heads, queries, keys]
        self.capture.maps.add(probs, hidden_states.shape[0], attn.heads)


class AttentionCapture:
    """Which layers and steps are captured, and the maps. `steps`: 1-based step numbers to capture (None: all).
    The sampler's step callback calls `next_step` after each step."""

    def __init__(self, layers: list[str], steps: set[int] | None, latent_size: tuple[int, int], tokens: int,
                 rows: slice):
        self.layers = layers
        self.steps = steps
        self.step = 1
        self.maps = AttentionMaps(latent_size, tokens, rows)

    @property
    def active(self) -> bool:
        return self.steps is None or self.step in self.steps

    def next_step(self) -> None:
        self.step += 1

    @contextmanager
    def installed(self, unet):
        """The capture processor on the chosen layers for the duration; the UNet's own processors restored on any
        exit (also when sampling fails or is interrupted)."""
        saved = unet.attn_processors
        unet.set_attn_processor({name: CaptureProcessor(self, p) if name in self.layers else p
                                 for name, p in saved.items()})
        try:
            yield self
        finally:
            unet.set_attn_processor(saved)
INSPECT_LAYER_GROUPS = LAYER_GROUPS  # the public name (webui.engine)
