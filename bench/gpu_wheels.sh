#!/usr/bin/env bash
# Run HERE (a machine with PyPI), once, before bench/gpu.sh runs on a lent GPU machine that cannot reach the
# network: downloads the wheels its image lacks (or has at other versions than requirements.txt pins) into .whl/
# (kept out of git by .git/info/exclude; the `run` tool carries it with carry [".whl"], 64 MiB at most).
# The GPU image (python 3.12, torch with CUDA, accelerate, safetensors, tokenizers, huggingface_hub 1.x, numpy,
# pillow, opencv, pyyaml) keeps its own; huggingface_hub 2.x is not carried (it needs httpx2, which the image lacks;
# diffusers and transformers accept 1.3x). xformers is not carried (its wheels are bigger than the limit), so its row says so.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
pin() { grep -i "^$1==" requirements.txt | cut -d'#' -f1 | tr -d ' '; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d .whl "$(pin diffusers)" "$(pin transformers)" "$(pin peft)" "$(pin spandrel)" \
  "$(pin spandrel_extra_arches)" "$(pin dynamicprompts)" "$(pin torchsde)" trampoline==0.1.2 \
  importlib_metadata==8.7.0
du -sh .whl && ls .whl
