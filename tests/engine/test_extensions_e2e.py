"""The shipped example extensions and every hook kind, end to end through the engine."""
import shutil
import textwrap
from pathlib import Path

import numpy as np

from webui.engine.facade import Engine
from webui.engine.image_files import read_infotext
from webui.engine.infotext import parse_infotext
from webui.engine.requests import GenerationRequest
from webui.extensions import load_extensions
from webui.settings import Settings

REPO_EXTENSIONS = Path(__file__).resolve().parents[2] / "extensions"


def req(**kw):
    return GenerationRequest(**{"prompt": "a red circle", "steps": 3, "width": 64, "height": 64, "seed": 4,
                                "sampler_name": "Euler", **kw})


def make_engine(data_dir, *names):
    for n in names:
        shutil.copytree(REPO_EXTENSIONS / n, data_dir / "extensions" / n)
    settings = Settings(data_dir=data_dir, ckpt="tiny-sd1")
    extensions = load_extensions(settings)  # discovered outside the engine, which gets their hooks
    return Engine(settings, hooks=extensions.hooks), extensions


def test_watermark_and_save_prompt_txt(data_dir):
    eng, extensions = make_engine(data_dir, "watermark", "save-prompt-txt")
    try:
        eng.styles.create("warm", "{prompt}, warm light")
        plain = eng.generate(req(styles=["warm"]))  # both off by default: nothing changes
        assert not plain.paths[0].with_suffix(".txt").exists()
        assert "Watermark" not in parse_infotext(plain.infotexts[0])
        extensions.update_settings("watermark", {"text": "LS", "corner": "bottom-right", "opacity": 1.0})
        extensions.update_settings("save-prompt-txt", {"save": True})
        r = eng.generate(req(styles=["warm"]))
        a, b = np.asarray(plain.images[0], np.float32), np.asarray(r.images[0], np.float32)
        assert np.abs(a[40:, 40:] - b[40:, 40:]).mean() > 5  # stamped corner
        assert np.abs(a[:20, :20] - b[:20, :20]).max() == 0  # rest untouched
        saved = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(r.paths[0]), np.float32)
        assert np.array_equal(saved, b)  # the saved file is the watermarked image
        info = parse_infotext(read_infotext(r.paths[0]))
        assert info["Watermark"] == "LS"
        txt = r.paths[0].with_suffix(".txt").read_text()
        assert txt.startswith("Typed prompt: a red circle\n") and "a red circle, warm light" in txt and "Seed: 4" in txt
        route = dict((p, fn) for p, fn, _ in extensions.extensions["save-prompt-txt"].routes)["/recent"]
        assert route()["files"] == [str(r.paths[0].with_suffix(".txt"))]
    finally:
        eng.close()


def test_every_hook_kind_runs_and_a_failing_extension_does_not_stop_the_job(data_dir):
    ext = data_dir / "extensions" / "probe"
    ext.mkdir(parents=True)
    (ext / "extension.py").write_text(textwrap.dedent("""
        seen = []
        def register(ext):
            ext.request_transform(lambda r: setattr(r, "steps", 5) or seen.append("request"))
            ext.prompt_transform(lambda p, n, r: (p.replace("red", "blue"), n + "ugly"))
            ext.step_callback(lambda st, i, lat: seen.append(f"step{i}"))
            ext.image_postprocess(lambda im, ctx: seen.append(f"image{ctx.seed}"))
            ext.on_saved(lambda path, info, ctx: seen.append(path.name))
            ext.infotext_fields(lambda r: {"Probe": "on"})
    """))
    bad = data_dir / "extensions" / "broken"
    bad.mkdir()
    (bad / "extension.py").write_text("def register(ext):\n    ext.step_callback(lambda *a: 1 / 0)\n")
    eng, extensions = make_engine(data_dir)
    try:
        r = eng.generate(req())
        info = parse_infotext(r.infotexts[0])
        assert info["Prompt"] == "a blue circle" and info["Negative prompt"] == "ugly"
        assert info["Steps"] == "5" and info["Probe"] == "on"
        import sys
        seen = sys.modules["latent_studio_ext_probe"].seen
        assert seen == ["request", "step0", "step1", "step2", "step3", "step4", "image4", r.paths[0].name]
        assert "ZeroDivisionError" in extensions.extensions["broken"].error
        assert len(r.images) == 1
    finally:
        eng.close()
