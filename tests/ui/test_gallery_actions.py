"""Issue 25 without a browser: the gallery actions (records with a grid first, open folder, save, zip), limits from
settings refused with a message, where each setting comes from, the console's progress bar, filters and start-up
line."""
from __future__ import annotations

import io
import logging
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from webui.engine.image_files import read_infotext, save_image_with_infotext
from webui.ui.gallery_actions import (chosen, open_folder, output_folder, record_label, result_records, save_selected,
                                      swap_sizes, zip_records)


def _image(color) -> Image.Image:
    return Image.new("RGB", (16, 16), color)


def _result(tmp_path: Path, saved: bool = True, grid_saved: bool = True):
    """A GenerationResult's shape as the engine makes it for 2 images with a batch grid first."""
    infos = ["a cat\nSteps: 2, Seed: 7", "a cat\nSteps: 2, Seed: 8"]
    images = [_image((200, 0, 0)), _image((0, 200, 0))]
    paths = []
    for sub in ("txt2img-images", "txt2img-grids"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    if saved:
        for i, (im, info) in enumerate(zip(images, infos)):
            paths.append(save_image_with_infotext(im, tmp_path / "txt2img-images" / f"0000{i}-{7 + i}.png", info))
    grid = _image((0, 0, 200))
    if grid_saved and saved:
        paths.insert(0, save_image_with_infotext(grid, tmp_path / "txt2img-grids" / "grid-0000.png", infos[0]))
    return SimpleNamespace(images=[grid, *images], infotexts=[infos[0], *infos], seeds=[7, 7, 8],
                           subseeds=[7, 7, 8], paths=paths, index_of_first_image=1)


def test_records_put_the_grid_first_with_its_first_images_seed(tmp_path):
    recs = result_records(_result(tmp_path))
    assert [(r["seed"], bool(r.get("grid"))) for r in recs] == [(7, True), (7, False), (8, False)]
    assert [Path(r["path"]).name for r in recs] == ["grid-0000.png", "00000-7.png", "00001-8.png"]
    assert [record_label(r) for r in recs] == ["Grid", "Seed 7", "Seed 8"]
    # the grid not saved (grid_save off) but the images saved: the paths stay with their images
    recs = result_records(_result(tmp_path / "b", grid_saved=False))
    assert recs[0]["path"] is None and recs[0]["image"].getpixel((0, 0)) == (0, 0, 200)
    assert [Path(r["path"]).name for r in recs[1:]] == ["00000-7.png", "00001-8.png"]
    # nothing saved: every record holds its image, with its infotext for the PNG gradio writes
    recs = result_records(_result(tmp_path / "c", saved=False))
    assert all(r["path"] is None for r in recs)
    assert recs[2]["image"].info["parameters"] == "a cat\nSteps: 2, Seed: 8"
    assert chosen(recs, 2) is recs[2] and chosen(recs, 99) is recs[0] and chosen([], 0) is None


def test_zip_holds_every_image_with_its_infotext(tmp_path):
    recs = result_records(_result(tmp_path / "out"))
    path = zip_records(recs, "txt2img", workdir=tmp_path / "dl")
    assert path.suffix == ".zip" and path.name.startswith("txt2img-")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names == ["grid-0000.png", "grid-0000.txt", "00000-7.png", "00000-7.txt", "00001-8.png", "00001-8.txt"]
        for rec in recs:
            name = Path(rec["path"]).name
            assert zf.read(name) == Path(rec["path"]).read_bytes()  # the saved file itself, infotext inside
            assert zf.read(name[:-4] + ".txt").decode() == rec["infotext"]
    # images that were not saved are written into the zip with their infotext in the PNG
    unsaved = result_records(_result(tmp_path / "x", saved=False))
    with zipfile.ZipFile(zip_records(unsaved, "img2img", workdir=tmp_path / "dl")) as zf:
        assert zf.namelist() == ["grid-0000.png", "grid-0000.txt", "00001-7.png", "00001-7.txt", "00002-8.png",
                                 "00002-8.txt"]
        png = Image.open(io.BytesIO(zf.read("00002-8.png")))
        assert png.text["parameters"] == "a cat\nSteps: 2, Seed: 8"
        assert png.convert("RGB").getpixel((0, 0)) == (0, 200, 0)
    with pytest.raises(ValueError, match="generate first"):
        zip_records([], "txt2img", workdir=tmp_path / "dl")


def test_save_gives_the_selected_image_as_a_file(tmp_path):
    recs = result_records(_result(tmp_path / "out"))
    assert save_selected(recs, 2, workdir=tmp_path / "dl") == Path(recs[2]["path"])
    unsaved = result_records(_result(tmp_path / "x", saved=False))
    path = save_selected(unsaved, 1, workdir=tmp_path / "dl")
    assert path.parent.parent == tmp_path / "dl" and read_infotext(path) == "a cat\nSteps: 2, Seed: 7"
    with pytest.raises(ValueError, match="Nothing to save"):
        save_selected(None, 0, workdir=tmp_path / "dl")


def test_open_folder_only_for_a_browser_on_this_machine(tmp_path):
    recs = result_records(_result(tmp_path / "out"))
    opened = []
    settings = SimpleNamespace(outputs_path=tmp_path / "out")
    local = SimpleNamespace(local=True, engine=SimpleNamespace(settings=settings))
    msg = open_folder(local, "txt2img", recs, 2, "127.0.0.1", opened.append)
    assert opened == [tmp_path / "out" / "txt2img-images"] and "Opened" in msg and "ls-ok" in msg
    assert output_folder(recs, 0, settings.outputs_path, "txt2img") == tmp_path / "out" / "txt2img-grids"
    # --listen / --share: refused, nothing opened
    exposed = SimpleNamespace(local=False, engine=local.engine)
    msg = open_folder(exposed, "txt2img", recs, 2, "127.0.0.1", opened.append)
    assert "--listen" in msg and "ls-error" in msg and len(opened) == 1
    # a browser on another machine (e.g. through a tunnel): refused
    msg = open_folder(local, "txt2img", recs, 2, "192.168.1.20", opened.append)
    assert "192.168.1.20" in msg and len(opened) == 1
    # nothing generated in this folder yet
    msg = open_folder(local, "img2img", [], 0, "::1", opened.append)
    assert "Nothing saved yet" in msg and len(opened) == 1

    def broken(folder):
        raise OSError("xdg-open was not found, so no file manager can be opened")
    assert "xdg-open was not found" in open_folder(local, "txt2img", recs, 0, "localhost", broken)


def test_swap_sizes():
    assert swap_sizes(768, 512) == (512, 768)


# ---- limits -------------------------------------------------------------------------------------------------

def test_limits_name_the_setting_and_nothing_runs(engine):
    import gradio as gr

    from webui.ui.context import UiContext
    from webui.ui.generation import GenerationPanel
    from webui.ui.limits import check_limits

    with gr.Blocks():
        p = GenerationPanel(UiContext(engine), "txt2img").build()
    assert (p.steps.maximum, p.width.maximum, p.n_iter.maximum, p.batch_size.maximum) == (150, 2048, 64, 8)
    assert p.steps.preprocess(200) == 200  # passed on as typed, not an error toast and not clamped
    data = {p.prompt: "a cat", p.negative: "", p.styles: [], p.sampler: "Euler", p.scheduler: "Automatic",
            p.steps: 200, p.width: 64, p.height: 64, p.n_iter: 1, p.batch_size: 1, p.cfg: 7.0, p.seed: 5,
            p.subseed: -1, p.subseed_strength: 0.0, p.clip_skip: 1}
    before = engine.queue_length(), engine.current_job()
    out = list(p.run(data))
    assert len(out) == 1 and "ls-error" in out[0][p.status]
    assert "Sampling steps 200 is above the maximum of 150 (setting max_steps" in out[0][p.status]
    assert (engine.queue_length(), engine.current_job()) == before
    out = list(p.run({**data, p.steps: 2, p.n_iter: 20, p.batch_size: 8}))
    assert "20 x 8 = 160 images is above the maximum of 64 (setting max_batch_images" in out[-1][p.status]
    out = list(p.run({**data, p.steps: 2, p.width: 4096}))
    assert "Width 4096 is above the maximum of 2048 (setting max_image_side" in out[-1][p.status]
    # raised in the settings: the same request goes through
    engine.update_settings({"max_steps": 300})
    check_limits(engine.settings, {"steps": 200, "width": 64, "height": 64})
    with pytest.raises(ValueError, match="max_steps"):
        check_limits(engine.settings, {"steps": 301})


def test_limit_slider_survives_a_per_session_update():
    """Gradio rebuilds a component for a session from its constructor arguments when a handler updates it: the
    rebuilt slider still passes values above its maximum on, and keeps its setting."""
    import gradio as gr

    from webui.settings import Settings
    from webui.ui.limits import LIMIT_CLASS, limit_slider, refresh_maxima

    with gr.Blocks():
        s = limit_slider(1, Settings(), "max_steps", value=20, label="Sampling steps", elem_id="x_steps")
    assert (s.maximum, s.setting, s.label, s.elem_id, s.value) == (150, "max_steps", "Sampling steps", "x_steps", 20)
    kwargs = {**s.constructor_args, "maximum": 300, "render": False}
    kwargs.pop("value", None)
    copy = s.__class__(**kwargs)
    assert (copy.maximum, copy.label, copy.preprocess(999)) == (300, "Sampling steps", 999)
    assert copy.elem_classes.count(LIMIT_CLASS) == 1 and copy.get_block_name() == "slider"
    config = copy.get_config()
    assert (config["label"], config["elem_id"], config["maximum"]) == ("Sampling steps", "x_steps", 300)
    assert refresh_maxima([s], Settings(max_steps=80))[0]["maximum"] == 80


# ---- where settings come from -------------------------------------------------------------------------------

def test_settings_say_where_each_value_comes_from(tmp_path):
    from webui.flags import build_parser, settings_from_args
    from webui.settings import updated_settings
    from webui.ui.settings_tab import origin_rows, origins_html

    (tmp_path / "config.yaml").write_text("max_steps: 80\ndefault_steps: 30\nqueue_size: 5\n", encoding="utf-8")
    args = build_parser().parse_args(["--data-dir", str(tmp_path), "--checkpoint-cache", "3", "--medvram"])
    s, notice = settings_from_args(args)
    assert notice is None and (s.max_steps, s.checkpoint_cache_size, s.medvram) == (80, 3, True)
    assert [s.origin(k) for k in ("max_steps", "default_steps", "queue_size")] == ["config.yaml"] * 3
    assert [s.origin(k) for k in ("checkpoint_cache_size", "medvram", "data_dir")] == ["command line"] * 3
    assert [s.origin(k) for k in ("max_image_side", "device", "default_sampler")] == ["default"] * 3
    rows = {name: (value, origin, default) for name, value, origin, default in origin_rows(s)}
    assert rows["max_steps"] == ("80", "config.yaml", "150") and rows["medvram"] == ("True", "command line", "False")
    assert "<td>command line</td>" in origins_html(s)
    # a change from the Settings tab or the API is saved in config.yaml and says so; restart-only ones keep theirs
    s2, restart = updated_settings(s, {"max_image_side": 1024, "queue_size": 9})
    assert restart == ["queue_size"] and s2.origin("max_image_side") == "config.yaml"
    assert s2.queue_size == 5 and s2.origin("checkpoint_cache_size") == "command line"


# ---- the console ----------------------------------------------------------------------------------------------

def test_quiet_filters_drop_library_noise_and_keep_real_warnings():
    from webui.console import quiet_library_noise

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    sched = logging.getLogger("diffusers.schedulers.scheduling_dpmsolver_singlestep")
    models = logging.getLogger("diffusers.models.modeling_utils")
    handler = Keep()
    for lg in (sched, models):
        lg.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        undo = quiet_library_noise()
        try:
            warnings.warn("The configuration file of the unet has set the default `sample_size` to smaller than 64 "
                          "which seems highly unlikely.", FutureWarning)
            warnings.warn("Should have ta>=t0 but got ta=0.0291675366461277 and t0=0.029168.", UserWarning)
            warnings.warn("Should have tb<=t1 but got tb=14.614643096923828 and t1=14.614642.", UserWarning)
            warnings.warn("The `foo` argument is deprecated and will be removed", FutureWarning)  # a real one
            warnings.warn("CUDA initialization: out of memory", UserWarning)  # a real one
            sched.warning("Changing scheduler {self.config} to have `lower_order_final` set to True to handle "
                          "uneven amount of inference steps.")
            models.warning("There are modules in UNet2DConditionModel that should be kept in float32: [].")
            models.warning("There are modules in UNet2DConditionModel that should be kept in float32: ['norm'].")
            sched.warning("a real scheduler problem")
        finally:
            undo()
            for lg in (sched, models):
                lg.removeHandler(handler)
    assert [str(w.message) for w in caught] == ["The `foo` argument is deprecated and will be removed",
                                                "CUDA initialization: out of memory"]
    assert [r.getMessage() for r in records] == [
        "There are modules in UNet2DConditionModel that should be kept in float32: ['norm'].",
        "a real scheduler problem"]


def test_console_progress_one_bar_per_job(engine):
    from webui.console import ConsoleProgress

    out = io.StringIO()
    progress = ConsoleProgress(engine, file=out).install()
    for seed in (1, 2):
        engine.generate(engine.request_defaults(prompt="a cat", steps=3, n_iter=2, seed=seed, sampler_name="Euler",
                                                save_images=False))
    assert progress.bars == 2
    lines = [line for line in out.getvalue().split("\n") if line.strip()]
    assert len(lines) == 2  # tqdm redraws its line with \r: one line per job
    for line in lines:
        last = line.split("\r")[-1]
        assert last.startswith("Total progress: 100%") and "6/6" in last


def test_startup_line_names_url_model_device_and_attention(engine):
    from webui.console import startup_line

    line = startup_line(engine, "http://localhost:7860", api=True)
    assert line.startswith("Latent Studio Web UI on http://localhost:7860 · model: tiny-sd1.safetensors [")
    assert "· device: cpu float32 · attention: sdpa" in line and "REST API: http://localhost:7860/sdapi/v1" in line
    assert "\n" not in line


def test_downloads_go_to_a_private_folder_never_through_a_planted_symlink(tmp_path, monkeypatch):
    import os
    import stat
    import tempfile

    import pytest

    from webui.ui import gallery_actions

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    folder = gallery_actions.downloads_dir()
    base = folder.parent
    assert base.name.endswith(str(os.getuid())) and stat.S_IMODE(os.lstat(base).st_mode) == 0o700
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep")
    os.utime(victim / "precious.txt", (0, 0))  # older than the cleanup's hour
    base.rename(tmp_path / "moved")
    base.symlink_to(victim)  # another user's trap at the shared name
    with pytest.raises(OSError, match="not a private folder"):
        gallery_actions.downloads_dir()
    assert (victim / "precious.txt").read_text() == "keep"


def test_cmd_flags_never_echo_tokens():
    from webui.flags import build_parser, cmd_flags

    args = build_parser().parse_args(["--ngrok", "SECRET-TOKEN", "--ngrok-options", '{"authtoken": "SECRET"}'])
    assert "SECRET" not in str(cmd_flags(args))
