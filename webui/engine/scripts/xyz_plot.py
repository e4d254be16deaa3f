"""A1111's "X/Y/Z plot": one sub-generation per combination of up to three axes' values, drawn as a labelled grid
(one grid per Z value, plus a grid of those grids).

script_args, A1111 1.10's order (18): x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown,
z_type, z_values, z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds,
vary_seeds_x, vary_seeds_y, vary_seeds_z, margin_size, csv_mode. Older clients send 16 (no vary_seeds_*, then
margin_size, csv_mode, raw_mode) or 14: both are read by their length. Axis types are indexes into the tab's axis
list (webui/engine/scripts/xyz_axes.py) or axis names.

Results, as A1111's: the grid first, then the sub-grids (with "Include Sub Grids" and more than one Z value), then
each cell's image ("Include Sub Images"). The costliest axis (Checkpoint name) is the outermost loop, so each
checkpoint is loaded once.
"""
from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass, replace

from PIL import Image

from webui.engine import noise
from webui.engine.errors import EngineError
from webui.engine.grids import Label, labelled_grid
from webui.engine.infotext import build_infotext
from webui.engine.requests import GenerationRequest, GenerationResult, RequestError
from webui.engine.scripts.base import ArgReader, Script, ScriptArg
from webui.engine.scripts.xyz_axes import Axis, axes_for, find_axis
from webui.engine.scripts.xyz_values import float_values, int_values, split_values

TITLE = "X/Y/Z plot"
MAX_CELLS = 1024  # every cell is a generation: a plot bigger than this is surely a typo in a range
MAX_GRID_PIXELS = 200_000_000  # A1111's img_max_size_mp
SEED_AXES = ("Seed", "Var. seed")
NAMES = "XYZ"


@dataclass
class AxisValues:
    axis: Axis
    values: list
    text: str  # as given (the infotext's "X Values")


@dataclass
class Plot:
    axes: list[AxisValues]  # X, Y, Z
    legend: bool
    lone_images: bool
    sub_grids: bool
    fixed_seeds: bool
    margin: int
    requests: dict  # (ix, iy, iz) -> the cell's GenerationRequest

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(len(a.values) for a in self.axes)


