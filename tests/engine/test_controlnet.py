"""ControlNet on the tiny models: units off = the plain image, guidance start/end, families, safe loading,
hires fix / img2img / inpaint, infotext."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from webui.engine import (
    ControlNetUnit,
    GenerationRequest,
    RequestError,
    controlnet_units_from_params,
)
from webui.engine.infotext import parse_infotext


@pytest.fixture(scope="session")
def tiny_controlnets(tmp_path_factory):
    from tests.fixtures.tiny_controlnets import write_tiny_controlnet

    d = tmp_path_factory.mktemp("tiny-controlnets")
    return {"sd1": write_tiny_controlnet(d / "tiny-sd1-control.safetensors", "sd1"),
            "sdxl": write_tiny_controlnet(d / "tiny-sdxl-control.safetensors", "sdxl"),
            "sd1-pth": write_tiny_controlnet(d / "tiny-sd1-control-old.pth", "sd1", seed=3, prefix=True)}


@pytest.fixture
def cn_engine(data_dir, tiny_controlnets):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    folder = data_dir / "models" / "ControlNet"
    folder.mkdir(parents=True)
    for path in tiny_controlnets.values():
        (folder / Path(path).name).symlink_to(path)
    eng = Engine(Settings(data_dir=data_dir, ckpt="tiny-sd1", checkpoint_cache_size=2))
    yield eng
    eng.close()


def _control() -> Image.Image:
    image = Image.new("RGB", (64, 64))
    image.paste((255, 255, 255), (36, 36, 60, 60))
    return image


def _generate(engine, units=(), **fields):
    fields = {"prompt": "a red circle", "seed": 3, "steps": 4, "save_images": False, **fields}
    req = GenerationRequest(controlnet_units=list(units), **fields)
    return engine.generate(req)


def _pixels(result) -> np.ndarray:
    return np.asarray(result.images[0]).astype(int)


def test_weight_zero_or_disabled_is_exactly_the_plain_image(cn_engine):
    plain = _pixels(_generate(cn_engine))
    unit = {"model": "tiny-sd1-control", "image": _control()}
    for off in (ControlNetUnit(**unit, weight=0.0), ControlNetUnit(**unit, enabled=False)):
        result = _generate(cn_engine, [off])
        assert np.array_equal(_pixels(result), plain)
        assert "ControlNet 0" not in result.infotexts[0]
    on = _generate(cn_engine, [ControlNetUnit(**unit)])
    assert np.abs(_pixels(on) - plain).mean() > 1.0


def test_guidance_start_and_end_decide_the_steps_with_control(cn_engine):
    unit = ControlNetUnit(model="tiny-sd1-control", image=_control())
    _generate(cn_engine, [unit])  # loads the ControlNet into the cache
    (net,) = cn_engine.controlnets.cache.items.values()
    calls = []

    def count(module, args, kwargs):  # torch's own hook; a step outside start/end has scale 0 (the first one of
        if kwargs.get("conditioning_scale", 1.0) != 0:  # a job may still run, to learn the residuals' shapes)
            calls.append(1)

    handle = net.register_forward_pre_hook(count, with_kwargs=True)
    try:
        for start, end, expected in ((0.0, 1.0, 10), (0.2, 0.6, 4), (0.5, 1.0, 5)):
            calls.clear()
            _generate(cn_engine, [ControlNetUnit(model="tiny-sd1-control", image=_control(), guidance_start=start,
                                                 guidance_end=end)], steps=10, sampler_name="Euler")
            assert len(calls) == expected, (start, end)
    finally:
        handle.remove()


def test_infotext_is_written_and_read_back(cn_engine):
    unit = ControlNetUnit(model="tiny-sd1-control", image=_control(), module="canny", weight=0.8,
                          control_mode="My prompt is more important", guidance_end=0.9)
    info = _generate(cn_engine, [unit]).infotexts[0]
    title = next(t for t in cn_engine.controlnet_models() if t.startswith("tiny-sd1-control ["))
    assert f'ControlNet 0: "Module: canny, Model: {title}, Weight: 0.8, Resize Mode: Crop and Resize, ' \
           f'Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance End: 0.9, ' \
           f'Pixel Perfect: False, Control Mode: My prompt is more important"' in info
    (back,) = controlnet_units_from_params(parse_infotext(info))
    assert back == {"enabled": True, "module": "canny", "model": title, "weight": 0.8,
                    "resize_mode": "Crop and Resize", "processor_res": 512, "threshold_a": 100.0,
                    "threshold_b": 200.0, "guidance_start": 0.0, "guidance_end": 0.9, "pixel_perfect": False,
                    "control_mode": "My prompt is more important"}


def test_control_modes_and_two_units_run(cn_engine):
    plain = _pixels(_generate(cn_engine))
    outs = []
    for mode in ("Balanced", "My prompt is more important", "ControlNet is more important"):
        units = [ControlNetUnit(model="tiny-sd1-control", image=_control(), control_mode=mode),
                 ControlNetUnit(model="tiny-sd1-control-old", image=_control(), module="invert")]
        outs.append(_pixels(_generate(cn_engine, units)))
    assert all(np.abs(o - plain).mean() > 1.0 for o in outs)
    assert np.abs(outs[0] - outs[2]).mean() > 0.5  # the mode changes the result


def test_hires_img2img_and_inpaint_with_control(cn_engine):
    seen = []
    _generate(cn_engine, [ControlNetUnit(model="tiny-sd1-control", image=_control())])
    (net,) = [n for n in cn_engine.controlnets.cache.items.values()]
    handle = net.register_forward_hook(lambda m, args, kwargs: seen.append(tuple(args[0].shape[-2:])))
    try:
        unit = ControlNetUnit(model="tiny-sd1-control", image=_control())
        result = _generate(cn_engine, [unit], enable_hr=True, hr_scale=2.0, denoising_strength=0.6, width=64,
                           height=64)
        assert result.images[0].size == (128, 128)
        assert (8, 8) in seen and (16, 16) in seen  # the second pass ran with control, at its own size
        init = Image.new("RGB", (64, 64), (200, 40, 40))
        img2img = _generate(cn_engine, [ControlNetUnit(model="tiny-sd1-control")], init_images=[init],
                            denoising_strength=0.7)  # no unit image: the init image is the input
        assert img2img.images[0].size == (64, 64)
        inpaint = _generate(cn_engine, [unit], init_images=[init], mask=_control(), denoising_strength=0.7)
        outside = np.asarray(inpaint.images[0])[:20, :20].astype(int)
        assert np.abs(outside - np.asarray(init)[:20, :20]).mean() < 8  # outside the mask: the original
    finally:
        handle.remove()


def test_sdxl_controlnet_on_sdxl_and_family_mismatch(cn_engine):
    unit = ControlNetUnit(model="tiny-sdxl-control", image=_control())
    plain = _pixels(_generate(cn_engine, checkpoint="tiny-sdxl"))
    assert np.abs(_pixels(_generate(cn_engine, [unit], checkpoint="tiny-sdxl")) - plain).mean() > 1.0
    with pytest.raises(RequestError, match=r"SDXL.*SD 1\.x"):
        _generate(cn_engine, [unit], checkpoint="tiny-sd1")


def test_bad_units_fail_before_the_queue(cn_engine):
    cases = [(ControlNetUnit(model="nope", image=_control()), "not found"),
             (ControlNetUnit(model="tiny-sd1-control", image=_control(), module="nope"), "module 'nope'"),
             (ControlNetUnit(model="tiny-sd1-control", image=_control(), weight=3.0), "weight"),
             (ControlNetUnit(model="tiny-sd1-control", image=_control(), guidance_start=0.8, guidance_end=0.2),
              "guidance_start"),
             (ControlNetUnit(model="tiny-sd1-control"), "no input image"),
             (ControlNetUnit(model="tiny-sd1-control", image=_control(), module="depth_midas"), "annotators")]
    for unit, message in cases:
        with pytest.raises(RequestError, match=message):
            cn_engine.plan(GenerationRequest(prompt="a", controlnet_units=[unit]))


def test_malicious_pth_is_refused(cn_engine, tmp_path):
    from tests.fixtures.tiny_controlnets import write_malicious_pth

    marker = tmp_path / "pwned"
    write_malicious_pth(cn_engine.settings.models_root / "ControlNet" / "evil.pth", marker)
    cn_engine.controlnet_models(refresh=True)
    with pytest.raises(Exception, match="refused"):
        _generate(cn_engine, [ControlNetUnit(model="evil", image=_control())])
    assert not marker.exists()


def test_preprocessors(cn_engine):
    image = Image.new("RGB", (96, 64), (250, 250, 250))
    image.paste((10, 10, 10), (30, 20, 60, 44))
    edges = np.asarray(cn_engine.controlnet_detect("canny", [image], processor_res=64)[0])
    assert edges.shape == (64, 96, 3) and edges.max() == 255 and (edges > 0).mean() < 0.2
    inverted = np.asarray(cn_engine.controlnet_detect("invert", [image])[0])
    assert inverted[0, 0, 0] == 5 and inverted[30, 40, 0] == 245
    lines = np.asarray(cn_engine.controlnet_detect("lineart_standard", [image], processor_res=64)[0])
    assert lines[32, 48].max() < lines.max()  # inside the dark block: no line, its edge: a line
    for name in ("threshold", "blur_gaussian", "tile_resample", "scribble_xdog", "shuffle", "t2ia_color_grid"):
        assert cn_engine.controlnet_detect(name, [image], processor_res=64)[0].mode == "RGB"
    with pytest.raises(RequestError, match=r"openpose.*annotators"):
        cn_engine.controlnet_detect("openpose", [image])
