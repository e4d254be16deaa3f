"""Train tab: teach the loaded checkpoint a new subject or style from a few images, as a LoRA (models/Lora) or a
textual-inversion embedding (embeddings/). The run is a job of the engine's queue; the tab shows its progress and
ETA, the loss as a plot and the sample images as they come, and Interrupt saves the file from the last step."""
from __future__ import annotations

import html
import time
from pathlib import Path

import gradio as gr

from webui.engine import RequestError, TrainingRequest
from webui.ui.context import UiContext

IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
POLL = 1.0  # seconds between updates while a run goes on


def uploaded(files) -> tuple[list, list[str]]:
    """Images of an upload, each with the caption of the `.txt` of the same name uploaded with it (kohya's)."""
    from PIL import Image

    paths = [Path(getattr(f, "name", f)) for f in (files or [])]
    captions = {p.stem: p.read_text(encoding="utf-8", errors="replace").strip() for p in paths
                if p.suffix.lower() == ".txt"}
    images, texts = [], []
    for p in paths:
        if p.suffix.lower() not in IMAGE_TYPES:
            continue
        try:
            with Image.open(p) as im:
                im.load()
                images.append(im.convert("RGB"))
        except OSError as exc:
            raise RequestError(f"Cannot read training image {p.name}: {exc}") from None
        texts.append(" ".join(captions.get(p.stem, "").split()))
    return images, texts


def _opt_int(value) -> int | None:
    return int(value) if value not in (None, "") and int(value) > 0 else None


def form_request(method, name, files, folder, trigger, class_prompt, init_text, num_vectors, steps, lr, batch, rank,
                 alpha, resolution, buckets, flip, train_te, seed, sample_every, sample_prompt, resume, overwrite,
                 folders_allowed: bool) -> TrainingRequest:
    """The form's values as a TrainingRequest; empty numbers take the engine's defaults for the model."""
    images, captions = uploaded(files)
    folder = (folder or "").strip()
    if folder and not folders_allowed:
        raise RequestError("A server folder cannot be used while folders are locked: upload the images instead")
    lr = (str(lr).strip() or None) if lr is not None else None
    if lr is not None:
        try:
            lr = float(lr)
        except ValueError:
            pass  # an A1111 schedule "rate:step, rate"
    return TrainingRequest(
        "lora" if method == "LoRA" else "embedding", name or "", image_dir=Path(folder) if folder else None,
        images=images, captions=captions, trigger=trigger or "", class_prompt=class_prompt or "",
        init_text=init_text or "*", num_vectors=int(num_vectors or 1), steps=_opt_int(steps), learning_rate=lr,
        batch_size=_opt_int(batch), rank=_opt_int(rank), alpha=float(alpha) if alpha else None,
        resolution=_opt_int(resolution), buckets=bool(buckets), flip=bool(flip), train_text_encoder=bool(train_te),
        seed=int(seed if seed not in (None, "") else -1), sample_every=int(sample_every or 0),
        sample_prompt=sample_prompt or "", resume=bool(resume), overwrite=bool(overwrite))


def status_html(job, queue_position: int = 0) -> str:
    st = job.state
    if queue_position > 0:
        return f'<div class="ls-hint">Waiting in the queue (position {queue_position})</div>'
    parts = []
    if st.sampling_steps:
        parts.append(f"Step {st.sampling_step}/{st.sampling_steps} ({100 * st.progress:.0f}%)")
    if st.eta is not None and not job.future.done():
        parts.append(f"ETA {_duration(st.eta)}")
    losses = job.plan.monitor.losses
    if losses:
        recent = [v for _, v in losses[-20:]]
        parts.append(f"loss {sum(recent) / len(recent):.4f}")
    if not parts:
        parts.append("Preparing (caching latents and text embeddings) ...")
    return f'<div class="ls-status-text">{html.escape(" · ".join(parts))}</div>'


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def loss_frame(losses: list[tuple[int, float]]):
    """A frame for the loss plot: the loss of each step and its running mean over 20 steps."""
    import pandas as pd

    rows = []
    window: list[float] = []
    for step, value in losses:
        window = (window + [value])[-20:]
        rows.append({"step": step, "loss": value, "series": "loss"})
        rows.append({"step": step, "loss": sum(window) / len(window), "series": "mean of 20"})
    return pd.DataFrame(rows or [{"step": 0, "loss": 0.0, "series": "loss"}])


def result_html(result) -> str:
    what = "Interrupted: saved" if result.interrupted else "Saved"
    use = f"&lt;lora:{html.escape(result.name)}:1&gt;" if result.method == "lora" else html.escape(result.name)
    return (f'<div class="ls-status-text">{what} {html.escape(str(result.path))} after {result.steps} steps '
            f'({_duration(result.seconds)}). Use it with <code>{use}</code>.</div>')


