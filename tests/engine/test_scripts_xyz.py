"""The X/Y/Z plot on tiny models: cells equal to the single images they stand for, labels drawn, Z grids, the grid
saved with its infotext, the checkpoint axis loading each checkpoint once, and bad arguments refused before the
queue."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from webui.engine.image_files import read_infotext
from webui.engine.infotext import parse_infotext
from webui.engine.requests import GenerationRequest, RequestError

TXT_SEED, TXT_STEPS, TXT_CFG, TXT_PROMPT_SR, TXT_CHECKPOINT, TXT_SIGMA_CHURN = 1, 4, 6, 7, 11, 13


def px(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def req(**kw) -> GenerationRequest:
    base = dict(prompt="a red circle", steps=2, width=64, height=64, sampler_name="Euler", seed=1234,
                save_images=False)
    base.update(kw)
    return GenerationRequest(**base)


def xyz_args(x=(0, ""), y=(0, ""), z=(0, ""), legend=True, lone=False, sub_grids=False, keep_random=False,
             margin=0, x_dropdown=()) -> list:
    return [x[0], x[1], list(x_dropdown), y[0], y[1], [], z[0], z[1], [], legend, lone, sub_grids, keep_random,
            False, False, False, margin, False]


def xyz(engine, args, **kw):
    return engine.generate(req(script_name="X/Y/Z plot", script_args=args, **kw))


def cells_of(grid: Image.Image, cols: int, rows: int, size: int = 64, margin: int = 0) -> list[np.ndarray]:
    """The cells of a labelled grid (the label bands are on the top and the left)."""
    left = grid.width - cols * size - (cols - 1) * margin
    top = grid.height - rows * size - (rows - 1) * margin
    a = px(grid)
    return [a[top + r * (size + margin):top + r * (size + margin) + size,
              left + c * (size + margin):left + c * (size + margin) + size] for r in range(rows) for c in range(cols)]


def test_a_2x2_grid_of_seeds_and_cfg_holds_the_single_images_with_labels(engine):
    r = xyz(engine, xyz_args(x=(TXT_SEED, "11, 22"), y=(TXT_CFG, "3, 7"), lone=True))
    assert r.index_of_first_image == 1 and len(r.images) == 5
    grid, lone = r.images[0], r.images[1:]
    cells = cells_of(grid, 2, 2)
    expected = [(11, 3.0), (22, 3.0), (11, 7.0), (22, 7.0)]  # row by row: X across, Y down
    assert r.seeds[1:] == [11, 22, 11, 22]
    for cell, image, (seed, cfg) in zip(cells, lone, expected):
        single = engine.generate(req(seed=seed, cfg_scale=cfg)).images[0]
        assert np.array_equal(cell, px(single)) and np.array_equal(px(image), px(single))
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(cells[i] - cells[j]).mean() > 1.0  # four distinct pictures
    # labels: a band above the columns and one left of the rows, with dark text on white
    left, top = grid.width - 128, grid.height - 128
    assert left > 0 and top > 0
    assert (px(grid)[:top, left:] < 100).any() and (px(grid)[top:, :left] < 100).any()
    info = parse_infotext(r.infotexts[0])
    assert info["Script"] == "X/Y/Z plot" and info["X Type"] == "Seed" and info["Y Type"] == "CFG Scale"
    assert info["X Values"] == "11, 22" and info["Fixed X Values"] == "11, 22"


def test_without_legend_the_grid_is_the_cells_alone_with_margins(engine):
    r = xyz(engine, xyz_args(x=(TXT_STEPS, "1-2"), y=(TXT_SEED, "5"), legend=False, margin=10))
    grid = r.images[0]
    assert grid.size == (64 * 2 + 10, 64) and len(r.images) == 1
    assert np.all(px(grid)[:, 64:74] == 255)  # the margin is background
    single = engine.generate(req(seed=5, steps=2)).images[0]
    assert np.array_equal(px(grid)[:, 74:], px(single))


def test_random_seeds_are_fixed_once_and_written_down(engine):
    r = xyz(engine, xyz_args(x=(TXT_SEED, "-1, -1"), lone=True))
    seeds = r.seeds[1:]
    assert -1 not in seeds and len(set(seeds)) == 2
    assert parse_infotext(r.infotexts[0])["Fixed X Values"] == f"{seeds[0]}, {seeds[1]}"


def test_z_axis_gives_one_grid_per_value_and_a_grid_of_grids(engine):
    r = xyz(engine, xyz_args(x=(TXT_SEED, "1, 2"), z=(TXT_STEPS, "1, 2"), sub_grids=True, lone=True))
    main, sub1, sub2 = r.images[:3]
    assert r.index_of_first_image == 3 and len(r.images) == 3 + 4
    assert sub1.size == sub2.size and main.width >= 2 * sub1.width and main.height > sub1.height
    assert not np.array_equal(px(sub1), px(sub2))
    # the grid of grids holds the sub-grids side by side, under their Z labels
    top = main.height - sub1.height
    assert np.array_equal(px(main)[top:, :sub1.width], px(sub1))
    assert np.array_equal(px(main)[top:, main.width - sub2.width:], px(sub2))
    assert (px(main)[:top] < 100).any()
    assert parse_infotext(r.infotexts[0])["Z Type"] == "Steps" and "Z Type" not in parse_infotext(r.infotexts[1])
    # each cell of the first Z grid is the single image of its seed at 1 step
    single = engine.generate(req(seed=2, steps=1)).images[0]
    assert np.array_equal(cells_of(sub1, 2, 1)[1], px(single))


def test_grid_is_saved_with_its_infotext_and_cells_as_the_request_says(engine):
    r = xyz(engine, xyz_args(x=(TXT_PROMPT_SR, "red, blue")), save_images=True)
    grids = list((engine.settings.outputs_path / "txt2img-grids").rglob("xyz_grid-*.png"))
    assert len(grids) == 1 and grids[0].name == "xyz_grid-0000.png"
    assert r.paths[0] == grids[0]
    info = parse_infotext(read_infotext(Image.open(grids[0])))
    assert info["X Type"] == "Prompt S/R" and info["Prompt"] == "a red circle"
    cells = sorted((engine.settings.outputs_path / "txt2img-images").rglob("*.png"))
    prompts = sorted(parse_infotext(read_infotext(Image.open(p)))["Prompt"] for p in cells)
    assert prompts == ["a blue circle", "a red circle"]


def test_the_checkpoint_axis_loads_each_checkpoint_once(data_dir):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    engine = Engine(Settings(data_dir=data_dir, ckpt="tiny-sd1", checkpoint_cache_size=1))
    try:
        start = engine.load_checkpoint()
        titles = {i.name.split(".")[0]: i.title for i in engine.list_checkpoints()}
        before = engine.models.loads
        # checkpoints across X and seeds down Y: a row-by-row loop would switch 4 times; the plot switches twice
        r = xyz(engine, xyz_args(x=(TXT_CHECKPOINT, ""), y=(TXT_SEED, "1, 2"), lone=True,
                                 x_dropdown=[titles["tiny-sd1-b"], titles["tiny-sd1-c"]]))
        assert engine.models.loads - before == 3  # b, c, then the model active before, back again
        assert engine.models.active.title == start.title
        b1, c1, b2, c2 = r.images[1:]
        assert np.abs(px(b1) - px(c1)).mean() > 1.0 and np.abs(px(b1) - px(b2)).mean() > 1.0
        info = parse_infotext(r.infotexts[0])
        assert info["X Type"] == "Checkpoint name" and titles["tiny-sd1-b"] in info["X Values"]
        assert parse_infotext(r.infotexts[1])["Model"] == "tiny-sd1-b"
        assert parse_infotext(r.infotexts[2])["Model"] == "tiny-sd1-c"
    finally:
        engine.close()


def test_img2img_plot_over_denoising(engine):
    init = Image.new("RGB", (64, 64), (200, 30, 30))
    r = engine.generate(req(init_images=[init], steps=10, script_name="x/y/z plot",
                            script_args=xyz_args(x=("Denoising", "0.2, 0.9"), lone=True)))
    weak, strong = r.images[1:]
    assert np.abs(px(weak) - px(strong)).mean() > 1.0
    for image, strength in ((weak, 0.2), (strong, 0.9)):
        single = engine.generate(req(init_images=[init], steps=10, denoising_strength=strength)).images[0]
        assert np.array_equal(px(image), px(single))
    assert parse_infotext(r.infotexts[2])["Denoising strength"] == "0.9"


@pytest.mark.parametrize("args, words", [
    (xyz_args(x=(TXT_SIGMA_CHURN, "0, 1")), ["Sigma Churn", "not available"]),
    (xyz_args(x=(TXT_SEED, "")), ["no X values"]),
    (xyz_args(x=(TXT_STEPS, "1-100000")), ["at most"]),
    (xyz_args(x=(TXT_STEPS, "0, 2")), ["steps"]),
    (xyz_args(x=(TXT_PROMPT_SR, "green, blue")), ["Prompt S/R", "green"]),
    (xyz_args(x=(TXT_CHECKPOINT, "no-such-model")), ["no-such-model"]),
    (xyz_args(x=(99, "1")), ["axis type", "99"]),
    (xyz_args(x=(TXT_SEED, "1"), margin=-5), ["Grid margins"]),
])
def test_bad_plots_are_refused_before_the_queue(engine, args, words):
    with pytest.raises(RequestError) as err:
        engine.submit(req(script_name="X/Y/Z plot", script_args=args))
    for word in words:
        assert word in str(err.value)
    assert engine.queue.waiting == 0 and engine.queue.current is None


def test_an_interrupted_plot_keeps_the_cells_it_made(engine):
    import threading

    job = engine.submit(req(steps=30, script_name="X/Y/Z plot", script_args=xyz_args(x=(TXT_SEED, "1-4"))))
    while job.state.job_no < 1 or job.state.sampling_step < 2:  # the second cell is sampling
        threading.Event().wait(0.005)
        assert not job.future.done()
    assert job.state.job_count == 4  # the whole plot is one job of four batches
    engine.interrupt()
    r = job.result(timeout=300)
    assert r.interrupted and r.index_of_first_image == 1
    cells = cells_of(r.images[0], 4, 1)
    single = engine.generate(req(seed=1, steps=30)).images[0]
    assert np.array_equal(cells[0], px(single))
    assert (cells[3] == 255).all() and (cells[2] == 255).all()  # never started: left empty
    assert not (cells[1] == 255).all()  # as far as it got
