"""The one base class of the engine's errors, so a caller (UI, API, CLI) can tell "the engine refused or failed
with a message meant for the user" from a bug with one ``except EngineError``."""
from __future__ import annotations


class EngineError(Exception):
    """The base of every error the engine reports to the user; its message says what went wrong and, where it can,
    what to do. Subclasses keep a standard base too (ValueError for bad input, RuntimeError for failures)."""
