"""From a request's prompt fields to the per-image texts that get encoded: styles, then `#` comments removed, then
wildcards (seeded by each image's seed), then extra networks (`<lora:...>`) pulled out of the text."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from webui.engine.prompts.extra_networks import ExtraNetwork, extract_extra_networks
from webui.engine.prompts.styles import StyleStore
from webui.engine.prompts.wildcards import WildcardError, WildcardExpander, has_wildcard_syntax


@dataclass
class PreparedPrompts:
    prompts: list[str]  # as written into the infotext (extra-network tags kept, like A1111)
    negative_prompts: list[str]
    seeds: list[int]
    networks: list[list[ExtraNetwork]] = field(default_factory=list)  # per image, from prompt and negative
    params: dict = field(default_factory=dict)  # extra infotext params (Template, Styles array)
    warnings: list[str] = field(default_factory=list)

    def encoder_texts(self) -> tuple[list[str], list[str]]:
        """The texts given to the text encoder: extra-network tags removed."""
        return ([extract_extra_networks(p)[0] for p in self.prompts],
                [extract_extra_networks(n)[0] for n in self.negative_prompts])


def strip_comments(text: str) -> str:
    """A1111 1.8's prompt comments: `#` to the end of the line is dropped; a line that starts with `#` goes whole."""
    if "#" not in text:
        return text
    lines = [line for line in text.split("\n") if not line.startswith("#")]
    return "\n".join(line.split("#", 1)[0] for line in lines)


def prepare_prompts(prompt: str, negative: str, style_names: list[str], seeds: list[int],
                    styles: StyleStore | None, wildcards: WildcardExpander | None,
                    combinatorial: bool = False, max_combinations: int = 100) -> PreparedPrompts:
    params: dict = {}
    warnings: list[str] = []
    if style_names:
        if styles is None:
            raise ValueError("styles were requested but no styles file is configured")
        found, missing = styles.known(style_names)
        if missing:  # as A1111: a style that is not there is skipped (said here, not silently)
            warnings.append(f"Style{'s' if len(missing) > 1 else ''} not found and ignored: "
                            f"{', '.join(repr(m) for m in missing)}")
        prompt, negative = styles.apply(prompt, negative, found)
        if found:
            params["Styles array"] = json.dumps(found)
    prompt, negative = strip_comments(prompt), strip_comments(negative)

    pos, neg = [prompt] * len(seeds), [negative] * len(seeds)
    if wildcards is not None and (has_wildcard_syntax(prompt) or has_wildcard_syntax(negative)):
        try:
            if combinatorial:
                pos = wildcards.combinations(prompt, max_combinations) or [prompt]
                seeds = [seeds[0] + i for i in range(len(pos))]
                neg = [wildcards.expand(negative, s) for s in seeds]
            else:
                pos = [wildcards.expand(prompt, s) for s in seeds]
                neg = [wildcards.expand(negative, s) for s in seeds]
            if any(p != prompt for p in pos):
                params["Template"] = prompt
            if any(n != negative for n in neg):
                params["Negative Template"] = negative
        except WildcardError as exc:
            warnings.append(f"Wildcards: {exc} (the prompt was used as written)")
            pos, neg = [prompt] * len(seeds), [negative] * len(seeds)
    networks = [extract_extra_networks(p)[1] + extract_extra_networks(n)[1] for p, n in zip(pos, neg)]
    return PreparedPrompts(pos, neg, list(seeds), networks, params, warnings)


def longest_count(count, text: str, steps: int = 20) -> tuple[int, int]:
    """A1111's token counter: (count, limit) of the longest text the prompt turns into - each step of a
    `[a:b:when]` / `[a|b]` schedule and each `AND` part - with comments and `<lora:...>` tags left out.
    `count(text) -> (count, limit)` is the model's tokenizer count."""
    from webui.engine.prompts.schedule import prompt_schedule

    text = strip_comments(text or "")
    try:
        text = extract_extra_networks(text)[0]
        texts = [t for _, t in prompt_schedule(text, max(1, int(steps or 20)))] or [text]
    except Exception:  # noqa: BLE001 - a half-typed tag or schedule is counted as plain text
        texts = [text]
    best = (0, 75)
    for t in dict.fromkeys(texts):
        for part in re.split(r"\bAND\b", t):
            got = count(re.sub(r"\s*:\s*-?[\d.]+\s*$", "", part))  # `a AND b :1.2`: the weight is no token
            best = got if got[0] > best[0] else best
    return best
