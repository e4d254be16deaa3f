"""Live token counter for the prompt boxes (A1111: `count/limit`, limit = chunks x 75), from the engine's
`token_count` (the active model's tokenizer, or the bundled CLIP one before any load)."""
from __future__ import annotations


class TokenCounter:
    def __init__(self, engine):
        self.engine = engine

    def label(self, text: str, steps: int = 20) -> str:
        try:
            count, limit = self.engine.token_count(text or "", steps)
        except Exception:  # noqa: BLE001 - the counter must never break typing
            return "?/75"
        return f"{count}/{limit}"

    def html(self, text: str, steps: int = 20) -> str:
        """The counter as shown over a prompt box; over one chunk it is highlighted (the prompt gets split)."""
        label = self.label(text, steps)
        over = label.split("/")[1] not in ("75", "?") if "/" in label else False
        return f'<span class="ls-count{" ls-over" if over else ""}">{label}</span>'
