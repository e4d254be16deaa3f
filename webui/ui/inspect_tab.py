"""Inspect tab (issue 21): see inside one generation - the prompt's tokens as the encoder splits them, the
predicted clean image (x0) and the noisy latents at every step (filmstrip and animation) with the noise level per
step, where each word looks (per-token cross-attention maps over the image), and walks through latent space
between two seeds and/or two prompts. The work is the engine's (`Engine.submit_inspect`, `Engine.inspect_tokens`);
results are saved with their infotext (outputs/inspect-images/) and can be sent to txt2img."""
from __future__ import annotations

import base64
import html

import gradio as gr

from webui.engine import INSPECT_LAYER_GROUPS, EngineError, InspectRequest
from webui.engine.samplers import sampler_names
from webui.ui.context import UiContext
from webui.ui.gallery_actions import chosen, save_selected
from webui.ui.generation import status_html

KIND_COLORS = {"bos": "#94a3b8", "eos": "#94a3b8", "pad": "#e2e8f0", "word": "#fde68a", "embedding": "#a7f3d0"}


def token_html(view) -> str:
    """The token view as chips, one row of 77 per chunk: BOS/EOS/padding greyed, weights shown when not 1,
    embedding vectors in green; each chip's tooltip has its id, sub-word and position."""
    rows = [(f'<p class="ls-muted">{view.count} tokens of {view.limit}; {len(view.chunks)} chunk(s) of 77 '
            f'(BOS + 75 + EOS, padded). Colours: word, embedding, BOS/EOS, padding.</p>')]
    for c, chunk in enumerate(view.chunks):
        chips = []
        for t in chunk.tokens:
            weight = f"<sub>{t.weight:g}</sub>" if t.weight != 1.0 else ""
            tip = html.escape(f"#{t.index} id {t.id} {t.text!r} {t.kind}" + (f" ({t.embedding})" if t.embedding
                                                                               else ""), quote=True)
            chips.append(f'<span title="{tip}" class="ls-tok ls-tok-{t.kind}" style="background:'
                         f'{KIND_COLORS[t.kind]};padding:1px 4px;margin:1px;border-radius:3px;display:inline-block;'
                         f'font-size:0.85em">{html.escape(t.word)}{weight}</span>')
        tail = " - ended by BREAK" if chunk.ended_by_break else ""
        rows.append(f'<div class="ls-chunk"><b>chunk {c + 1}</b> ({chunk.used}/75 used{tail})<br>'
                    f'{"".join(chips)}</div>')
    if view.embeddings:
        rows.append("<p>Embeddings: " + ", ".join(f"{html.escape(n)} at {idx}" for n, idx in view.embeddings.items())
                    + "</p>")
    return "".join(rows)


def animation_html(data: bytes, label: str) -> str:
    if not data:
        return ""
    src = "data:image/webp;base64," + base64.b64encode(data).decode("ascii")
    return (f'<figure style="margin:0"><img src="{src}" alt="{html.escape(label)}" '
            f'style="image-rendering:pixelated;max-width:256px"><figcaption class="ls-muted">'
            f'{html.escape(label)}</figcaption></figure>')


def parse_step_list(text: str, steps: int) -> list[int] | None:
    """'1-5, 8' -> [1..5, 8]; empty -> None (all). ValueError for anything else."""
    text = (text or "").strip()
    if not text:
        return None
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.strip().isdigit() or (hi and not hi.strip().isdigit()):
            raise ValueError(f"Steps to capture must look like '1-5, 8' (got {text!r})")
        out.update(range(int(lo), int(hi or lo) + 1))
    return sorted(out)


def build_request(ctx: UiContext, prompt, negative, seed, steps, sampler, cfg, width, height, decode, attention,
                  layers, attention_steps, walk_seed, walk_prompt, frames, save) -> InspectRequest:
    req = ctx.engine.request_defaults(prompt=prompt or "", negative_prompt=negative or "", seed=int(seed),
                                      steps=int(steps), sampler_name=sampler, cfg_scale=float(cfg),
                                      width=int(width) or None, height=int(height) or None)
    walk_to_seed = int(walk_seed) if walk_seed is not None and int(walk_seed) >= 0 else None
    return InspectRequest(req, decode=decode, attention=bool(attention), attention_layers=list(layers or []),
                          attention_steps=parse_step_list(attention_steps, int(steps)), walk_to_seed=walk_to_seed,
                          walk_to_prompt=(walk_prompt or "").strip() or None, walk_frames=int(frames),
                          save=bool(save))


