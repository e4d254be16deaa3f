"""Training through the API (issue 20): A1111's /create/embedding and /train/embedding, our /train/lora, the run
shown by /progress (textinfo: the loss) and stopped by /interrupt with its file saved."""
from __future__ import annotations

import base64
import io
import threading
import time

import requests
import torch
from PIL import Image, ImageDraw


def png_b64(color, size=64) -> str:
    im = Image.new("RGB", (size, size), (240, 240, 240))
    ImageDraw.Draw(im).rectangle([16, 16, 48, 48], fill=color)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def write_folder(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.open(io.BytesIO(base64.b64decode(png_b64((0, 200, 210 - 20 * i))))).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("a square")
    return folder


def test_create_then_train_embedding_as_a1111(server):
    r = requests.post(f"{server.api}/create/embedding", json={
        "name": "apiemb", "num_vectors_per_token": 2, "overwrite_old": False, "init_text": "square"}, timeout=60)
    assert r.status_code == 200, r.text
    path = server.data_dir / "embeddings" / "apiemb.pt"
    assert r.json() == {"info": f"create embedding filename: {path}"}
    assert requests.get(f"{server.api}/embeddings", timeout=30).json()["loaded"]["apiemb"]["vectors"] == 2
    again = requests.post(f"{server.api}/create/embedding", json={"name": "apiemb"}, timeout=30)
    assert again.status_code == 422 and "already exists" in again.json()["detail"]

    folder = write_folder(server.data_dir / "ti-images")
    body = {"embedding_name": "apiemb", "learn_rate": "0.01:1, 0.005", "batch_size": 2, "gradient_step": 1,
            "data_root": str(folder), "log_directory": "textual_inversion", "training_width": 64,
            "training_height": 64, "varsize": False, "steps": 3, "clip_grad_mode": "disabled",
            "clip_grad_value": "0.1", "shuffle_tags": True, "tag_drop_out": 0.1, "latent_sampling_method": "once",
            "use_weight": False, "create_image_every": 0, "save_embedding_every": 0,
            "template_filename": "subject_filewords.txt", "save_image_with_stored_embedding": True,
            "preview_from_txt2img": False, "preview_prompt": "", "preview_negative_prompt": "", "preview_steps": 5,
            "preview_sampler_name": "Euler", "preview_cfg_scale": 7, "preview_seed": -1, "preview_width": 64,
            "preview_height": 64}
    r = requests.post(f"{server.api}/train/embedding", json=body, timeout=300)
    assert r.status_code == 200, r.text
    assert r.json() == {"info": f"train embedding complete: filename: {path} error: None"}
    data = torch.load(str(path), weights_only=True)
    assert data["step"] == 3 and data["string_to_param"]["*"].shape[0] == 2
    assert requests.get(f"{server.api}/embeddings", timeout=30).json()["loaded"]["apiemb"]["step"] == 3
    missing = requests.post(f"{server.api}/train/embedding", json={**body, "embedding_name": "nope"}, timeout=30)
    assert missing.status_code == 404 and "Nothing to resume" in missing.json()["detail"]
    accumulate = requests.post(f"{server.api}/train/embedding", json={**body, "gradient_step": 4}, timeout=30)
    assert accumulate.status_code == 422 and "gradient_step" in accumulate.json()["detail"]


def test_train_lora_from_uploaded_images_is_listed_with_its_metadata(server):
    images = [png_b64((0, 200, 210)), png_b64((0, 190, 220))]
    r = requests.post(f"{server.api}/train/lora", json={
        "name": "apilora", "images": images, "captions": ["a square", ""], "trigger": "zq", "steps": 2, "seed": 5},
        timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    path = server.data_dir / "models" / "Lora" / "apilora.safetensors"
    assert body["filename"] == str(path) and body["steps"] == 2 and not body["interrupted"] and path.is_file()
    item = {i["name"]: i for i in requests.get(f"{server.api}/loras", timeout=30).json()}["apilora"]
    assert item["metadata"]["ss_num_train_images"] == "2" and item["metadata"]["ss_seed"] == "5"
    assert item["metadata"]["ss_tag_frequency"] == {"images": {"zq": 2, "a square": 1}}
    txt = requests.post(f"{server.api}/txt2img", json={"prompt": "zq <lora:apilora:1>", "steps": 2, "width": 64,
                                                        "height": 64}, timeout=120)
    assert txt.status_code == 200 and "apilora" in txt.json()["info"]
    again = requests.post(f"{server.api}/train/lora", json={"name": "apilora", "images": images}, timeout=30)
    assert again.status_code == 422 and "already exists" in again.json()["detail"]
    none = requests.post(f"{server.api}/train/lora", json={"name": "empty"}, timeout=30)
    assert none.status_code == 422 and "No training images" in none.json()["detail"]
    bad = requests.post(f"{server.api}/train/lora", json={"name": "bad", "images": ["bm90IGFuIGltYWdl"]}, timeout=30)
    assert bad.status_code == 422 and "images[0]" in bad.json()["detail"]


def test_progress_shows_the_run_and_interrupt_saves_it(server):
    out = {}

    def train():
        out["r"] = requests.post(f"{server.api}/train/lora", json={
            "name": "longrun", "images": [png_b64((200, 0, 200))], "steps": 5000, "batch_size": 1}, timeout=300)

    t = threading.Thread(target=train)
    t.start()
    deadline, seen = time.time() + 120, None
    while time.time() < deadline:
        p = requests.get(f"{server.api}/progress", timeout=30).json()
        if p["state"]["job"] == "train_lora" and (p["textinfo"] or "").startswith("Loss: "):
            seen = p
            break
        time.sleep(0.1)
    assert seen is not None and seen["state"]["sampling_steps"] == 5000 and 0 < seen["progress"] < 1
    requests.post(f"{server.api}/interrupt", timeout=30)
    t.join(120)
    body = out["r"].json()
    assert body["interrupted"] and 0 < body["steps"] < 5000
    assert (server.data_dir / "models" / "Lora" / "longrun.safetensors").is_file()
