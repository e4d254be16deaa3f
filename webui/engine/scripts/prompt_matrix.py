"""A1111's "Prompt matrix": the prompt split at "|" into a base and N optional parts; one image for each of the
2^N combinations (base + the parts that are on), and a grid whose column and row labels show which parts are on
(the ones that are off are grey and struck through).

script_args, A1111's order: [put_at_start, different_seeds, prompt_type ("positive" | "negative"),
variations_delimiter ("comma" | "space"), margin_size].
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from webui.engine import noise
from webui.engine.grids import Label, labelled_grid, prepend_grid
from webui.engine.requests import GenerationRequest, GenerationResult, RequestError
from webui.engine.scripts.base import ArgReader, Script, ScriptArg

TITLE = "Prompt matrix"
MAX_PARTS = 10  # 1024 images


@dataclass
class Matrix:
    parts: list[str]  # the base, then the optional parts
    prompts: list[str]  # one per combination: bit n of its index = part n + 1 is on
    negative: bool  # the negative prompt is the one varied
    different_seeds: bool
    margin: int
    seed: int


class PromptMatrix(Script):
    title = TITLE

    def args(self, ctx, mode: str) -> list[ScriptArg]:
        return [ScriptArg("Set at prompt start", False, kind="checkbox"),
                ScriptArg("Random seeds", False, kind="checkbox"),
                ScriptArg("Prompt type", "positive", choices=["positive", "negative"], kind="radio"),
                ScriptArg("Joining char", "comma", choices=["comma", "space"], kind="radio"),
                ScriptArg("Grid margins", 0, 0, 500, 2, kind="slider")]

    def check(self, ctx, request: GenerationRequest, args: list) -> Matrix:
        r = ArgReader(TITLE, self.args(ctx, ctx.mode), args)
        at_start, different = r.bool(0), r.bool(1)
        negative = r.choice(2, ["positive", "negative"]) == "negative"
        joiner = ", " if r.choice(3, ["comma", "space"]) == "comma" else " "
        parts = (request.negative_prompt if negative else request.prompt).split("|")
        if len(parts) - 1 > MAX_PARTS:
            raise RequestError(f"{TITLE}: {len(parts) - 1} parts separated by | (at most {MAX_PARTS})")
        prompts = [combination(parts, n, at_start, joiner) for n in range(2 ** (len(parts) - 1))]
        matrix = Matrix(parts, prompts, negative, different, r.int(4, 0, 500), noise.fix_seed(request.seed))
        for i, prompt in enumerate(prompts):
            ctx.plan(image_request(request, matrix, i))
        return matrix

    def run(self, ctx, request: GenerationRequest, matrix: Matrix) -> GenerationResult:
        ctx.begin(len(matrix.prompts))
        out = GenerationResult()
        for i in range(len(matrix.prompts)):
            if ctx.interrupted:
                break
            res = ctx.generate(image_request(request, matrix, i))
            merge(out, res)
        if len(out.images) == len(matrix.prompts):
            grid = matrix_grid(out.images, matrix)
            all_saved = len(out.paths) == len(out.images)
            path = ctx.save_grid(grid, out.infotexts[0], "prompt_matrix")
            prepend_grid(out, grid, out.infotexts[0], path if all_saved else None)
        return out


def combination(parts: list[str], number: int, at_start: bool, joiner: str) -> str:
    chosen = [text.strip().strip(",") for n, text in enumerate(parts[1:]) if number & (1 << n)]
    return joiner.join(chosen + [parts[0]] if at_start else [parts[0]] + chosen)


def image_request(request: GenerationRequest, matrix: Matrix, i: int) -> GenerationRequest:
    text = matrix.prompts[i]
    seed = matrix.seed + (i if matrix.different_seeds else 0)
    fields = {"negative_prompt": text} if matrix.negative else {"prompt": text}
    return replace(request, seed=seed, batch_size=1, n_iter=1, batch_grid=False, **fields)


def merge(out: GenerationResult, res: GenerationResult) -> None:
    for name in ("images", "infotexts", "seeds", "subseeds", "prompts", "negative_prompts", "paths"):
        getattr(out, name).extend(getattr(res, name)[:1])
    out.warnings += [w for w in res.warnings if w not in out.warnings]
    out.model_title, out.params = res.model_title, out.params or dict(res.params)
    out.width, out.height = res.width, res.height


def matrix_grid(images: list, matrix: Matrix):
    """Columns for the first half of the parts, rows for the rest; each label lists its parts, on or off."""
    optional = [p.strip() for p in matrix.parts[1:]]
    across = math.ceil(len(optional) / 2)
    cols, rows = 1 << across, 1 << (len(optional) - across)
    col_labels = [[Label(t, bool(pos & (1 << i))) for i, t in enumerate(optional[:across])] for pos in range(cols)]
    row_labels = [[Label(t, bool(pos & (1 << i))) for i, t in enumerate(optional[across:])] for pos in range(rows)]
    return labelled_grid(images, cols, rows, col_labels, row_labels, matrix.margin)
