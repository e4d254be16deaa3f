import json
cells = []
def md(s): cells.append({"cell_type": "markdown", "metadata": {}, "source": s.strip("\n").splitlines(keepends=True)})
def code(s, tags=()):
    cells.append({"cell_type": "code", "metadata": {"tags": list(tags)}, "execution_count": None, "outputs": [],
                  "source": s.strip("\n").splitlines(keepends=True)})
md("""
# Latent Studio on Colab

Runs the Latent Studio web UI on a hosted GPU runtime (Runtime -> Change runtime type -> GPU).

* Uses the runtime's preinstalled PyTorch (no multi-GB reinstall).
* Optionally keeps models and outputs in a Google Drive folder, so they survive the runtime.
* Starts with a public Gradio share link protected by a generated password, printed below.

**Colab's free tier**: GPU time is limited and not guaranteed, runtimes stop when idle (about 90 minutes) or after at
most 12 hours, and since 2023 Google restricts remote web UIs (Gradio front-ends for Stable Diffusion included) on
the free tier: such sessions may be stopped. A paid plan (Colab Pro / pay-as-you-go) allows them.
""")
code("""
# Settings: change these, then Runtime -> Run all.
REPO_URL = ""            # git URL of your Latent Studio copy (not needed when the notebook runs inside a checkout)
USE_DRIVE = True         # keep models/ and outputs/ in Google Drive
DRIVE_FOLDER = "LatentStudio"
SHARE = True             # public Gradio link (needs the internet), always with a password
EXTRA_FLAGS = ""         # e.g. "--xformers --medvram"

import os
# LATENT_STUDIO_NOTEBOOK_TEST=1: the project's test runs this notebook on CPU without Colab, Drive or a share link.
TEST_MODE = os.environ.get("LATENT_STUDIO_NOTEBOOK_TEST") == "1"
try:
    import google.colab  # noqa: F401
    IN_COLAB = True
except ImportError:
    IN_COLAB = False
print(f"Colab: {IN_COLAB}, test mode: {TEST_MODE}")
""", tags=["parameters"])
code("""
# Get the code: use the checkout this notebook sits in, or clone REPO_URL.
import pathlib, subprocess, sys
here = pathlib.Path.cwd()
candidates = [here, here.parent, pathlib.Path("/content/latent-studio")]
APP_DIR = next((p for p in candidates if (p / "app.py").exists() and (p / "webui").is_dir()), None)
if APP_DIR is None:
    if not REPO_URL:
        raise SystemExit("Set REPO_URL in the first cell to the git URL of your Latent Studio copy.")
    subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "/content/latent-studio"], check=True)
    APP_DIR = pathlib.Path("/content/latent-studio")
os.chdir(APP_DIR)
print("app folder:", APP_DIR)
""")
code("""
# Install: everything in requirements.txt except torch and torchvision, so the runtime's own CUDA pair is kept.
import importlib.util
pinned = [l.split("#")[0].strip() for l in open("requirements.txt") if l.strip() and not l.startswith("#")]
reqs = [r for r in pinned if not r.startswith(("torch==", "torchvision=="))]
if importlib.util.find_spec("torch") is None:
    reqs[:0] = [r for r in pinned if r.startswith(("torch==", "torchvision=="))]  # no torch at all: the pinned pair
if TEST_MODE:
    print("test mode: not installing (the test environment has the requirements)")
else:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *reqs], check=True)
import torch
print("torch", torch.__version__, "CUDA:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
""")
code("""
# Google Drive (only on Colab, when asked): models/ and outputs/ live there.
flags = []
if IN_COLAB and USE_DRIVE and not TEST_MODE:
    from google.colab import drive
    drive.mount("/content/drive")
    root = pathlib.Path("/content/drive/MyDrive") / DRIVE_FOLDER
    for sub in ("models/Stable-diffusion", "models/Lora", "models/VAE", "models/wildcards", "embeddings", "outputs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # the built-in model stays available next to your own checkpoints
    flags += ["--models-dir", str(root / "models"), "--ckpt-dir", str(APP_DIR / "models" / "Stable-diffusion"),
              "--embeddings-dir", str(root / "embeddings"), "--outdir", str(root / "outputs")]
    print("Drive folder:", root)
else:
    print("Drive not used")
if TEST_MODE and os.environ.get("LATENT_STUDIO_TEST_DATA"):
    flags += ["--data-dir", os.environ["LATENT_STUDIO_TEST_DATA"]]
""")
code("""
# Start the server with a generated password, printed here.
import os, secrets, socket, time, urllib.request, base64
user, password = "studio", secrets.token_urlsafe(12)
port = 7860
if TEST_MODE:  # a free local port, no share link
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
auth_file = os.path.join(os.getcwd(), ".studio-auth")  # not on the command line, where `ps` shows it
with open(os.open(auth_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    f.write(f"{user}:{password}\\n")
cmd = [sys.executable, "app.py", "--port", str(port), "--auth-file", auth_file, "--api", *flags, *EXTRA_FLAGS.split()]
if SHARE and not TEST_MODE:
    cmd.append("--share")
log = open("server.log", "w")
server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
print(f"Login: user {user!r}, password {password!r}")
token = base64.b64encode(f"{user}:{password}".encode()).decode()
deadline = time.time() + 600
while time.time() < deadline:
    if server.poll() is not None:
        raise SystemExit("the server stopped; see server.log:\\n" + open("server.log").read()[-3000:])
    text = open("server.log").read()
    share = [w for w in text.split() if w.startswith("https://") and "gradio" in w]
    if share:
        print("Public URL:", share[-1]); break
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/sdapi/v1/sd-models", headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            models = r.read().decode()
        if not (SHARE and not TEST_MODE):
            print(f"Serving on http://127.0.0.1:{port}"); break
    except OSError:
        pass
    time.sleep(2)
else:
    raise SystemExit("the server did not come up in 10 minutes; see server.log")
print("checkpoints:", models[:300])
""")
code("""
# Test mode only: stop the server again (on Colab it keeps running while this runtime lives).
if TEST_MODE:
    server.terminate(); server.wait(timeout=60)
    print("stopped")
""")
nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
      "language_info": {"name": "python"}, "accelerator": "GPU", "colab": {"provenance": []}},
      "nbformat": 4, "nbformat_minor": 5}
for i, c in enumerate(nb["cells"]):
    c["id"] = f"cell-{i}"
json.dump(nb, open("colab/latent_studio.ipynb", "w"), indent=1)
print("ok")
