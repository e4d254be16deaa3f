"""The API driven by the real A1111 client from PyPI (webuiapi): generation, models, progress, control, PNG info."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.api.helpers import infotext_of, pattern_image, px, saved_pngs, square_mask
from webui.engine.requests import GenerationRequest


def direct(server, **kw):
    """The same picture made straight through the engine (no API), for pixel comparisons."""
    base = dict(prompt="a red circle", steps=3, width=64, height=64, sampler_name="Euler", save_images=False)
    base.update(kw)
    return server.engine.generate(GenerationRequest(**base))


def test_txt2img_images_info_and_infotext(server, client):
    before = saved_pngs(server.data_dir)
    r = client.txt2img(prompt="a red circle", negative_prompt="blue\nsquare", seed=1234, steps=3, width=64,
                       height=64, cfg_scale=5.5)
    assert len(r.images) == 1
    img = r.images[0]
    assert img.size == (64, 64) and img.format == "PNG"
    info = r.info  # webuiapi json.loads'ed it
    assert info["seed"] == 1234 and info["all_seeds"] == [1234]
    assert info["prompt"] == "a red circle" and info["negative_prompt"] == "blue\nsquare"
    assert info["sampler_name"] == "Euler" and info["steps"] == 3 and info["cfg_scale"] == 5.5
    assert info["width"] == 64 and info["height"] == 64 and info["batch_size"] == 1
    assert info["sd_model_name"] == "tiny-a" and info["sd_model_hash"] == server.titles["a"][-11:-1]
    assert info["index_of_first_image"] == 0 and info["restore_faces"] is False
    for key in ("all_prompts", "all_negative_prompts", "subseed", "all_subseeds", "subseed_strength", "sd_vae_name",
                "sd_vae_hash", "denoising_strength", "extra_generation_params", "styles", "job_timestamp",
                "clip_skip", "version"):
        assert key in info
    assert info["infotexts"][0] == img.info["parameters"]
    it = infotext_of(img)
    assert it["Prompt"] == "a red circle" and it["Negative prompt"] == "blue\nsquare"
    assert it["Seed"] == "1234" and it["Steps"] == "3" and it["Sampler"] == "Euler" and it["CFG scale"] == "5.5"
    assert it["Size-1"] == "64" and it["Model"] == "tiny-a"
    # the same pixels as the engine makes directly for that seed, and a real picture
    ref = direct(server, prompt="a red circle", negative_prompt="blue\nsquare", seed=1234, cfg_scale=5.5).images[0]
    assert np.array_equal(px(img), px(ref))
    assert px(img).std() > 1.0
    assert r.parameters["prompt"] == "a red circle" and r.parameters["seed"] == 1234
    assert saved_pngs(server.data_dir) == before  # save_images defaults to false, as in A1111


def test_txt2img_batches_seeds_and_save_images(server, client):
    before = saved_pngs(server.data_dir)
    r = client.txt2img(prompt="batch", seed=300, steps=2, width=64, height=64, batch_size=2, n_iter=2,
                       save_images=True)
    assert len(r.images) == 5 and r.info["index_of_first_image"] == 1  # saving: the batch's grid first, as A1111
    assert r.images[0].size == (128, 128)
    assert r.info["all_seeds"] == [300, 301, 302, 303] and r.info["batch_size"] == 2
    assert [infotext_of(im)["Seed"] for im in r.images] == ["300", "300", "301", "302", "303"]
    new = saved_pngs(server.data_dir) - before
    images = [p for p in new if "txt2img-images" in str(p)]
    grids = [p for p in new if "txt2img-grids" in str(p)]
    assert len(images) == 4 and len(grids) == 1 and grids[0].name.startswith("grid-")
    saved_seeds = sorted(infotext_of(Image.open(p))["Seed"] for p in images)
    assert saved_seeds == ["300", "301", "302", "303"]


def test_random_seed_is_reported_and_reproducible(client):
    r = client.txt2img(prompt="random", seed=-1, steps=2, width=64, height=64)
    seed = r.info["seed"]
    assert isinstance(seed, int) and seed >= 0
    again = client.txt2img(prompt="random", seed=seed, steps=2, width=64, height=64)
    assert np.array_equal(px(r.images[0]), px(again.images[0]))


def test_img2img_with_data_prefix_matches_engine(server, client):
    init = pattern_image()
    r = client.img2img(images=[init], prompt="a red circle", seed=77, steps=4, width=64, height=64,
                       denoising_strength=0.5)
    assert len(r.images) == 1 and r.images[0].size == (64, 64)
    assert r.info["denoising_strength"] == 0.5 and r.info["seed"] == 77
    assert infotext_of(r.images[0])["Denoising strength"] == "0.5"
    ref = direct(server, init_images=[init], denoising_strength=0.5, seed=77, steps=4).images[0]
    assert np.array_equal(px(r.images[0]), px(ref))
    assert r.parameters["init_images"] is None  # include_init_images=False: not echoed back


def test_inpainting_only_masked_keeps_the_outside(client):
    init = pattern_image(seed=3)
    r = client.img2img(images=[init], mask_image=square_mask(), prompt="a cat", seed=5, steps=4, width=64,
                       height=64, denoising_strength=0.9)  # webuiapi defaults: only masked, fill, blur 4
    out, orig = px(r.images[0]), px(init)
    assert out.shape == orig.shape
    assert np.array_equal(out[:4, :4], orig[:4, :4]) and np.array_equal(out[-4:, -4:], orig[-4:, -4:])
    assert np.abs(out[24:40, 24:40] - orig[24:40, 24:40]).mean() > 5
    it = infotext_of(r.images[0])
    assert it["Inpaint area"] == "Only masked" and it["Mask blur"] == "4" and it["Masked content"] == "fill"


def test_inpainting_whole_picture_inverted_mask_keeps_the_square(client):
    init = pattern_image(seed=4)
    r = client.img2img(images=[init], mask_image=square_mask(), prompt="a dog", seed=6, steps=4, width=64,
                       height=64, denoising_strength=0.9, inpaint_full_res=False, inpainting_mask_invert=1,
                       inpainting_fill=1)
    out, orig = px(r.images[0]), px(init)
    assert np.array_equal(out[30:34, 30:34], orig[30:34, 30:34])
    assert np.abs(out[:6, :] - orig[:6, :]).mean() > 5
    it = infotext_of(r.images[0])
    assert it["Mask mode"] == "Inpaint not masked" and it["Inpaint area"] == "Whole picture"


def test_set_model_via_options_switches_checkpoint(server, client):
    models = client.get_sd_models()
    assert sorted(m["title"] for m in models) == sorted(server.titles.values())
    for m in models:
        assert set(m) >= {"title", "model_name", "hash", "sha256", "filename", "config"}
        assert m["title"] == f"{m['model_name']}.safetensors [{m['hash']}]" and m["sha256"].startswith(m["hash"])
    a = client.txt2img(prompt="switch", seed=9, steps=2, width=64, height=64)
    client.util_set_model(server.titles["b"])
    assert client.util_get_current_model() == server.titles["b"]
    assert server.engine.models.active.title == server.titles["b"]
    b = client.txt2img(prompt="switch", seed=9, steps=2, width=64, height=64)
    assert b.info["sd_model_name"] == "tiny-b" and infotext_of(b.images[0])["Model"] == "tiny-b"
    assert np.abs(px(a.images[0]) - px(b.images[0])).mean() > 1.0


def test_override_settings_checkpoint_is_restored_afterwards(server, client):
    r = client.txt2img(prompt="override", seed=2, steps=2, width=64, height=64,
                       override_settings={"sd_model_checkpoint": "tiny-b", "CLIP_stop_at_last_layers": 2})
    assert r.info["sd_model_name"] == "tiny-b" and infotext_of(r.images[0])["Model"] == "tiny-b"
    assert r.info["clip_skip"] == 2 and infotext_of(r.images[0])["Clip skip"] == "2"
    assert server.engine.models.active.title == server.titles["a"]


def test_clip_skip_from_options_and_overrides_reaches_the_engine(server, client, monkeypatch):
    from webui.engine.requests import RequestError

    seen = []

    def spy(request):
        seen.append(request)
        raise RequestError("stopped by the test")

    monkeypatch.setattr(server.engine, "submit", spy)
    with pytest.raises(RuntimeError):
        client.txt2img(prompt="clip", steps=2, width=64, height=64)
    client.set_options({"CLIP_stop_at_last_layers": 3})
    assert client.get_options()["CLIP_stop_at_last_layers"] == 3
    with pytest.raises(RuntimeError):
        client.txt2img(prompt="clip", steps=2, width=64, height=64)
    with pytest.raises(RuntimeError):
        client.txt2img(prompt="clip", steps=2, width=64, height=64,
                       override_settings={"CLIP_stop_at_last_layers": 2})
    assert [r.clip_skip for r in seen] == [1, 3, 2]


def test_progress_polling_during_a_job(server, client):
    assert client.get_progress()["state"]["job_count"] == 0
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", client.txt2img(
        prompt="long", seed=11, steps=20, n_iter=3, width=64, height=64)))
    t.start()
    seen = []
    poller = type(client)(host=server.host, port=server.port)  # its own HTTP session
    while t.is_alive():
        p = poller.get_progress()
        if p["state"]["job_count"]:
            seen.append(p)
        time.sleep(0.03)
    t.join()
    assert len(result["r"].images) == 3
    running = [p for p in seen if p["state"]["sampling_step"] > 0]
    if getattr(server.engine.settings, "preview_every", 0):
        from tests.api.helpers import decode

        previews = [p["current_image"] for p in running if p["current_image"]]
        assert previews, "no live preview while sampling"
        assert decode(previews[-1]).width > 0
    assert running, "never saw the job running"
    assert all(p["state"]["job_count"] == 3 and p["state"]["sampling_steps"] == 20 for p in running)
    assert all(0 < p["progress"] <= 1 and p["eta_relative"] >= 0 for p in running)
    assert max(p["state"]["job_no"] for p in running) >= 1
    assert running[-1]["progress"] >= running[0]["progress"]
    assert set(seen[0]) >= {"progress", "eta_relative", "state", "current_image", "textinfo"}
    poller.util_wait_for_ready(check_interval=0.05)  # returns: progress 0 and job_count 0
    done = poller.get_progress()
    assert done["progress"] == 0 and done["state"]["job_count"] == 0


def test_progress_current_image_preview(server):
    import requests

    from tests.api.helpers import decode

    preview = pattern_image(32, seed=9)
    release = threading.Event()

    def job(state):
        state.preview = preview
        state.job_count, state.sampling_steps, state.sampling_step = 1, 10, 5
        release.wait(30)

    server.engine.queue.submit("txt2img", job)
    try:
        deadline = time.time() + 10
        while server.engine.queue.current is None and time.time() < deadline:
            time.sleep(0.01)
        p = requests.get(server.api + "/progress", timeout=10).json()
        assert p["state"]["sampling_step"] == 5 and abs(p["progress"] - 0.5) < 1e-6
        assert np.array_equal(px(decode(p["current_image"])), px(preview))
        q = requests.get(server.api + "/progress", params={"skip_current_image": "true"}, timeout=10).json()
        assert q["current_image"] is None
    finally:
        release.set()


def test_interrupt_returns_what_is_done(server, client):
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", client.txt2img(
        prompt="interrupt me", seed=40, steps=30, n_iter=20, width=64, height=64)))
    t.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        st = server.engine.queue.current
        if st is not None and st.state.job_no >= 1 and st.state.sampling_step >= 2:
            break
        time.sleep(0.01)
    t0 = time.time()
    client.interrupt()
    t.join(60)
    assert not t.is_alive() and time.time() - t0 < 10
    r = result["r"]
    assert 1 <= len(r.images) < 20
    assert r.info["all_seeds"] == list(range(40, 40 + len(r.images)))
    assert r.info["interrupted"] is True


def test_skip_drops_the_current_image(server, client):
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", client.txt2img(
        prompt="skip me", seed=60, steps=30, n_iter=3, width=64, height=64)))
    t.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        st = server.engine.queue.current
        if st is not None and st.state.kind == "txt2img" and st.state.sampling_step >= 2:
            break
        time.sleep(0.005)
    client.skip()
    t.join(60)
    r = result["r"]
    assert len(r.images) == 2 and r.info["skipped"] == 1
    assert len(r.info["all_seeds"]) == 2 and set(r.info["all_seeds"]) <= {60, 61, 62}


def test_png_info_reads_back_the_infotext(client):
    r = client.txt2img(prompt="read me, (please:1.2)", negative_prompt="ugly", seed=321, steps=2, width=64,
                       height=64)
    got = client.png_info(r.images[0])
    assert got.info == r.images[0].info["parameters"]
    params = got.parameters
    assert params["Prompt"] == "read me, (please:1.2)" and params["Negative prompt"] == "ugly"
    assert params["Seed"] == "321" and params["Steps"] == "2" and params["Size-1"] == "64"
    plain = client.png_info(Image.new("RGB", (8, 8)))
    assert plain.info == ""


def test_lists_answer_in_a1111_shapes(server, client):
    samplers = client.get_samplers()
    names = [s["name"] for s in samplers]
    assert {"Euler a", "Euler", "DPM++ 2M", "DDIM", "UniPC"} <= set(names)
    assert all(set(s) == {"name", "aliases", "options"} for s in samplers)
    scheds = client.get_schedulers()
    assert {"automatic", "karras"} <= {s["name"] for s in scheds}
    assert {"Automatic", "Karras"} <= {s["label"] for s in scheds}
    assert [u["name"] for u in client.get_upscalers()][:3] == ["None", "Lanczos", "Nearest"]
    assert [m["name"] for m in client.get_latent_upscale_modes()][:2] == ["Latent", "Latent (antialiased)"]
    assert client.get_loras() == [] and client.get_sd_vae() == []
    assert client.get_hypernetworks() == [] and client.get_face_restorers() == []
    assert client.get_realesrgan_models() == [] and client.get_prompt_styles() == []
    assert client.get_embeddings() == {"loaded": {}, "skipped": {}}
    assert client.get_scripts() == {"txt2img": ["prompt matrix", "prompts from file or textbox", "x/y/z plot"],
                                    "img2img": ["prompt matrix", "prompts from file or textbox", "sd upscale",
                                                "x/y/z plot"]}
    assert len(client.custom_get("script-info", baseurl=True)) == 7
    assert client.custom_get("extensions", baseurl=True) == []
    flags = client.get_cmd_flags()
    assert flags["api"] is True and flags["api_auth"] is None and "data_dir" in flags
    mem = client.get_memory()
    assert mem["ram"]["total"] > 0 and "cuda" in mem
    opts = client.get_options()
    assert opts["sd_model_checkpoint"] == server.titles["a"] and opts["CLIP_stop_at_last_layers"] == 1


def test_loras_and_vaes_are_listed_from_their_folders(server, client):
    import torch
    from safetensors.torch import save_file

    lora_dir, vae_dir = server.data_dir / "models" / "Lora", server.data_dir / "models" / "VAE"
    lora_dir.mkdir(parents=True, exist_ok=True)
    vae_dir.mkdir(parents=True, exist_ok=True)
    lora = lora_dir / "tiny_lora.safetensors"
    vae = vae_dir / "tiny.vae.safetensors"
    save_file({"w": torch.zeros(2)}, str(lora), metadata={"ss_output_name": "my style",
                                                          "ss_tag_frequency": '{"set": {"cat": 3}}'})
    save_file({"w": torch.zeros(2)}, str(vae))
    try:
        client.custom_post("refresh-loras", baseurl=True)
        got = client.get_loras()
        assert got == [{"name": "tiny_lora", "alias": "my style", "path": str(lora),
                        "metadata": {"ss_output_name": "my style", "ss_tag_frequency": {"set": {"cat": 3}}}}]
        assert client.get_sd_vae() == [{"model_name": "tiny.vae.safetensors", "filename": str(vae)}]
    finally:
        lora.unlink()
        vae.unlink()


def test_styles_come_from_styles_csv(server, client):
    server.engine.styles.create("Cinematic", "{prompt}, film", "blurry")
    try:
        assert {"name": "Cinematic", "prompt": "{prompt}, film", "negative_prompt": "blurry"} in client.get_prompt_styles()
    finally:
        server.engine.styles.delete("Cinematic")

def test_extras_upscale_lanczos_nearest_and_crop(client):
    src = pattern_image(32, seed=5)
    src.info["parameters"] = "kept prompt\nSteps: 2, Sampler: Euler, Seed: 3"
    r = client.extra_single_image(src, upscaler_1="Lanczos", upscaling_resize=2)
    out = r.images[0]
    assert out.size == (64, 64)
    assert np.array_equal(px(out), px(src.resize((64, 64), Image.LANCZOS)))
    assert out.info["parameters"] == src.info["parameters"]
    assert "Lanczos" in r.info and "2" in r.info
    near = client.extra_single_image(src, upscaler_1="Nearest", upscaling_resize=3).images[0]
    assert np.array_equal(px(near), px(src.resize((96, 96), Image.NEAREST)))
    crop = client.extra_single_image(src, upscaler_1="Lanczos", resize_mode=1, upscaling_resize_w=64,
                                     upscaling_resize_h=40, upscaling_crop=True).images[0]
    assert crop.size == (64, 40)
    same = client.extra_single_image(src).images[0]  # upscaler "None": unchanged
    assert np.array_equal(px(same), px(src))
    batch = client.extra_batch_images([src, pattern_image(16)], upscaler_1="Nearest", upscaling_resize=2)
    assert [im.size for im in batch.images] == [(64, 64), (32, 32)]


def test_refresh_unload_reload_checkpoint(server, client, api_models):
    from pathlib import Path

    link = server.data_dir / "models" / "Stable-diffusion" / "tiny-c.safetensors"
    link.symlink_to(api_models["a"])
    try:
        assert "tiny-c" not in {m["model_name"] for m in client.get_sd_models()}
        client.refresh_checkpoints()
        assert "tiny-c" in {m["model_name"] for m in client.get_sd_models()}
    finally:
        Path(link).unlink()
        client.refresh_checkpoints()
    client.custom_post("unload-checkpoint", baseurl=True)
    assert server.engine.models.active is None
    assert client.get_options()["sd_model_checkpoint"] == server.titles["a"]
    client.custom_post("reload-checkpoint", baseurl=True)
    assert server.engine.models.active.title == server.titles["a"]
    assert len(client.txt2img(prompt="after reload", seed=1, steps=2, width=64, height=64).images) == 1


def test_always_save_option_and_send_images_false(server, client):
    before = saved_pngs(server.data_dir)
    client.set_options({"api_always_save": True})
    assert client.get_options()["api_always_save"] is True
    r = client.txt2img(prompt="kept", seed=12, steps=2, width=64, height=64, send_images=False)
    assert r.images == [] and r.info["seed"] == 12
    new = saved_pngs(server.data_dir) - before
    assert len(new) == 1 and infotext_of(Image.open(new.pop()))["Seed"] == "12"
    client.set_options({"api_always_save": False})


def test_infotext_field_fills_what_the_request_does_not_set(server):
    import requests

    from tests.api.helpers import info_of

    text = "a pasted prompt\nNegative prompt: bad\nSteps: 2, Sampler: Euler, CFG scale: 4, Seed: 99, Size: 64x64"
    r = requests.post(f"{server.api}/txt2img", json={"infotext": text}, timeout=60)
    info = info_of(r.json())
    assert (info["prompt"], info["negative_prompt"], info["steps"], info["cfg_scale"], info["seed"]) == \
        ("a pasted prompt", "bad", 2, 4.0, 99)
    assert (info["width"], info["height"], info["sampler_name"]) == (64, 64, "Euler")
    r = requests.post(f"{server.api}/txt2img", json={"infotext": text, "seed": 5, "steps": 3}, timeout=60)
    info = info_of(r.json())
    assert (info["seed"], info["steps"], info["prompt"]) == (5, 3, "a pasted prompt")


def test_requests_queued_behind_an_override_run_on_the_current_model(server):
    import requests
    from concurrent.futures import ThreadPoolExecutor

    from tests.api.helpers import info_of

    body = {"prompt": "order", "seed": 1, "steps": 2, "width": 64, "height": 64}
    with ThreadPoolExecutor(4) as pool:
        futs = [pool.submit(requests.post, f"{server.api}/txt2img",
                            json=dict(body, override_settings={"sd_model_checkpoint": "tiny-b"}) if i % 2 else body,
                            timeout=120) for i in range(4)]
        names = [info_of(f.result().json())["sd_model_name"] for f in futs]
    assert names == ["tiny-a", "tiny-b", "tiny-a", "tiny-b"]
    assert server.engine.models.active.title == server.titles["a"]