def run(ctx: UiContext, *values):
    """Values for OUTPUTS (see `InspectTab.build`): image, tokens, x0 strip, noisy strip, steps animation, noise
    plot, attention maps, walk frames, walk animation, records, status."""
    empty = [None, "", [], [], "", None, [], [], "", [], None]
    try:
        ireq = build_request(ctx, *values)
        result = ctx.engine.submit_inspect(ireq).result()
    except (EngineError, ValueError) as exc:
        return [*empty[:-1], status_html(str(exc), "error")]
    steps = result.steps
    x0 = [(s.x0, f"step {s.step}  sigma {s.sigma:.3g}") for s in steps]
    noisy = [(s.noisy, f"step {s.step}") for s in steps]
    maps = [(o, f"{m.token.word}  {m.mass:.0%}") for m, o in zip(result.attention, result.overlays())]
    records = [{"image": result.image, "infotext": result.infotext, "path": str(result.path) if result.path else None,
                "seed": result.seed}]
    records += [{"image": f.image, "infotext": f.infotext, "path": str(f.path) if f.path else None, "seed": f.seed}
                for f in result.walk]
    walk = [(f.image, f"t={f.t:.2f}") for f in result.walk]
    saved = f" Saved in {result.path.parent}." if result.path else ""
    note = "; ".join(result.warnings)
    return [result.image, token_html(result.tokens), x0, noisy,
            animation_html(result.steps_animation(), "x0, step by step") if steps else "",
            result.noise_plot() if steps else None, maps, walk,
            animation_html(result.walk_animation(), "walk") if result.walk else "", records,
            status_html(f"Done: seed {result.seed}, {len(steps)} steps, {len(maps)} token maps, "
                        f"{len(walk)} walk frames.{saved} {note}".strip(), "ok")]


def tokens_only(ctx: UiContext, prompt, steps):
    try:
        return token_html(ctx.engine.inspect_tokens(prompt or "", int(steps))), status_html("Tokens shown", "ok")
    except (EngineError, ValueError) as exc:
        return "", status_html(str(exc), "error")


