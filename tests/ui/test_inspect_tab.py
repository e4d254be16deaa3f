"""The Inspect tab without a browser: it is part of the UI, its handler shows the engine's results (tokens, steps,
maps, walk) and names bad input in the status line, and its results go to txt2img by their infotext."""
from __future__ import annotations

import pytest

from webui.ui.inspect_tab import build_request, parse_step_list, run, token_html

# prompt, negative, seed, steps, sampler, cfg, width, height, decode, attention, layers, att steps, walk seed,
# walk prompt, frames, save
VALUES = ["a red circle BREAK blue", "", 5, 3, "Euler", 7.0, 0, 0, "preview", True, ["down", "mid", "up"], "", 6,
          "", 3, True]


def test_the_tab_is_in_the_ui(engine):
    from webui.ui import UiContext, build_ui

    config = str(build_ui(UiContext(engine)).get_config_file())
    for elem in ("tab_inspect", "inspect_run", "inspect_token_view", "inspect_results", "inspect_send_to_txt2img"):
        assert elem in config, elem


def test_run_shows_tokens_steps_maps_and_walk(engine):
    from webui.engine.image_files import read_infotext
    from webui.ui import UiContext

    (image, tokens, x0, noisy, anim, noise, maps, walk, walk_anim, records, status) = run(UiContext(engine), *VALUES)
    assert image.size == (64, 64) and "ls-ok" in status
    assert "chunk 2" in tokens and "ended by BREAK" in tokens and ">circle<" in tokens
    assert next(c for _, c in x0).startswith("step 1") and len(noisy) == 3
    assert anim.startswith('<figure') and "data:image/webp;base64," in anim and noise.size[0] > 100
    assert [c.split()[0] for _, c in maps] == ["a", "red", "circle", "blue"]
    assert [c for _, c in walk] == ["t=0.00", "t=0.50", "t=1.00"] and "data:image/webp" in walk_anim
    assert [r["seed"] for r in records] == [5, 5, 5, 6]
    assert read_infotext(records[0]["path"]) == records[0]["infotext"]  # saved with its infotext
    assert "Seed: 6" in records[3]["infotext"]  # what "Send params to txt2img" pastes


def test_bad_input_is_named_in_the_status_line(engine):
    from webui.ui import UiContext

    values = list(VALUES)
    values[11] = "2-9"
    out = run(UiContext(engine), *values)
    assert "ls-error" in out[-1] and "attention_steps" in out[-1] and out[0] is None
    values[11] = "soon"
    assert "1-5, 8" in run(UiContext(engine), *values)[-1]


def test_step_lists_and_requests(engine):
    from webui.ui import UiContext

    assert parse_step_list("1-3, 8", 10) == [1, 2, 3, 8] and parse_step_list(" ", 10) is None
    with pytest.raises(ValueError):
        parse_step_list("x", 10)
    ireq = build_request(UiContext(engine), *VALUES)
    assert ireq.walk_to_seed == 6 and ireq.walk_to_prompt is None and ireq.request.width is None


def test_token_html_marks_kinds_and_weights(engine):
    view = engine.inspect_tokens("a (red:1.5) circle")
    page = token_html(view)
    assert "ls-tok-bos" in page and "ls-tok-pad" in page and "<sub>1.5</sub>" in page and "1 chunk(s)" in page
