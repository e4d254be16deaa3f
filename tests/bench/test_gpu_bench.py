"""bench/gpu_bench.py in its --smoke mode (CPU, tiny models, 64 px): the table bench/gpu.sh prints on a lent GPU
has every row, with a figure or a stated reason, and a row that fails says so without stopping the others."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS = ("SD1.5 txt2img eager", "SD1.5 txt2img torch.compile", "VAE decode 64px", "SD1.5 attention: sdpa",
        "SD1.5 attention: xformers", "SD1.5 hires fix 2x", "4x ESRGAN upscale 64px", "SD1.5 offload none", "SD1.5 offload --medvram",
        "SD1.5 offload --lowvram", "SD1.5 checkpoint swap: RAM-cached", "SD1.5 LoRA training step",
        "SDXL txt2img eager", "SDXL txt2img torch.compile")


def _table(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        if line.startswith("| ") and not line.startswith("| measure") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, "bench/gpu_bench.py", "--smoke", *args], check=False, cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_smoke_table_has_every_row():
    rows = _table(_run("--no-compile"))
    assert list(rows) == list(ROWS)
    assert not [name for name, cells in rows.items() if cells[0].startswith("failed")]
    # it/s comes from a difference of two timings: on a busy CPU with a tiny model it may have no figure
    figure = re.compile(r"^(\d+\.\d+ (it/s|s|s/image|s/step)|no figure: timing noise$)")
    measured = ("SD1.5 txt2img eager", "VAE decode 64px", "SD1.5 hires fix 2x", "4x ESRGAN upscale 64px",
                "SD1.5 offload none", "SD1.5 checkpoint swap: RAM-cached", "SD1.5 LoRA training step",
                "SDXL txt2img eager")
    for name in measured:
        assert figure.match(rows[name][0]), (name, rows[name])
    assert rows["SD1.5 attention: xformers"][0].startswith("not measured: xformers needs CUDA")
    assert rows["SD1.5 offload --lowvram"][0] == "n/a: CUDA only"
    assert rows["SD1.5 txt2img torch.compile"][0] == "skipped: --no-compile"
    assert float(rows["SD1.5 checkpoint swap: RAM-cached"][0].split()[0]) < \
        float(rows["SD1.5 checkpoint swap: RAM-cached"][1].split()[0])  # from RAM beats from disk


def test_a_failing_row_is_reported_and_the_rest_goes_on():
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_bench

    table = gpu_bench.Table(budget=60)

    def broken():
        raise RuntimeError("CUDA out of memory\nsecond line")

    table.run("first", broken)
    table.run("second", lambda: [("second", "1.00 s", "", "", "")])
    table.budget = -1
    table.run("third", lambda: [("third", "2.00 s", "", "", "")])
    rows = _table(table.markdown())
    assert rows["first"][0] == "failed: RuntimeError: CUDA out of memory"
    assert rows["second"][0] == "1.00 s"
    assert rows["third"][0] == "skipped: time budget"
