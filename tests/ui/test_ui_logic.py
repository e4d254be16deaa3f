"""The UI layer without a browser: server flags, credentials, infotext -> fields, the editor mask, LoRA cards,
settings, the token counter, the generate handler, and the app's routes through FastAPI's test client."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from webui.flags import build_parser
from webui.server import FlagError, credentials_from_args, parse_credentials, security_warnings


def args_for(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


# ---- flags and credentials ---------------------------------------------------------------------------

def test_server_flag_defaults():
    a = args_for()
    assert (a.listen, a.port, a.share, a.auth, a.api, a.api_auth, a.nowebui) == (False, 7860, False, None, False, None,
                                                                                  False)
    a = args_for("--listen", "--port", "9000", "--api", "--auth", "u:p")
    assert a.listen and a.port == 9000 and a.api and a.auth == "u:p"
    assert args_for("generate", "--prompt", "x").command == "generate"


def test_parse_credentials():
    assert parse_credentials("alice:pw1, bob:p:w2") == [("alice", "pw1"), ("bob", "p:w2")]
    assert parse_credentials("# comment\nann:x\n\ncid:y,dee:z\n") == [("ann", "x"), ("cid", "y"), ("dee", "z")]
    assert parse_credentials(None) == []
    with pytest.raises(FlagError):
        parse_credentials("nopassword")
    with pytest.raises(FlagError):
        parse_credentials(":pw")


def test_auth_protects_ui_and_api_api_auth_only_api(tmp_path):
    f = tmp_path / "auth.txt"
    f.write_text("carol:c1\n", encoding="utf-8")
    ui, api = credentials_from_args(args_for("--auth", "a:1", "--auth-file", str(f)))
    assert ui == [("a", "1"), ("carol", "c1")] and api == ui
    ui, api = credentials_from_args(args_for("--api-auth", "bot:2"))
    assert ui == [] and api == [("bot", "2")]
    ui, api = credentials_from_args(args_for("--auth", "a:1", "--api-auth", "bot:2"))
    assert ui == [("a", "1")] and api == [("bot", "2")]
    with pytest.raises(FlagError):
        credentials_from_args(args_for("--auth-file", str(tmp_path / "missing.txt")))


def test_listen_or_share_without_auth_warns():
    assert security_warnings(args_for(), [], []) == []
    w = security_warnings(args_for("--listen"), [], [])
    assert len(w) == 1 and "--listen without --auth" in w[0]
    assert security_warnings(args_for("--listen", "--auth", "a:b"), [("a", "b")], [("a", "b")]) == []
    w = security_warnings(args_for("--share", "--api"), [], [])
    assert any("--share" in x for x in w) and any("REST API" in x for x in w)


# ---- infotext -> fields --------------------------------------------------------------------------------

def test_fields_from_infotext():
    from webui.ui.params import fields_from_infotext, parameter_rows

    text = ("a cat\nNegative prompt: dog\nSteps: 13, Sampler: DPM++ 2M Karras, CFG scale: 5.5, Seed: 42, "
            "Size: 128x64, Denoising strength: 0.4, Clip skip: 2, Model: x")
    f = fields_from_infotext(text)
    assert f["prompt"] == "a cat" and f["negative_prompt"] == "dog"
    assert (f["steps"], f["seed"], f["width"], f["height"], f["clip_skip"]) == (13, 42, 128, 64, 2)
    assert (f["sampler_name"], f["scheduler"]) == ("DPM++ 2M", "Karras")
    assert f["cfg_scale"] == 5.5 and f["denoising_strength"] == 0.4 and f["subseed_strength"] == 0.0
    assert fields_from_infotext("") == {}
    assert "sampler_name" not in fields_from_infotext("x\nSteps: 3, Sampler: Nope, Seed: 1")
    rows = dict(map(tuple, parameter_rows(text)))
    assert rows["Size"] == "128x64" and rows["Sampler"] == "DPM++ 2M Karras"


def test_editor_value_to_init_and_mask():
    from webui.ui.generation import editor_to_init

    bg = Image.new("RGBA", (64, 64), (10, 20, 30, 255))
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[8:24, 16:32] = (255, 255, 255, 180)
    init, mask = editor_to_init({"background": bg, "layers": [Image.fromarray(layer)], "composite": bg})
    assert init.mode == "RGB" and init.size == (64, 64)
    m = np.asarray(mask)
    assert mask.mode == "L" and m[10, 20] == 255 and m[40, 40] == 0 and m.sum() == 255 * 16 * 16
    init, mask = editor_to_init({"background": bg, "layers": [Image.new("RGBA", (64, 64))], "composite": bg})
    assert mask is None
    assert editor_to_init(None) == (None, None)
    assert editor_to_init({"background": None, "layers": [], "composite": None}) == (None, None)


# ---- LoRA cards ----------------------------------------------------------------------------------------

def test_lora_cards_from_the_engine_library(engine, data_dir):
    import torch
    from safetensors.torch import save_file

    from webui.ui.lora_tab import details_html, filter_cards, insert_tag, list_cards, placeholder

    d = Path(data_dir) / "models" / "Lora"
    (d / "sub").mkdir(parents=True)
    save_file({"a": torch.zeros(1)}, str(d / "inkStyle.safetensors"), metadata={
        "ss_output_name": "ink", "ss_base_model_version": "sdxl_base_v1-0",
        "ss_tag_frequency": '{"a": {"ink": 5, "brush": 9}, "b": {"ink": 6}}'})
    Image.new("RGB", (8, 8)).save(d / "inkStyle.preview.png")
    save_file({"a": torch.zeros(1)}, str(d / "sub" / "plain.safetensors"))
    cards = {c.name: c for c in list_cards(engine, refresh=True)}
    assert set(cards) == {"inkStyle", "plain"}
    ink = cards["inkStyle"]
    assert ink.alias == "ink" and ink.base_model == "SDXL" and ink.trigger_words == ["ink", "brush"]
    assert ink.preview == d / "inkStyle.preview.png" and ink.tag == "<lora:inkStyle:1>"
    assert cards["plain"].preview is None and cards["plain"].base_model == "unknown"
    assert [c.name for c in filter_cards(list(cards.values()), "brush")] == ["inkStyle"]
    assert "ink, brush" in details_html(ink)
    assert insert_tag("a cat", "<lora:x:1>") == "a cat <lora:x:1>"
    assert insert_tag("a cat <lora:x:1>", "<lora:x:1>") == "a cat <lora:x:1>"
    assert insert_tag("", "<lora:x:1>") == "<lora:x:1>"
    assert placeholder("ink style").size == (192, 192)


# ---- with an engine ------------------------------------------------------------------------------------

def test_token_counter_without_and_with_model(engine):
    from webui.ui.tokens import TokenCounter

    t = TokenCounter(engine)
    assert t.label("") == "0/75"
    assert t.label("a cat") == "2/75"
    assert t.label("a cat <lora:detail:0.5>") == "2/75"
    assert t.label("a cat, " * 30) == "90/150"
    engine.load_checkpoint("tiny-sd1")
    assert t.label("a cat") == "2/75"


def test_settings_saved_with_backup_and_applied(engine):
    from webui.ui.context import UiContext
    from webui.ui.settings_tab import apply_settings

    ctx = UiContext(engine)
    values = dict(default_sampler="DDIM", default_scheduler="Karras", default_steps=12, default_cfg_scale=4.5,
                  max_image_side=1024, save_images=True, outputs_dir="", checkpoint_cache_size=3, queue_size=7)
    msg, kind = apply_settings(ctx, values)
    assert kind == "ok" and "Restart to apply: queue_size" in msg
    path = engine.settings.settings_file
    assert "default_steps: 12" in path.read_text()
    assert engine.settings.default_sampler == "DDIM" and engine.settings.queue_size == 32
    assert engine.models.cache_size == 3 and engine.request_defaults().steps == 12
    msg, kind = apply_settings(ctx, dict(values, default_steps=13))
    assert kind == "ok" and path.with_name("config.yaml.bak").exists()
    msg, kind = apply_settings(ctx, dict(values, checkpoint_cache_size=0))
    assert kind == "error" and "at least 1" in msg


def test_interrupt_cancels_a_waiting_job(engine):
    import threading

    from webui.ui.context import UiContext

    ctx = UiContext(engine)
    gate = threading.Event()
    blocker = engine.queue.submit("block", lambda st: gate.wait(10))
    import time

    while engine.queue.position(blocker) != 0:  # the worker has picked it up
        time.sleep(0.01)
    job = engine.submit(engine.request_defaults(prompt="x", steps=2, checkpoint="tiny-sd1"))
    ctx.track(job)
    assert engine.queue.position(job) == 1
    assert ctx.interrupt(job.state.id) == "Cancelled the waiting job"
    gate.set()
    blocker.result(10)
    assert job.future.cancelled()


def test_generate_handler_reports_queue_full_and_bad_input(engine):
    import gradio as gr

    from webui.engine import EngineAPI, QueueFullError
    from webui.ui.context import UiContext
    from webui.ui.generation import GenerationPanel

    ctx = UiContext(engine)
    with gr.Blocks():
        panel = GenerationPanel(ctx, "txt2img").build()
        i2i = GenerationPanel(ctx, "img2img").build()

    def values(p, **over):
        base = {p.prompt: "a cat", p.negative: "", p.styles: [], p.sampler: "Euler a", p.scheduler: "Automatic",
                p.steps: 2, p.width: 64, p.height: 64, p.n_iter: 1, p.batch_size: 1, p.cfg: 7.0, p.seed: 5,
                p.subseed: -1, p.subseed_strength: 0.0, p.clip_skip: 1}
        if p.mode == "img2img":
            base.update({p.init_editor: None, p.resize_mode: 0, p.denoising: 0.5, p.mask_blur: 4, p.mask_mode: 0,
                         p.masked_content: 1, p.inpaint_area: 0, p.padding: 32})
        base.update({getattr(p, k): v for k, v in over.items()})
        return base

    out = list(panel.run(values(panel, steps=0)))
    assert "steps must be between" in out[-1][panel.status]
    out = list(i2i.run(values(i2i)))
    assert "Upload an image first" in out[-1][i2i.status]

    class FullQueue:
        """The real engine, except that its queue is full: the UI takes any EngineAPI, no monkeypatching."""

        def __init__(self, engine):
            self._engine = engine

        def __getattr__(self, name):
            return getattr(self._engine, name)

        def submit(self, request):
            raise QueueFullError("The queue is full (2 jobs waiting); try again later")

    assert isinstance(engine, EngineAPI) and isinstance(FullQueue(engine), EngineAPI)
    with gr.Blocks():
        panel = GenerationPanel(UiContext(FullQueue(engine)), "txt2img").build()
    out = list(panel.run(values(panel)))
    assert "The queue is full (2 jobs waiting); try again later" in out[-1][panel.status]
    assert "ls-error" in out[-1][panel.status]


def test_generate_handler_runs_a_job(engine):
    import gradio as gr

    from webui.engine.image_files import read_infotext
    from webui.ui.context import UiContext
    from webui.ui.generation import GenerationPanel

    ctx = UiContext(engine)
    with gr.Blocks():
        p = GenerationPanel(ctx, "txt2img").build()
    data = {p.prompt: "a cat", p.negative: "dog", p.styles: [], p.sampler: "Euler", p.scheduler: "Automatic",
            p.steps: 2, p.width: 64, p.height: 64, p.n_iter: 2, p.batch_size: 1, p.cfg: 6.0, p.seed: 77,
            p.subseed: -1, p.subseed_strength: 0.0, p.clip_skip: 1}
    out = list(p.run(data))
    last = out[-1]
    assert "2 images in" in last[p.status] and "grid first" in last[p.status]
    records = last[p.records]
    # the batch's grid first (A1111's return_grid): it carries its first image's seed and infotext
    assert [(r["seed"], bool(r.get("grid"))) for r in records] == [(77, True), (77, False), (78, False)]
    assert "txt2img-grids" in records[0]["path"] and "txt2img-images" in records[1]["path"]
    assert [label for _, label in last[p.gallery]["value"]] == ["Grid", "Seed 77", "Seed 78"]
    assert read_infotext(records[1]["path"]) == records[1]["infotext"] == records[0]["infotext"] == last[p.infotext]
    assert "Sampler: Euler," in records[0]["infotext"]


def test_whole_ui_builds_and_shows_the_settings_notice(engine):
    from webui.ui import UiContext, build_ui

    demo = build_ui(UiContext(engine, notice="Settings file config.yaml could not be read; moved aside"))
    config = str(demo.get_config_file())
    assert "could not be read; moved aside" in config
    for elem in ("txt2img_generate", "img2img_image", "styles_table", "wildcards_files", "lora_gallery",
                 "models_table", "pnginfo_image", "history_gallery", "settings_save", "checkpoint_dropdown"):
        assert elem in config, elem


def test_every_child_of_a_tab_bar_is_a_tab(engine):
    """Gradio's page numbers a tab by its place among all children of its gr.Tabs: one other component there (a
    gr.State made after a `with gr.Tab` ended) shifts the tabs after it, and one tab button then shows another's
    content (the Extensions button opened the Greeter tab)."""
    from webui.ui import UiContext, build_ui

    config = build_ui(UiContext(engine)).get_config_file()
    types = {c["id"]: c["type"] for c in config["components"]}
    strays = []

    def walk(node):
        for child in node.get("children", []):
            if types.get(node["id"]) == "tabs" and types[child["id"]] != "tabitem":
                strays.append((node["id"], types[child["id"]]))
            walk(child)

    walk(config["layout"])
    assert sum(t == "tabs" for t in types.values()) >= 2
    assert strays == []


def test_app_routes_auth_and_file_access(engine, data_dir):
    """The whole app through FastAPI's test client: with --auth the UI and the API refuse strangers; with the log-in
    both answer; config.yaml and model files are not served."""
    from fastapi.testclient import TestClient

    from webui.server import create_app

    args = args_for("--api", "--auth", "ann:secret")
    ui, api = credentials_from_args(args)
    app, ctx = create_app(args, engine, None, ui, api)
    (Path(data_dir) / "config.yaml").write_text("queue_size: 5\n")
    with TestClient(app) as client:
        assert client.get("/sdapi/v1/sd-models").status_code == 401
        assert client.get("/sdapi/v1/sd-models", auth=("ann", "secret")).status_code == 200
        assert client.get("/config").status_code == 401
        r = client.post("/login", data={"username": "ann", "password": "secret"})
        assert r.status_code == 200
        assert client.get("/config").status_code == 200
        for secret in (Path(data_dir) / "config.yaml", Path(data_dir) / "models" / "Stable-diffusion" /
                       "tiny-sd1.safetensors"):
            r = client.get(f"/gradio_api/file={secret}")
            assert r.status_code in (403, 404), secret


def test_extension_tab_routes_and_settings(engine, data_dir, tmp_path):
    """An extension's tab is built inside the UI, its route is served at /ext/<name>/... behind the API log-in,
    and its settings are edited with typed values."""
    from fastapi.testclient import TestClient

    from webui.extensions import ExtensionManager
    from webui.server import create_app
    from webui.ui.extensions_tab import parse_value, rows, setting_rows

    folder = tmp_path / "extensions"
    (folder / "hello").mkdir(parents=True)
    (folder / "hello" / "extension.py").write_text(
        "def register(ext):\n"
        "    ext.setting('times', 2, 'How many')\n"
        "    ext.setting('loud', False, 'Shout')\n"
        "    ext.api_route('/hi', lambda: {'hi': ext.get('times')})\n"
        "    def tab(engine):\n"
        "        import gradio as gr\n"
        "        gr.Markdown('hello from an extension', elem_id='hello_ext_md')\n"
        "    ext.ui_tab('Hello', tab)\n", encoding="utf-8")
    (folder / "broken").mkdir()
    (folder / "broken" / "extension.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    manager = ExtensionManager(folder, tmp_path / "ext-state.json")
    manager.discover()
    assert [r[:2] for r in rows(manager)] == [["broken", "error"], ["hello", "enabled"]]
    assert setting_rows(manager.extensions["hello"]) == [["times", "How many", "2"], ["loud", "Shout", "false"]]
    assert parse_value("3", 2) == 3 and parse_value("on", False) is True and parse_value("0.5", 1.0) == 0.5
    with pytest.raises(ValueError):
        parse_value("maybe", True)

    args = args_for("--api-auth", "bot:pw")
    ui, api = credentials_from_args(args)
    app, ctx = create_app(args, engine, None, ui, api, manager)
    from webui.ui import UiContext, build_ui

    config = str(build_ui(UiContext(engine, extensions=manager)).get_config_file())
    assert "hello from an extension" in config and "extensions_table" in config
    with TestClient(app) as client:
        assert client.get("/ext/hello/hi").status_code == 401
        assert client.get("/ext/hello/hi", auth=("bot", "pw")).json() == {"hi": 2}


def test_hires_fix_and_tiling_from_the_tab_and_back_from_an_infotext(engine):
    import gradio as gr

    from webui.ui.context import UiContext
    from webui.ui.generation import GenerationPanel
    from webui.ui.params import fields_from_infotext

    with gr.Blocks():
        p = GenerationPanel(UiContext(engine), "txt2img").build()
    data = {p.prompt: "a cat", p.negative: "", p.styles: [], p.sampler: "Euler", p.scheduler: "Automatic",
            p.steps: 2, p.width: 64, p.height: 64, p.n_iter: 1, p.batch_size: 1, p.cfg: 7.0, p.seed: 3,
            p.subseed: -1, p.subseed_strength: 0.0, p.clip_skip: 1, p.tiling: True, p.enable_hr: True,
            p.denoising: 0.45, **{comp: value for comp, value in zip(p.hires.values(), (
                "Latent (nearest)", 3, 1.5, 0, 0, "Use same sampler", "Use same scheduler", "", "", "Use same checkpoint"))}}
    result = engine.generate(p.make_request(data))
    assert result.images[0].size == (96, 96)
    back = fields_from_infotext(result.infotexts[0])
    assert back["enable_hr"] is True and back["tiling"] is True and back["hr_scale"] == 1.5
    assert back["hr_upscaler"] == "Latent (nearest)" and back["hr_second_pass_steps"] == 3
    assert back["denoising_strength"] == 0.45
    assert set(back) - {"hr_resize_x", "hr_resize_y"} <= set(p.fields)  # every value has a field to go to
    plain = fields_from_infotext("a dog\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64")
    assert plain["enable_hr"] is False and plain["tiling"] is False and plain["restore_faces"] is False
    faces = fields_from_infotext("a dog\nSteps: 2, Seed: 1, Size: 64x64, Face restoration: CodeFormer")
    assert faces["restore_faces"] is True and "restore_faces" in p.fields
    with pytest.raises(Exception, match="models/GFPGAN or models/Codeformer"):  # no model: a message, not a no-op
        engine.submit(p.make_request({**data, p.restore_faces: True}))


def test_extras_tab_upscales_saves_and_refuses_clearly(engine, tmp_path):
    from webui.engine.image_files import read_infotext
    from webui.ui.context import UiContext
    from webui.ui.extras_tab import SOURCES, run

    ctx = UiContext(engine)
    src = Image.new("RGB", (32, 24), (10, 200, 30))
    src.info["parameters"] = "a cat\nSteps: 2, Sampler: Euler, Seed: 3"
    controls = dict(scale_tab=0, by=2, to_w=64, to_h=64, crop=True, up1="Lanczos", up2="None", up2_vis=0,
                    gfpgan=0, codeformer=0, codeformer_weight=0)
    images, message = run(ctx, SOURCES[0], src, None, "", *controls.values())
    assert images[0].size == (64, 48) and "ls-ok" in message
    saved = sorted((engine.settings.outputs_path / "extras-images").rglob("*.png"))
    assert len(saved) == 1 and Image.open(saved[0]).size == (64, 48)
    assert read_infotext(saved[0]) == ("a cat\nSteps: 2, Sampler: Euler, Seed: 3, Postprocess upscale by: 2, "
                                       "Postprocess upscaler: Lanczos")
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("b.png", "a.png"):
        src.save(folder / name)
    (folder / "notes.txt").write_text("x")
    images, message = run(ctx, SOURCES[2], None, None, str(folder), *dict(controls, scale_tab=1).values())
    assert [im.size for im in images] == [(64, 64), (64, 64)] and "2 image(s)" in message
    assert sorted(p.name.split("-", 1)[1] for p in (engine.settings.outputs_path / "extras-images").rglob("*.png")) \
        == ["a.png", "b.png", "extras.png"]  # each keeps its input's name
    _, message = run(ctx, SOURCES[0], src, None, "", *dict(controls, gfpgan=0.5).values())
    assert "ls-error" in message and "models/GFPGAN" in message
    engine.settings.lock_folders = True
    try:
        _, message = run(ctx, SOURCES[2], None, None, str(folder), *controls.values())
        assert "ls-error" in message and "--listen" in message
    finally:
        engine.settings.lock_folders = False


def test_an_interrupted_job_keeps_the_previous_result_or_shows_its_partial_image(engine):
    import gradio as gr

    from webui.engine.requests import GenerationResult
    from webui.ui.context import UiContext
    from webui.ui.generation import GenerationPanel

    with gr.Blocks():
        p = GenerationPanel(UiContext(engine), "txt2img").build()
    empty = p._finish(GenerationResult(interrupted=True), 0.5)
    assert p.records not in empty and p.infotext not in empty  # the last result stays on screen
    assert empty[p.gallery]["__type__"] == "update" and "value" not in empty[p.gallery]
    assert "Interrupted: kept 0 images" in empty[p.status]
    partial = GenerationResult(images=[Image.new("RGB", (8, 8))], seeds=[4], interrupted=True,
                               infotexts=["a cat\nSteps: 20, Seed: 4, Interrupted: step 7 of 20"])
    shown = p._finish(partial, 0.5)
    assert len(shown[p.records]) == 1 and "(1 as far as it got)" in shown[p.status]
