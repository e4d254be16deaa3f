#!/usr/bin/env bash
# GPU figures in one prepared command, for a GPU machine lent for about 15 minutes (finishes in under 8):
# a venv over the machine's own CUDA torch with the project's requirements, full-size random SD1.5 (two) and SDXL
# checkpoints built on the GPU, then bench/gpu_bench.py's one markdown table (also written to $OUT/gpu-bench.md).
#
#   here, once (PyPI):   bash bench/gpu_wheels.sh        # the wheels the offline GPU image lacks -> .whl/
#   on the GPU machine:  bash bench/gpu.sh               # `run` tool: carry [".whl"], timeout_s 560
#
# With network (no .whl/), it installs requirements.txt without its torch/torchvision pins, and requirements-gpu.txt's
# xformers if a wheel for the machine's torch exists. GPU_BENCH_SECONDS (default 460) bounds the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
total=${GPU_BENCH_SECONDS:-460}
venv=${GPU_BENCH_VENV:-/tmp/ls-gpu-venv}
work=${GPU_BENCH_WORK:-/tmp/ls-gpu-bench}
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False

python3 -m venv --system-site-packages "$venv"  # the image's CUDA build of torch stays
. "$venv/bin/activate"
if compgen -G ".whl/*.whl" > /dev/null; then
  pip install -q --no-index --no-deps --no-compile .whl/*.whl
else
  pip install -q $(grep -v -e '^torch==' -e '^torchvision==' -e '^gradio==' -e '^#' requirements.txt | cut -d'#' -f1)
  pip install -q $(grep -v -e '^#' -e '^-r' requirements-gpu.txt) || echo "xformers did not install: its row says so"
fi
python - <<'PY'
import diffusers, peft, spandrel, torch, transformers
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print(f"torch {torch.__version__} ({torch.cuda.get_device_name(0)}), diffusers {diffusers.__version__}, "
      f"transformers {transformers.__version__}, peft {peft.__version__}, spandrel {spandrel.__version__}")
PY

mkdir -p "$work"
for spec in "sd1 0 sd15-a" "sd1 1 sd15-b" "sdxl 0 sdxl"; do
  read -r family seed name <<< "$spec"
  [ -f "$work/$name.safetensors" ] || python bench/make_random_checkpoint.py --family "$family" --seed "$seed" \
    --device cuda --out "$work/$name.safetensors"
done
left=$((total - (SECONDS - start)))
echo "setup took $((SECONDS - start))s; the bench gets ${left}s"

# SIGINT at the limit: gpu_bench.py prints the rows done so far and marks the rest
set +e
timeout -s INT -k 30 "$left" python bench/gpu_bench.py --sd15 "$work/sd15-a.safetensors" \
  --sd15b "$work/sd15-b.safetensors" --sdxl "$work/sdxl.safetensors" --budget $((left - 150)) \
  | tee "${OUT:-$work}/gpu-bench.md"
rc=${PIPESTATUS[0]}
echo "bench/gpu.sh: $((SECONDS - start))s in all, exit status $rc"
exit "$rc"