class XyzPlot(Script):
    title = TITLE

    def args(self, ctx, mode: str) -> list[ScriptArg]:
        labels = [a.label for a in axes_for(mode)]
        out = []
        for name, default in zip(NAMES, ("Seed", "Nothing", "Nothing")):
            out += [ScriptArg(f"{name} type", default, choices=labels, kind="dropdown"),
                    ScriptArg(f"{name} values", ""),
                    ScriptArg(f"{name} values", [], kind="multiselect")]
        out += [ScriptArg("Draw legend", True, kind="checkbox"),
                ScriptArg("Include Sub Images", False, kind="checkbox"),
                ScriptArg("Include Sub Grids", False, kind="checkbox"),
                ScriptArg("Keep -1 for seeds", False, kind="checkbox"),
                *(ScriptArg(f"Vary seeds for {n}", False, kind="checkbox") for n in NAMES),
                ScriptArg("Grid margins (px)", 0, 0, 500, 2, kind="slider"),
                ScriptArg("Use text inputs instead of dropdowns", False, kind="checkbox")]
        return out

    # ---- before the queue ------------------------------------------------------------------------------------
    def check(self, ctx, request: GenerationRequest, args: list) -> Plot:
        r = ArgReader(TITLE, self.args(ctx, ctx.mode), current_layout(args))
        keep_random, csv_mode = r.bool(12), r.bool(17)
        base = request if keep_random else replace(request, seed=noise.fix_seed(request.seed),
                                                     subseed=noise.fix_seed(request.subseed))
        axes = [self._axis(ctx, r, i, csv_mode, base, keep_random) for i in range(3)]
        plot = Plot(axes, r.bool(9), r.bool(10), r.bool(11), not keep_random, r.int(16, 0, 500), {})
        count = len(axes[0].values) * len(axes[1].values) * len(axes[2].values)
        if count > MAX_CELLS:
            raise RequestError(f"{TITLE}: {count} cells (at most {MAX_CELLS})")
        side = (base.width or 512) * (base.height or 512)
        if count * side > MAX_GRID_PIXELS:
            raise RequestError(f"{TITLE}: the grid would have {count * side / 1e6:.0f} megapixels (at most "
                               f"{MAX_GRID_PIXELS // 1_000_000})")
        vary = [r.bool(13), r.bool(14), r.bool(15)]
        for index in itertools.product(*(range(n) for n in plot.shape)):
            cell = cell_request(base, plot, index, vary)
            ctx.plan(cell)  # every cell's values checked now (steps, sizes, samplers ...), not halfway through
            plot.requests[index] = cell
        return plot

    def _axis(self, ctx, r: ArgReader, i: int, csv_mode: bool, base: GenerationRequest,
              keep_random: bool) -> AxisValues:
        name = NAMES[i]
        axis = find_axis(ctx.mode, r.raw(3 * i))
        if axis.label == "Nothing":
            return AxisValues(axis, [None], "")
        if not axis.supported:
            raise RequestError(f"{TITLE}: the {name} axis {axis.label!r} is not available in this app")
        dropdown = r.texts(3 * i + 2)
        use_dropdown = axis.choices is not None and not csv_mode and dropdown
        text = to_csv(dropdown) if use_dropdown else r.text(3 * i + 1, 100_000)
        raw = dropdown if use_dropdown else split_values(text)
        if not raw:
            raise RequestError(f"{TITLE}: no {name} values given for {axis.label}")
        try:
            values = read_values(ctx, axis, raw, base)
        except EngineError as exc:  # a bad number, sampler, checkpoint ... named with its axis
            raise RequestError(f"{TITLE}: {name} values ({axis.label}): {exc}") from None
        if axis.label in SEED_AXES and not keep_random:
            values = [noise.fix_seed(v) for v in values]
        return AxisValues(axis, values, text)

    # ---- in the worker ---------------------------------------------------------------------------------------
    def run(self, ctx, request: GenerationRequest, plot: Plot) -> GenerationResult:
        ctx.begin(len(plot.requests) * request.n_iter)
        results = {}
        for index in loop_order(plot):
            if ctx.interrupted:
                break
            results[index] = ctx.generate(plot.requests[index])
        return assemble(ctx, plot, results)


def current_layout(args: list) -> list:
    """Old clients' 14 or 16 arguments (no vary_seeds_*; margin_size, csv_mode, raw_mode) in 1.10's layout."""
    if isinstance(args, (list, tuple)) and 14 <= len(args) <= 16:
        return [*args[:13], False, False, False, *args[13:15]]
    return args


