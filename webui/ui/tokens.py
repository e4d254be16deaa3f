"""Live token counter for the prompt boxes (A1111: `count/limit`, limit = chunks x 75).

Counts with the engine's `token_count` (the active model's tokenizer, or the bundled CLIP one before any load);
without it, with the active model's tokenizer directly. Scheduled prompts and AND parts are counted separately and
the longest is shown.
"""
from __future__ import annotations

import threading


class TokenCounter:
    def __init__(self, engine):
        self.engine = engine
        self._lock = threading.Lock()
        self._encoders: dict[int, object] = {}
        self._fallback = None

    def _tokenizer(self):
        model = self.engine.active_model()
        tok = model.components.get("tokenizer") if model is not None else None
        if tok is not None:
            return tok
        if self._fallback is None:
            from webui import resources

            self._fallback = resources.clip_tokenizer()
        return self._fallback

    def _encoder(self):
        from webui.engine.prompts.encoder import PromptEncoder

        tok = self._tokenizer()
        with self._lock:
            enc = self._encoders.get(id(tok))
            if enc is None:
                # counting needs only the tokenizer; one branch is enough for every family
                enc = PromptEncoder([tok], [None], "sd1")
                self._encoders = {id(tok): enc}
            return enc

    def count(self, text: str, steps: int = 20) -> tuple[int, int]:
        """The longest of the texts the prompt turns into: each step of a `[a:b:when]` / `[a|b]` schedule and each
        `AND` part (A1111 shows the longest). Extra-network tags like `<lora:x:1>` do not count."""
        text = text or ""
        try:
            from webui.engine.prompts.extra_networks import extract_extra_networks

            text, _ = extract_extra_networks(text)
        except Exception:  # noqa: BLE001 - a half-typed tag is fine, count it as text
            pass
        texts = [text]
        try:
            from webui.engine.prompts.schedule import prompt_schedule

            texts = [t for _, t in prompt_schedule(text, max(1, int(steps or 20)))] or [text]
        except Exception:  # noqa: BLE001
            pass
        own = getattr(self.engine, "token_count", None)
        counter = own if callable(own) else self._encoder().token_count
        best = (0, 75)
        for t in dict.fromkeys(texts):
            for part in _split_and(t):
                got = counter(part)
                if got[0] > best[0]:
                    best = got
        return best

    def label(self, text: str, steps: int = 20) -> str:
        try:
            count, limit = self.count(text, steps)
        except Exception:  # noqa: BLE001 - the counter must never break typing
            return "?/75"
        return f"{count}/{limit}"

    def html(self, text: str, steps: int = 20) -> str:
        """The counter as shown over a prompt box; over one chunk it is highlighted (the prompt gets split)."""
        label = self.label(text, steps)
        over = label.split("/")[1] not in ("75", "?") if "/" in label else False
        return f'<span class="ls-count{" ls-over" if over else ""}">{label}</span>'


def _split_and(text: str) -> list[str]:
    """`a AND b :1.2` composes prompts: A1111 counts each sub-prompt and shows the longest."""
    import re

    parts = re.split(r"\bAND\b", text)
    out = []
    for p in parts:
        out.append(re.sub(r"\s*:\s*-?[\d.]+\s*$", "", p))
    return out or [text]
