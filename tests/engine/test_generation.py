"""txt2img / img2img on tiny models: seeds, batches, variation seeds, img2img strength, interrupt, skip, outputs."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from webui.engine.image_files import read_infotext
from webui.engine.infotext import parse_infotext
from webui.engine.requests import GenerationRequest, RequestError


def px(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32)


def req(**kw) -> GenerationRequest:
    base = dict(prompt="a red circle", steps=3, width=64, height=64, sampler_name="Euler", seed=1234)
    base.update(kw)
    return GenerationRequest(**base)


def test_same_seed_same_pixels_other_seed_differs(engine):
    a = engine.generate(req(seed=42)).images[0]
    b = engine.generate(req(seed=42)).images[0]
    c = engine.generate(req(seed=43)).images[0]
    assert np.array_equal(px(a), px(b))
    assert np.abs(px(a) - px(c)).mean() > 1.0
    assert px(a).std() > 1.0  # a real picture, not a flat fill


def test_batches_use_consecutive_seeds_and_each_image_matches_its_seed(engine):
    r = engine.generate(req(seed=100, batch_size=2, n_iter=2))
    assert r.seeds == [100, 101, 102, 103]
    assert len(r.images) == 4 and len(r.paths) == 4
    single = engine.generate(req(seed=102)).images[0]
    assert np.abs(px(single) - px(r.images[2])).max() <= 2  # batch maths may differ in the last bit


def test_random_seed_is_reported(engine):
    r = engine.generate(req(seed=-1))
    assert 0 <= r.seeds[0] < 2**32
    again = engine.generate(req(seed=r.seeds[0])).images[0]
    assert np.array_equal(px(r.images[0]), px(again))


def test_variation_seed_interpolates_between_seeds(engine):
    base = engine.generate(req(seed=7)).images[0]
    other = engine.generate(req(seed=8)).images[0]
    zero = engine.generate(req(seed=7, subseed=8, subseed_strength=0.0)).images[0]
    full = engine.generate(req(seed=7, subseed=8, subseed_strength=1.0)).images[0]
    half = engine.generate(req(seed=7, subseed=8, subseed_strength=0.5))
    assert np.array_equal(px(zero), px(base))
    assert np.abs(px(full) - px(other)).max() <= 2  # Euler is deterministic given the initial noise
    d_base, d_other = np.abs(px(half.images[0]) - px(base)).mean(), np.abs(px(half.images[0]) - px(other)).mean()
    assert d_base > 0.5 and d_other > 0.5
    info = parse_infotext(half.infotexts[0])
    assert info["Variation seed"] == "8" and info["Variation seed strength"] == "0.5"


def test_saved_file_carries_infotext_matching_the_request(engine):
    r = engine.generate(req(prompt="a red, circle: \"quoted\"", negative_prompt="blue\nsquare", seed=5,
                            sampler_name="DPM++ 2M Karras", cfg_scale=5.5, clip_skip=2))
    path = r.paths[0]
    assert path.exists() and path.name == "00000-5.png"
    assert "txt2img-images" in str(path)
    info = parse_infotext(read_infotext(path))
    assert info["Prompt"] == "a red, circle: \"quoted\""
    assert info["Negative prompt"] == "blue\nsquare"
    assert info["Seed"] == "5" and info["Steps"] == "3" and info["Size-1"] == "64" and info["Size-2"] == "64"
    assert info["Sampler"] == "DPM++ 2M" and info["Schedule type"] == "Karras"
    assert info["CFG scale"] == "5.5" and info["Clip skip"] == "2"
    assert info["Model"] == "tiny-sd1" and info["Model hash"] == r.model_title.split("[")[1][:10]
    nxt = engine.generate(req(seed=6)).paths[0]
    assert nxt.name == "00001-6.png"


def test_img2img_low_strength_keeps_input_high_strength_changes_it(engine):
    rng = np.random.default_rng(0)
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[16:48, 16:48] = (220, 40, 40)
    arr[:, :, 2] += rng.integers(0, 30, (64, 64), dtype=np.uint8)
    init = Image.fromarray(arr)
    # tiny random VAE: compare against what the VAE itself reconstructs at strength ~0
    low = engine.generate(req(init_images=[init], denoising_strength=0.05, steps=20)).images[0]
    high = engine.generate(req(init_images=[init], denoising_strength=1.0, steps=20)).images[0]
    recon = engine.generate(req(init_images=[init], denoising_strength=0.0001, steps=20)).images[0]
    assert np.abs(px(low) - px(recon)).mean() < np.abs(px(high) - px(recon)).mean() / 2
    r = engine.generate(req(init_images=[init], denoising_strength=0.5))
    assert "img2img-images" in str(r.paths[0])
    assert parse_infotext(r.infotexts[0])["Denoising strength"] == "0.5"


def test_img2img_resize_modes_fit_the_target_size():
    from webui.engine.resize import resize_image

    wide = Image.new("RGB", (200, 100), (10, 200, 10))
    wide.paste((250, 0, 0), (0, 0, 100, 100))  # left half red
    for mode in (0, 1, 2):
        out = resize_image(wide, 64, 64, mode)
        assert out.size == (64, 64)
    crop = px(resize_image(wide, 64, 64, 1))  # centre crop: red on the left half, green on the right
    assert crop[32, 5, 0] > 200 and crop[32, 60, 1] > 150
    fill = px(resize_image(wide, 64, 64, 2))  # fitted into 64x32 in the middle, edges stretched up/down
    assert fill[2, 5, 0] > 200 and fill[61, 60, 1] > 150


def test_interrupt_stops_early_and_keeps_finished_images(engine):
    job_req = req(steps=40, n_iter=50)
    job = engine.submit(job_req)
    stopped = threading.Event()

    def watch():  # interrupt once the third batch is sampling
        while not job.future.done():
            if job.state.job_no >= 2 and job.state.sampling_step >= 2:
                engine.interrupt()
                stopped.set()
                return
            threading.Event().wait(0.01)

    t = threading.Thread(target=watch)
    t.start()
    r = job.result(timeout=300)
    t.join()
    assert stopped.is_set() and r.interrupted
    assert len(r.images) == 3 and all(p.exists() for p in r.paths)  # the third as far as it got, as A1111
    assert r.seeds == [1234, 1235, 1236]
    assert "Interrupted: step" in r.infotexts[2] and "Interrupted" not in r.infotexts[1]


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M"])  # x0 from step(), and from model_outputs
def test_an_interrupted_image_is_the_estimate_as_far_as_it_got(data_dir, sampler):
    """The image of an interrupted batch is the sampler's latest estimate of the finished image: closer to the
    finished image the later the interrupt, saved, and marked in its infotext."""
    from types import SimpleNamespace

    from webui.engine.facade import Engine
    from webui.engine.hooks import Hooks
    from webui.engine.infotext import parse_infotext
    from webui.settings import Settings

    stop_at = []
    hooks = Hooks()
    hooks.add("step", lambda state, step, latents: state.interrupt() if stop_at and step + 1 == stop_at[0] else None,
              0, SimpleNamespace(name="test", active=True))
    engine = Engine(Settings(data_dir=data_dir, ckpt="tiny-sd1"), hooks=hooks)
    try:
        full = px(engine.generate(req(steps=12, seed=7, sampler_name=sampler)).images[0])
        distances = []
        for step in (2, 10):
            stop_at[:] = [step]
            r = engine.generate(req(steps=12, seed=7, sampler_name=sampler))
            assert r.interrupted and len(r.images) == 1 and r.paths[0].exists()
            assert parse_infotext(r.infotexts[0])["Interrupted"] == f"step {step} of 12"
            distances.append(np.abs(px(r.images[0]) - full).mean())
        assert distances[1] < distances[0] and distances[1] < 8, distances
    finally:
        engine.close()


def test_skip_drops_the_current_image_and_goes_on(engine):
    job = engine.submit(req(steps=30, n_iter=3))
    while job.state.job_no != 1 or job.state.sampling_step < 2:
        threading.Event().wait(0.005)
        assert not job.future.done()
    engine.skip()
    r = job.result(timeout=300)
    assert r.seeds == [1234, 1236] and r.skipped == 1 and not r.interrupted


@pytest.mark.parametrize("bad, message", [
    (dict(steps=0), "steps"),
    (dict(width=65), "multiple of 8"),
    (dict(width=100000), "width"),
    (dict(sampler_name="Nope"), "Valid samplers: DPM++ 2M"),
    (dict(scheduler="Sideways"), "Valid schedule types"),
    (dict(checkpoint="missing-model"), "not found"),
])
def test_bad_requests_are_refused_before_queueing(engine, bad, message):
    with pytest.raises(Exception) as info:
        engine.submit(req(**bad))
    assert message in str(info.value)
    assert engine.queue.waiting == 0


def test_native_size_is_the_default(engine):
    r = engine.generate(req(width=None, height=None))
    assert r.images[0].size == (64, 64)  # from the file's modelspec.resolution


def test_request_validation_messages():
    with pytest.raises(RequestError, match="denoising_strength"):
        GenerationRequest(init_images=[Image.new("RGB", (8, 8))], denoising_strength=2).validate(2048, 10)


def test_an_fp16_vae_that_overflows_is_decoded_in_fp32_and_stays_fp16(engine, caplog):
    """A VAE whose fp16 activations overflow (here: a decoder input conv scaled so fp16 gives inf) decodes in fp32
    from then on, while its own dtype stays fp16: the pipelines that encode init images with it keep working."""
    import torch

    from webui.engine.generation import decode_latents

    model = engine.load_checkpoint("tiny-sd1")
    vae = model.components["vae"]
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(3e4)
    vae.half()
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    images = decode_latents(model, latents, engine.device)
    assert len(images) == 2 and all(np.asarray(im).std() > 0 for im in images)  # no black (NaN) image
    assert vae.dtype == torch.float16 and vae in model.fp32_vaes
    assert caplog.text.count("decoding with this VAE in fp32") == 1
    again = decode_latents(model, latents, engine.device)
    assert np.array_equal(np.asarray(again[0]), np.asarray(images[0]))
