"""Inspect means what it shows, on the built-in shapes model (64 px, latents 8x8): the "circle" token looks where
the prompt puts the circle, the x0 predictions converge on the final image, an embedding's tokens are marked."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.fixtures.builtin_generate import CHECKPOINT, EMBEDDINGS_DIR
from webui.engine import InspectRequest

PROMPT = "a small red circle at the {} on a blue background"


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    d = tmp_path_factory.mktemp("inspect-builtin")
    (d / "models" / "Stable-diffusion").mkdir(parents=True)
    (d / "models" / "Stable-diffusion" / CHECKPOINT.name).symlink_to(CHECKPOINT)
    (d / "embeddings").mkdir()
    for f in EMBEDDINGS_DIR.glob("*.safetensors"):
        (d / "embeddings" / f.name).symlink_to(f)
    eng = Engine(Settings(data_dir=d))
    yield eng
    eng.close()


def quadrant_shares(heat: np.ndarray) -> dict[str, float]:
    """The map's mass above its minimum (DAAM's normalisation) per quadrant."""
    h = heat - heat.min()
    h = h / h.sum()
    n = h.shape[0] // 2
    return {"top left": h[:n, :n].sum(), "top right": h[:n, n:].sum(), "bottom left": h[n:, :n].sum(),
            "bottom right": h[n:, n:].sum()}


@pytest.mark.slow
@pytest.mark.parametrize("where", ["top left", "bottom right"])
def test_circle_map_lies_where_the_prompt_puts_the_circle(builtin, where):
    hits = []
    for seed in range(4):
        req = builtin.request_defaults(prompt=PROMPT.format(where), seed=seed, steps=10)
        res = builtin.inspect(InspectRequest(req, record_steps=False, attention_layers=["up"], save=False))
        circle = next(m for m in res.attention if m.token.word == "circle")
        shares = quadrant_shares(circle.heat)
        hits.append(shares[where] > 0.5 and max(shares, key=shares.get) == where)
    assert sum(hits) >= 3, hits  # most of the mass in that quadrant, in most seeds


@pytest.mark.slow
def test_x0_previews_converge_on_the_final_image(builtin):
    req = builtin.request_defaults(prompt=PROMPT.format("top left"), seed=3, steps=12)
    res = builtin.inspect(InspectRequest(req, decode="full", attention=False, save=False))
    final = np.asarray(res.image, dtype=np.float32)
    dist = [float(np.abs(np.asarray(s.x0, dtype=np.float32) - final).mean()) for s in res.steps]
    last = dist[-5:]
    assert all(a > b for a, b in itertools.pairwise(last)), dist  # shrinks over the last steps
    assert last[-1] < 1.0 and dist[0] > 10 * max(last[-1], 0.1)
    latent = [s.distance for s in res.steps][-5:]
    assert all(a > b for a, b in itertools.pairwise(latent))


@pytest.mark.slow
def test_embedding_tokens_are_marked(builtin):
    view = builtin.inspect_tokens("a lsstar on a red background")
    marked = [t for t in view.prompt_tokens() if t.kind == "embedding"]
    assert marked and {t.embedding for t in marked} == {"lsstar"}
    assert view.embeddings["lsstar"] == [t.index for t in marked]
    assert [t.word for t in view.prompt_tokens()][:1] == ["a"]