def to_csv(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue().strip()


def read_values(ctx, axis: Axis, raw: list[str], base: GenerationRequest) -> list:
    if axis.kind == "int":
        values = int_values(raw)
    elif axis.kind == "float":
        values = float_values(raw)
    else:
        values = list(raw)
    if axis.label == "Prompt S/R" and values[0] not in base.prompt and values[0] not in base.negative_prompt:
        raise RequestError(f"Prompt S/R did not find {values[0]!r} in the prompt or the negative prompt")
    if axis.label == "Prompt order":
        missing = [t for t in values if t not in base.prompt]
        if missing:
            raise RequestError(f"Prompt order: {', '.join(map(repr, missing))} not in the prompt")
    return axis.confirm(ctx, values) if axis.confirm else values


def cell_request(base: GenerationRequest, plot: Plot, index: tuple[int, int, int], vary: list[bool]):
    req = replace(base, styles=list(base.styles), override_settings=dict(base.override_settings))
    for av, i in zip(plot.axes, index):
        req = av.axis.apply(req, av.values[i], av.values)
    if req.seed != -1:
        nx, ny, _ = plot.shape
        xdim, ydim = (nx if vary[0] else 1), (ny if vary[1] else 1)
        req.seed += (index[0] if vary[0] else 0) + (index[1] * xdim if vary[1] else 0) + \
            (index[2] * xdim * ydim if vary[2] else 0)
    return req


def loop_order(plot: Plot) -> list[tuple[int, int, int]]:
    """Cells in A1111's loop order: Z outermost, then Y, then X, unless an axis costs more to change (a
    checkpoint): the costliest one is outermost, so each of its values is set up once."""
    costs = [a.axis.cost for a in plot.axes]
    outer = [2, 1, 0]
    for first in (0, 1, 2):
        others = [j for j in (0, 1, 2) if j != first]
        if all(costs[first] > costs[j] for j in others):
            second = max(reversed(others), key=lambda j: costs[j])
            outer = [first, second, [j for j in others if j != second][0]]
    return sorted(plot.requests, key=lambda index: tuple(index[j] for j in outer))


# ---- the grids and the result ------------------------------------------------------------------------------------

def assemble(ctx, plot: Plot, results: dict) -> GenerationResult:
    nx, ny, nz = plot.shape
    xs, ys, zs = plot.axes
    done = [res for res in results.values() if res.images]
    if not done:
        return GenerationResult(interrupted=True, warnings=["X/Y/Z plot: no image was made"])
    first = done[0]

    def image(index):
        res = results.get(index)
        return res.images[0] if res is not None and res.images else None

    cols = [[Label(xs.axis.format(v))] for v in xs.values] if plot.legend else None
    rows = [[Label(ys.axis.format(v))] for v in ys.values] if plot.legend else None
    subgrids = [labelled_grid([image((ix, iy, iz)) for iy in range(ny) for ix in range(nx)], nx, ny, cols, rows,
                              plot.margin) for iz in range(nz)]
    main = subgrids[0]
    if nz > 1:
        titles = [[Label(zs.axis.format(v))] for v in zs.values] if plot.legend else None
        main = labelled_grid(subgrids, nz, 1, titles, None)
    out = GenerationResult(width=first.width, height=first.height, model_title=first.model_title,
                           params=dict(first.params))
    grids = [(main, grid_infotext(plot, results, 0, with_z=True))]
    if plot.sub_grids and nz > 1:
        grids += [(g, grid_infotext(plot, results, iz)) for iz, g in enumerate(subgrids)]
    for grid, info in grids:
        add(out, grid, info, first, 0, ctx.save_grid(grid, info, "xyz_grid"))
    out.index_of_first_image = len(grids)
    if plot.lone_images:
        for index in sorted(results, key=lambda i: (i[2], i[1], i[0])):
            res = results[index]
            if res.images:
                add(out, res.images[0], res.infotexts[0], res, 0, res.paths[0] if res.paths else None)
    for res in results.values():
        out.warnings += [w for w in res.warnings if w not in out.warnings]
        out.interrupted = out.interrupted or res.interrupted
    return out


def add(out: GenerationResult, image: Image.Image, info: str, res: GenerationResult, k: int, path) -> None:
    out.images.append(image)
    out.infotexts.append(info)
    out.seeds.append(res.seeds[k])
    out.subseeds.append(res.subseeds[k])
    out.prompts.append(res.prompts[k])
    out.negative_prompts.append(res.negative_prompts[k])
    if path is not None:
        out.paths.append(path)


def grid_infotext(plot: Plot, results: dict, iz: int, with_z: bool = False) -> str:
    """The first cell's infotext with the plot's keys (Script, X Type, X Values, Fixed X Values ...)."""
    res = results.get((0, 0, iz)) or next(r for r in results.values() if r.images)
    params = dict(res.params, Seed=res.seeds[0], Script=TITLE)
    if res.params.get("Variation seed strength"):
        params["Variation seed"] = res.subseeds[0]
    for name, av in zip(NAMES, plot.axes):
        if av.axis.label == "Nothing" or (name == "Z" and not with_z):
            continue
        params[f"{name} Type"] = av.axis.label
        params[f"{name} Values"] = av.text
        if av.axis.label in SEED_AXES and plot.fixed_seeds:
            params[f"Fixed {name} Values"] = ", ".join(str(v) for v in av.values)
    version = params.pop("Version", None)
    params["Version"] = version
    return build_infotext(res.prompts[0], res.negative_prompts[0], params)
