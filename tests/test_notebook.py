"""The Colab notebook: valid JSON, and its cells run top to bottom on CPU with the Colab-only parts guarded
(LATENT_STUDIO_NOTEBOOK_TEST=1: no Drive mount, no share link, no pip install), starting and stopping the server."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "colab" / "latent_studio.ipynb"


def test_notebook_is_valid():
    nb = json.loads(NOTEBOOK.read_text())
    import nbformat

    nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "--share" in text and "--auth" in text and "drive.mount" in text
    assert "torch==" in text and 'startswith(("torch==", "torchvision=="))' in text  # keeps Colab's torch pair


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_on_cpu(tmp_path, data_dir, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("LATENT_STUDIO_NOTEBOOK_TEST", "1")
    monkeypatch.setenv("LATENT_STUDIO_TEST_DATA", str(data_dir))
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Login: user 'studio', password" in out
    assert "Serving on http://127.0.0.1:" in out and "tiny-sd1" in out
    assert "stopped" in out
