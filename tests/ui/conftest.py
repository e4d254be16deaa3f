"""Browser tests: the real app in a subprocess (`python app.py --port <free> --data-dir <tmp>`) with tiny models,
driven by Playwright on Debian's chromium (never `playwright install`). Screenshots go to test-artifacts/screenshots.

Install once: `apt-get install -y chromium` (see .ci/browser-deps.sh). Without chromium these tests skip.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("LS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    def __init__(self, data_dir: Path, extra: list[str] = ()):
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / f"server-{self.port}.log"
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
                   HF_HUB_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
                   NO_PROXY="*", no_proxy="*")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(self.port), "--data-dir", str(self.data_dir), *extra],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/config", timeout=2) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):  # --auth: the server is up and asks for a log-in
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"app did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on Ctrl+C
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def make_app_dir(root: Path, tiny_files: dict) -> Path:
    """A data folder: two tiny checkpoints, a LoRA with kohya metadata and a preview, a wildcard file, a style."""
    from PIL import Image
    import torch
    from safetensors.torch import save_file

    ckpts = root / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    for key in ("sd1", "sd1-b"):
        src = Path(tiny_files[key])
        (ckpts / src.name).symlink_to(src)
    (ckpts / "zz-broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    lora = root / "models" / "Lora"
    lora.mkdir(parents=True)
    meta = {"ss_output_name": "paper_cut", "ss_base_model_version": "sd_v1",
            "ss_tag_frequency": '{"10_papercut": {"papercut": 12, "layered paper": 7, "origami": 2}}'}
    save_file({"lora_unet_down.alpha": torch.tensor(4.0)}, str(lora / "paperCut-v2.safetensors"), metadata=meta)
    Image.new("RGB", (96, 96), (200, 120, 60)).save(lora / "paperCut-v2.preview.png")
    save_file({"x": torch.zeros(1)}, str(lora / "detail_tweaker.safetensors"),
              metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    wc = root / "models" / "wildcards"
    wc.mkdir(parents=True)
    (wc / "animals.txt").write_text("cat\ndog\nfox\nowl\n", encoding="utf-8")
    ext = root / "extensions" / "greeter"
    ext.mkdir(parents=True)
    (ext / "extension.py").write_text(
        "def register(ext):\n"
        "    ext.setting('greeting', 'hello', 'Greeting shown in the tab')\n"
        "    def tab(engine):\n"
        "        import gradio as gr\n"
        "        gr.Markdown(f\"{ext.get('greeting')} from the greeter extension\", elem_id='greeter_text')\n"
        "    ext.ui_tab('Greeter', tab)\n", encoding="utf-8")
    (root / "config.yaml").write_text("queue_size: 2\n", encoding="utf-8")  # small, so a test can fill it
    (root / "styles.csv").write_text('name,prompt,negative_prompt\nCinematic,"{prompt}, cinematic light",blurry\n',
                                     encoding="utf-8-sig")
    return root


def chromium_or_skip():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("playwright (python) is not installed")


@pytest.fixture(scope="module")
def browser():
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_files):
    chromium_or_skip()
    server = AppServer(make_app_dir(tmp_path_factory.mktemp("app"), tiny_files), ["--api"])
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser, app):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=False)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(app.url)
    pg.wait_for_selector("#txt2img_generate", state="visible", timeout=60_000)
    wait_model_loaded(pg)
    yield pg
    context.close()


def wait_model_loaded(page, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "() => { const d = document.querySelector('#model_status'); return d && /native/.test(d.innerText); }",
        timeout=timeout)


def screenshot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
