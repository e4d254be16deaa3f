"""A1111's "Prompts from file or textbox": one generation per non-empty line. A line is a prompt, or A1111's
command-line syntax read with shlex:

    --prompt "a red circle" --negative_prompt "blue" --steps 10 --seed 5 --cfg_scale 4 --sampler_name "Euler a"

(tags: prompt, negative_prompt, styles, seed, subseed, subseed_strength, sampler_name, sampler_index, scheduler,
steps, cfg_scale, width, height, batch_size, n_iter, restore_faces, tiling, sd_model, do_not_save_samples,
do_not_save_grid; outpath_samples, outpath_grids and prompt_for_display are ignored: images go to the outputs
folder). A line's prompt goes before ("start") or after ("end") the request's own prompt.

script_args, A1111 1.10's order: [checkbox_iterate ("Iterate seed every line"), checkbox_iterate_batch ("Use same
random seed for all lines"), prompt_position ("start" | "end"), prompt_txt].
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace

from webui.engine import noise
from webui.engine.requests import GenerationRequest, GenerationResult, RequestError
from webui.engine.scripts.base import ArgReader, Script, ScriptArg

TITLE = "Prompts from file or textbox"
MAX_LINES = 1000
IGNORED = ("outpath_samples", "outpath_grids", "prompt_for_display")


def _bool(text: str) -> bool:
    return text == "true"  # as A1111: anything else is false


# tag -> (request field, how its text is read)
TAGS = {
    "prompt": ("prompt", str), "negative_prompt": ("negative_prompt", str), "seed": ("seed", int),
    "subseed": ("subseed", int), "subseed_strength": ("subseed_strength", float),
    "sampler_name": ("sampler_name", str), "scheduler": ("scheduler", str), "steps": ("steps", int),
    "cfg_scale": ("cfg_scale", float), "width": ("width", int), "height": ("height", int),
    "batch_size": ("batch_size", int), "n_iter": ("n_iter", int), "restore_faces": ("restore_faces", _bool),
    "tiling": ("tiling", _bool), "do_not_save_grid": ("batch_grid", lambda text: not _bool(text)),
}


@dataclass
class Lines:
    requests: list[GenerationRequest]
    warnings: list[str] = field(default_factory=list)


def parse_line(line: str, ctx=None) -> dict:
    """A line's tags as request fields (a line without "--" is a prompt). RequestError for a line in the tag
    syntax that cannot be read; a line that does not start with "--" and fails is a prompt (as A1111)."""
    if "--" not in line:
        return {"prompt": line}
    try:
        return _tags(shlex.split(line), ctx)
    except (ValueError, IndexError) as exc:
        if not line.lstrip().startswith("--"):
            return {"prompt": line}
        raise RequestError(f"{TITLE}: line {line!r}: {exc}") from None


def _tags(args: list[str], ctx) -> dict:
    out, pos = {}, 0
    while pos < len(args):
        arg = args[pos]
        if not arg.startswith("--"):
            raise ValueError(f'{arg!r} must start with "--"')
        if pos + 1 >= len(args):
            raise ValueError(f"no value for {arg}")
        tag = arg[2:]
        if tag in ("prompt", "negative_prompt"):  # the words up to the next --tag
            end = next((i for i in range(pos + 1, len(args)) if args[i].startswith("--")), len(args))
            out[tag], pos = " ".join(args[pos + 1:end]), end
            continue
        out.update(_tag(tag, args[pos + 1], ctx))
        pos += 2
    return out


def _tag(tag: str, text: str, ctx) -> dict:
    if tag in IGNORED:
        return {"_ignored": tag}
    if tag in TAGS:
        name, read = TAGS[tag]
        return {name: read(text)}
    if tag == "styles":
        return {"styles": [s.strip() for s in text.split(",") if s.strip()]}
    if tag == "sampler_index":
        names = ctx.sampler_names() if ctx else []
        return {"sampler_name": names[int(text)]}
    if tag == "sd_model":
        return {"checkpoint": ctx.resolve_checkpoint(text) if ctx else text}
    if tag == "do_not_save_samples":
        return {"save_images": not _bool(text)}
    if tag in ("seed_resize_from_h", "seed_resize_from_w"):
        if int(text) > 0:
            raise ValueError("seed resize is not available")
        return {}
    raise ValueError(f"unknown option --{tag}")


def joined(line: str, base: str, position: str) -> str:
    if not line or not base:
        return line or base
    return f"{line} {base}" if position == "start" else f"{base} {line}"


class PromptsFromFile(Script):
    title = TITLE

    def args(self, ctx, mode: str) -> list[ScriptArg]:
        return [ScriptArg("Iterate seed every line", False, kind="checkbox"),
                ScriptArg("Use same random seed for all lines", False, kind="checkbox"),
                ScriptArg("Insert prompts at the", "start", choices=["start", "end"], kind="radio"),
                ScriptArg("List of prompt inputs", "", kind="textarea")]

    def check(self, ctx, request: GenerationRequest, args: list) -> Lines:
        r = ArgReader(TITLE, self.args(ctx, ctx.mode), args)
        iterate, same, position = r.bool(0), r.bool(1), r.choice(2, ["start", "end"])
        lines = [x.strip() for x in r.text(3).splitlines() if x.strip()]
        if not lines:
            raise RequestError(f"{TITLE}: no prompts given (List of prompt inputs is empty)")
        if len(lines) > MAX_LINES:
            raise RequestError(f"{TITLE}: {len(lines)} lines (at most {MAX_LINES})")
        seed = noise.fix_seed(request.seed) if (iterate or same) else request.seed
        out = Lines([])
        for line in lines:
            tags = parse_line(line, ctx)
            if "_ignored" in tags:
                out.warnings.append(f"{TITLE}: --{tags.pop('_ignored')} is ignored (images go to the outputs folder)")
            sub = replace(request, **{"seed": seed, "batch_grid": False, **tags})
            sub.prompt = joined(tags.get("prompt", ""), request.prompt, position) if "prompt" in tags else sub.prompt
            if "negative_prompt" in tags:
                sub.negative_prompt = joined(tags["negative_prompt"], request.negative_prompt, position)
            ctx.plan(sub)
            out.requests.append(sub)
            if iterate:
                seed += request.batch_size * request.n_iter
        return out

    def run(self, ctx, request: GenerationRequest, lines: Lines) -> GenerationResult:
        ctx.begin(sum(r.n_iter for r in lines.requests))
        out = GenerationResult(warnings=list(lines.warnings))
        for sub in lines.requests:
            if ctx.interrupted:
                break
            res = ctx.generate(sub)
            for name in ("images", "infotexts", "seeds", "subseeds", "prompts", "negative_prompts", "paths"):
                getattr(out, name).extend(getattr(res, name))
            out.warnings += [w for w in res.warnings if w not in out.warnings]
            out.model_title, out.params = res.model_title, out.params or dict(res.params)
            out.width, out.height = out.width or res.width, out.height or res.height
        return out
