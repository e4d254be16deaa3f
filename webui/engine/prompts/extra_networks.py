"""Extra-network tags in prompts: ``<lora:name:weight>``, ``<hypernet:name:m>`` ...

A1111 v1.10 rules (``modules/extra_networks.py`` and the built-in Lora
extension):

* Every match of ``<(\\w+):([^>]+)>`` is removed from the prompt text - also
  tags of kinds nobody handles - and nothing else is touched (``"a, <lora:x:1>, b"``
  becomes ``"a, , b"``, exactly as A1111 encodes it).
* The arguments are split on ``:``. An argument ``key=value`` (exactly one
  ``=``) is a named argument, the others are positional; the first positional
  one is the network's name.
* LoRA (``lora``; ``lyco`` is an alias): ``te`` multiplier = 2nd positional or
  1.0, overridden by ``te=``; ``unet`` multiplier = 3rd positional or the ``te``
  multiplier, overridden by ``unet=``; ``dyn`` = 4th positional or ``dyn=``.
* Hypernetwork (``hypernet``): multiplier = 2nd argument or 1.0.

A weight that is not a number raises ``ExtraNetworkError`` (A1111 fails the job
with a ``ValueError``); the message names the tag. Unlike A1111, a weight that is
not finite (``nan``, ``inf``) or beyond +-``MAX_WEIGHT`` is refused too: it can
only turn the fused model weights into NaN/Inf, i.e. a black image.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from webui.engine.requests import RequestError

__all__ = ["ExtraNetwork", "ExtraNetworkError", "extract_extra_networks", "EXTRA_NETWORK_RE"]

EXTRA_NETWORK_RE = re.compile(r"<(\w+):([^>]+)>")

#: The largest multiplier accepted. LoRA weights in use are about -5..5 (sliders up to +-10 or so); at 100 the
#: LoRA's delta already dwarfs the model's weights, and 1e308 overflows them to Inf.
MAX_WEIGHT = 100.0

#: Tag kinds that are another name for a known kind.
ALIASES = MappingProxyType({"lyco": "lora"})


class ExtraNetworkError(RequestError):
    """A malformed extra-network tag; ``str(err)`` is a message for the user."""


@dataclass(frozen=True)
class ExtraNetwork:
    """One tag. ``kind`` is normalised (``lyco`` -> ``lora``); ``tag`` is the text as written."""

    kind: str
    name: str
    items: tuple[str, ...]  # all arguments as written (A1111's ExtraNetworkParams.items)
    positional: tuple[str, ...]
    named: dict[str, str] = field(default_factory=dict, hash=False)
    tag: str = ""

    @property
    def te_multiplier(self) -> float:
        value = _number(self, self.positional[1]) if len(self.positional) > 1 else 1.0
        return _number(self, self.named["te"]) if "te" in self.named else value

    @property
    def unet_multiplier(self) -> float:
        value = _number(self, self.positional[2]) if len(self.positional) > 2 else self.te_multiplier
        return _number(self, self.named["unet"]) if "unet" in self.named else value

    @property
    def dyn_dim(self) -> int | None:
        value = _integer(self, self.positional[3]) if len(self.positional) > 3 else None
        return _integer(self, self.named["dyn"]) if "dyn" in self.named else value

    @property
    def multiplier(self) -> float:
        """The main weight: the LoRA text-encoder multiplier, or the 2nd argument of other kinds."""
        if self.kind == "lora":
            return self.te_multiplier
        items = self.items
        return _number(self, items[1]) if len(items) > 1 else 1.0


def _number(net: ExtraNetwork, text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ExtraNetworkError(f"{net.tag or net.name}: {text!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > MAX_WEIGHT:
        raise ExtraNetworkError(f"{net.tag or net.name}: weight {text.strip()!r} is out of range "
                                f"(a finite number between -{MAX_WEIGHT:g} and {MAX_WEIGHT:g})")
    return value


def _integer(net: ExtraNetwork, text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ExtraNetworkError(f"{net.tag or net.name}: {text!r} is not a whole number") from None


def _parse(match: re.Match) -> ExtraNetwork:
    kind = match.group(1)
    items = match.group(2).split(":")
    positional: list[str] = []
    named: dict[str, str] = {}
    for item in items:
        parts = item.split("=")
        if len(parts) == 2:
            named[parts[0].strip()] = parts[1].strip()
        else:
            positional.append(item)
    name = positional[0].strip() if positional else ""
    net = ExtraNetwork(
        kind=ALIASES.get(kind.lower(), kind.lower()),
        name=name,
        items=tuple(items),
        positional=tuple(positional),
        named=named,
        tag=match.group(0),
    )
    if not name:
        raise ExtraNetworkError(f"{match.group(0)}: the network's name is missing")
    # validate the numbers now, so a bad tag fails before any work is done
    if net.kind == "lora":
        net.te_multiplier, net.unet_multiplier, net.dyn_dim
    else:
        net.multiplier
    return net


def extract_extra_networks(text: str) -> tuple[str, list[ExtraNetwork]]:
    """Remove every ``<kind:args>`` tag from ``text``; return the text and the tags in order.

    >>> text, nets = extract_extra_networks("a cat <lora:detail:0.5> <hypernet:anime:0.7>")
    >>> text, [(n.kind, n.name, n.multiplier) for n in nets]
    ('a cat  ', [('lora', 'detail', 0.5), ('hypernet', 'anime', 0.7)])
    """
    found: list[ExtraNetwork] = []

    def remove(match: re.Match) -> str:
        found.append(_parse(match))
        return ""

    return EXTRA_NETWORK_RE.sub(remove, text), found
