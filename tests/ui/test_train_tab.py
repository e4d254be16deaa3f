"""Train tab without a browser: uploads paired with their .txt captions, the form as a TrainingRequest, the run
handler streaming progress, loss plot and samples until the file is saved, and folder fields refused when locked."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from webui.engine import RequestError
from webui.ui import train_tab


def form(files, folder="", **kw):
    values = {"method": "LoRA", "name": "tab", "files": files, "folder": folder, "trigger": "zq",
              "class_prompt": "a thing", "init_text": "*", "num_vectors": 1, "steps": 3, "lr": "", "batch": 2,
              "rank": None, "alpha": None, "resolution": None, "buckets": False, "flip": True, "train_te": True,
              "seed": 7, "sample_every": 3, "sample_prompt": "", "resume": False, "overwrite": False}
    values.update(kw)
    return list(values.values())


def upload(tmp_path) -> list[str]:
    for i in range(2):
        Image.new("RGB", (64, 64), (0, 200, 200)).save(tmp_path / f"p{i}.png")
    (tmp_path / "p1.txt").write_text("a  cyan\nsquare")
    (tmp_path / "notes.md").write_text("ignored")
    return [str(tmp_path / n) for n in ("p0.png", "p1.png", "p1.txt", "notes.md")]


def test_uploads_pair_images_with_their_captions(tmp_path):
    images, captions = train_tab.uploaded(upload(tmp_path))
    assert len(images) == 2 and captions == ["", "a cyan square"]
    req = train_tab.form_request(*form(upload(tmp_path), lr="0.01:2, 0.001"), folders_allowed=True)
    assert (req.method, req.name, req.trigger, req.steps, req.batch_size, req.rank, req.flip, req.seed) == \
        ("lora", "tab", "zq", 3, 2, None, True, 7)
    assert req.learning_rate == "0.01:2, 0.001" and req.captions == ["", "a cyan square"]
    emb = train_tab.form_request(*form([], folder=str(tmp_path), method="Embedding", lr="0.02", num_vectors=3),
                                 folders_allowed=True)
    assert (emb.method, emb.image_dir, emb.learning_rate, emb.num_vectors) == ("embedding", tmp_path, 0.02, 3)
    with pytest.raises(RequestError, match="folders are locked"):
        train_tab.form_request(*form([], folder=str(tmp_path)), folders_allowed=False)


def test_loss_frame_has_the_loss_and_its_running_mean():
    frame = train_tab.loss_frame([(1, 1.0), (2, 3.0)])
    mean = frame[frame.series == "mean of 20"]
    assert list(mean.loss) == [1.0, 2.0] and list(frame[frame.series == "loss"].step) == [1, 2]


def test_the_run_handler_streams_progress_until_the_file_is_saved(engine, tmp_path):
    from webui.ui.context import UiContext

    engine.load_checkpoint()
    ctx = UiContext(engine)
    handler = _run_handler(ctx)
    updates = list(handler(*form(upload(tmp_path))))
    final = updates[-1]
    assert "Saved" in final[0] and "tab.safetensors" in final[0] and "&lt;lora:tab:1&gt;" in final[0]
    assert list(final[1][final[1].series == "loss"].step) == [1, 2, 3]
    assert [caption for _, caption in final[2]] == ["step 3"]
    assert (Path(engine.settings.models_root) / "Lora" / "tab.safetensors").is_file()
    again = list(handler(*form(upload(tmp_path))))
    assert len(again) == 1 and "already exists" in again[0][0]


def _run_handler(ctx):
    """The tab's click handler, taken from the built Blocks (the function wired to the Train button)."""
    import gradio as gr

    with gr.Blocks() as demo:
        train_tab.build(ctx)
    start = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "train_start")
    fn = next(d for d in demo.fns.values() if any(getattr(t, "block", None) is start or t == (start._id, "click")
                                                  for t in getattr(d, "targets", [])))
    return fn.fn