class InspectTab:
    def __init__(self, ctx: UiContext):
        self.ctx = ctx

    def build(self) -> InspectTab:
        s = self.ctx.engine.settings
        with gr.Tab("Inspect", id="inspect", elem_id="tab_inspect"):
            gr.Markdown("See inside one generation: how the prompt becomes tokens, the picture at every step, "
                        "where each word looks, and walks through latent space.")
            with gr.Row():
                with gr.Column(scale=2):
                    self.prompt = gr.Textbox(label="Prompt", lines=2, elem_id="inspect_prompt")
                    self.negative = gr.Textbox(label="Negative prompt", lines=1, elem_id="inspect_neg_prompt")
                    with gr.Row():
                        self.seed = gr.Number(label="Seed", value=-1, precision=0)
                        self.steps = gr.Slider(1, 150, value=s.default_steps, step=1, label="Sampling steps")
                        self.sampler = gr.Dropdown(sampler_names(), value=s.default_sampler, label="Sampler")
                        self.cfg = gr.Slider(1, 30, value=s.default_cfg_scale, step=0.5, label="CFG scale")
                    with gr.Row():
                        self.width = gr.Number(label="Width (0: the model's)", value=0, precision=0)
                        self.height = gr.Number(label="Height (0: the model's)", value=0, precision=0)
                        self.decode = gr.Radio(["preview", "full"], value="preview", label="Step pictures",
                                               info="cheap latent preview or full VAE decode")
                    with gr.Accordion("Attention maps", open=True), gr.Row():
                        self.attention = gr.Checkbox(value=True, label="Capture cross-attention")
                        self.layers = gr.CheckboxGroup(list(INSPECT_LAYER_GROUPS),
                                                       value=list(INSPECT_LAYER_GROUPS), label="UNet layers")
                        self.att_steps = gr.Textbox(label="Steps (e.g. 1-5, 8; empty: all)")
                    with gr.Accordion("Latent walk", open=False), gr.Row():
                        self.walk_seed = gr.Number(label="Walk to seed (-1: none)", value=-1, precision=0)
                        self.walk_prompt = gr.Textbox(label="Walk to prompt (empty: none)")
                        self.frames = gr.Slider(2, 64, value=8, step=1, label="Frames")
                    self.save = gr.Checkbox(value=True, label="Save results in outputs/inspect-images")
                with gr.Column(scale=1):
                    self.run_btn = gr.Button("Inspect", variant="primary", elem_id="inspect_run")
                    self.tokens_btn = gr.Button("Show tokens only", elem_id="inspect_tokens")
                    self.status = gr.HTML(elem_id="inspect_status")
            self.tokens = gr.HTML(label="Tokens", elem_id="inspect_token_view")
            with gr.Row():
                self.image = gr.Image(label="Image", type="pil", interactive=False, height=256)
                self.noise = gr.Image(label="Noise level per step", type="pil", interactive=False, height=256)
                self.steps_anim = gr.HTML()
            self.x0 = gr.Gallery(label="Predicted clean image (x0) after each step", columns=10, height="auto")
            self.noisy = gr.Gallery(label="Noisy latents after each step", columns=10, height="auto")
            self.maps = gr.Gallery(label="Where each word looks (share of attention)", columns=8, height="auto")
            with gr.Row():
                self.walk = gr.Gallery(label="Latent walk", columns=8, height="auto", scale=3)
                self.walk_anim = gr.HTML()
            self.records = gr.State([])
            self.selected = gr.State(0)
            self.results = gr.Gallery(label="Results (image, then walk frames): choose one to send or save",
                                      columns=8, height="auto", elem_id="inspect_results")
            with gr.Row(elem_classes="ls-tight ls-gallery-actions"):
                self.send_btn = gr.Button("Send params to txt2img", size="sm", elem_id="inspect_send_to_txt2img")
                self.save_btn = gr.Button("💾 Save", size="sm", elem_id="save_inspect")
            self.download = gr.File(label="Download", visible=False, interactive=False)
        self._wire()
        return self

    def _wire(self) -> None:
        private = {"api_visibility": "private"}
        inputs = [self.prompt, self.negative, self.seed, self.steps, self.sampler, self.cfg, self.width, self.height,
                  self.decode, self.attention, self.layers, self.att_steps, self.walk_seed, self.walk_prompt,
                  self.frames, self.save]
        outputs = [self.image, self.tokens, self.x0, self.noisy, self.steps_anim, self.noise, self.maps, self.walk,
                   self.walk_anim, self.records, self.status]
        self.run_btn.click(lambda *v: run(self.ctx, *v), inputs, outputs, **private).then(
            lambda recs: ([(r["image"], f"seed {r['seed']}") for r in recs or []], 0), self.records,
            [self.results, self.selected], queue=False, **private)
        self.tokens_btn.click(lambda p, n: tokens_only(self.ctx, p, n), [self.prompt, self.steps],
                              [self.tokens, self.status], **private)
        self.results.select(_selected_index, None, self.selected, queue=False, **private)
        self.save_btn.click(_save, [self.records, self.selected], [self.download, self.status], **private)

    def wire_sending(self, txt2img, tabs: gr.Tabs) -> None:
        """Send the chosen result's parameters (its infotext) to txt2img."""
        def send(records, selected):
            rec = chosen(records, selected)
            if rec is None:
                return [*[gr.skip()] * len(txt2img.paste_outputs()), gr.skip()]
            return [*txt2img.paste_values(rec["infotext"]), gr.Tabs(selected="txt2img")]

        txt2img.on_paste(self.send_btn.click, send, [self.records, self.selected], [tabs])


def _selected_index(evt: gr.SelectData) -> int:
    return evt.index if isinstance(evt.index, int) else 0


def _save(records, selected):
    try:
        path = save_selected(records, selected)
    except (ValueError, OSError) as exc:
        return gr.update(visible=False), status_html(str(exc), "warn")
    return gr.update(value=str(path), visible=True), status_html(f"Ready to download: {path.name}", "ok")


def build(ctx: UiContext) -> InspectTab:
    return InspectTab(ctx).build()


__all__ = ["InspectTab", "build", "token_html"]