def build(ctx: UiContext) -> None:
    engine = ctx.engine
    folders_allowed = not (ctx.exposed or engine.settings.lock_folders)
    with gr.Tab("Train", id="train", elem_id="tab_train"), gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=360):
            method = gr.Radio(["LoRA", "Embedding"], value="LoRA", label="Method", elem_id="train_method")
            name = gr.Textbox(label="Name", placeholder="the file name: <lora:name:1> or the embedding's word",
                              elem_id="train_name")
            files = gr.File(label="Images (and .txt captions of the same names)", file_count="multiple",
                            file_types=["image", ".txt"], elem_id="train_files")
            folder = gr.Textbox(label="…or a folder on the server", visible=folders_allowed,
                                elem_id="train_folder")
            with gr.Group(visible=True) as lora_box:
                trigger = gr.Textbox(label="Trigger word", elem_id="train_trigger")
                class_prompt = gr.Textbox(label="Class prompt (caption of images without a .txt)",
                                          elem_id="train_class_prompt")
                with gr.Row():
                    rank = gr.Number(label="Rank (empty: default)", value=None, precision=0,
                                     elem_id="train_rank")
                    alpha = gr.Number(label="Alpha (empty: default)", value=None, elem_id="train_alpha")
                train_te = gr.Checkbox(label="Train the text encoder too", value=True, elem_id="train_te")
            with gr.Group(visible=False) as emb_box:
                init_text = gr.Textbox(label="Initialization text", value="*", elem_id="train_init_text")
                num_vectors = gr.Slider(1, 16, value=1, step=1, label="Vectors per token",
                                        elem_id="train_vectors")
            with gr.Accordion("Settings", open=False):
                with gr.Row():
                    steps = gr.Number(label="Steps (empty: default)", value=None, precision=0,
                                      elem_id="train_steps")
                    lr = gr.Textbox(label="Learning rate (empty: default)", elem_id="train_lr")
                    batch = gr.Number(label="Batch size (empty: default)", value=None, precision=0,
                                      elem_id="train_batch")
                with gr.Row():
                    resolution = gr.Number(label="Resolution (empty: the model's)", value=None, precision=0,
                                           elem_id="train_resolution")
                    seed = gr.Number(label="Seed", value=-1, precision=0, elem_id="train_seed")
                with gr.Row():
                    buckets = gr.Checkbox(label="Aspect-ratio buckets", value=False, elem_id="train_buckets")
                    flip = gr.Checkbox(label="Flip augmentation", value=False, elem_id="train_flip")
                with gr.Row():
                    sample_every = gr.Number(label="Sample image every N steps", value=50, precision=0,
                                             elem_id="train_sample_every")
                    sample_prompt = gr.Textbox(label="Sample prompt (empty: the first caption)",
                                               elem_id="train_sample_prompt")
                with gr.Row():
                    resume = gr.Checkbox(label="Resume the file of this name", value=False,
                                         elem_id="train_resume")
                    overwrite = gr.Checkbox(label="Overwrite", value=False, elem_id="train_overwrite")
            with gr.Row():
                start = gr.Button("Train", variant="primary", elem_id="train_start")
                stop = gr.Button("Interrupt", elem_id="train_interrupt")
        with gr.Column(scale=2):
            status = gr.HTML('<div class="ls-hint">Trains on the loaded checkpoint.</div>',
                             elem_id="train_status")
            plot = gr.LinePlot(loss_frame([]), x="step", y="loss", color="series", title="Loss", height=260,
                               elem_id="train_loss")
            samples = gr.Gallery(label="Samples", columns=4, height=320, elem_id="train_samples",
                                 format="png", interactive=False)
            # inside the tab: a component directly under gr.Tabs shifts the index Gradio's page gives the tabs
            # after it, and the Extensions tab button then opened the extension's tab
            job_id = gr.State(None)

    def switch(choice):
        return gr.Group(visible=choice == "LoRA"), gr.Group(visible=choice != "LoRA")

    def run(*values):
        try:
            request = form_request(*values, folders_allowed=folders_allowed)
            job = engine.submit_training(request)
        except RequestError as exc:
            yield f'<div class="ls-error">{html.escape(str(exc))}</div>', gr.skip(), gr.skip(), None
            return
        ctx.track(job)
        shown = -1
        while not job.future.done():
            time.sleep(POLL)
            mon = job.plan.monitor
            gallery = [(img, f"step {s}") for s, img in mon.samples] if len(mon.samples) != shown else gr.skip()
            shown = len(mon.samples)
            yield status_html(job, engine.queue_position(job)), loss_frame(mon.losses), gallery, job.state.id
        ctx.forget(job)
        try:
            result = job.result()
        except Exception as exc:  # noqa: BLE001 - TrainingError and anything a run hits: said in the tab
            yield f'<div class="ls-error">{html.escape(str(exc))}</div>', gr.skip(), gr.skip(), None
            return
        yield (result_html(result), loss_frame(result.losses),
               [(img, f"step {s}") for s, img in result.samples], None)

    inputs = [method, name, files, folder, trigger, class_prompt, init_text, num_vectors, steps, lr, batch, rank,
              alpha, resolution, buckets, flip, train_te, seed, sample_every, sample_prompt, resume, overwrite]
    method.change(switch, method, [lora_box, emb_box], api_visibility="private")
    start.click(run, inputs, [status, plot, samples, job_id], api_visibility="private")
    stop.click(lambda jid: ctx.interrupt(jid), job_id, status, api_visibility="private")
