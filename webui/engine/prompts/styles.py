"""Prompt styles stored in an A1111-compatible ``styles.csv``.

File format (A1111 v1.10): UTF-8 with BOM, header ``name,prompt,negative_prompt``
(the old ``name,text`` header is read too), standard CSV quoting. Rows whose name
starts with ``#`` are comments: A1111 skips them; here they are kept and written
back in place. Writes are atomic (temp file + ``os.replace``) and the previous
file is kept as ``styles.csv.bak``. The file is re-read whenever it changed on
disk, so hand edits are picked up.

Applying a style (A1111's ``merge_prompts``): if the style text contains
``{prompt}``, every ``{prompt}`` is replaced by the prompt; otherwise the prompt
and the style text, each stripped, are joined with ``", "`` (an empty one is
left out). Several styles apply in the order given, each to the result of the
previous one; the negative prompt is handled the same way with the styles'
negative texts. Unlike A1111, which silently skips unknown names, an unknown
style name raises ``StyleError``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from webui.engine.requests import RequestError
from webui.settings import atomic_write_text

__all__ = ["PromptStyle", "StyleError", "StyleStore", "merge_prompts", "apply_styles_to_prompt"]

FIELDS = ("name", "prompt", "negative_prompt")


class StyleError(RequestError):
    """An unknown, duplicate or invalid style; ``str(err)`` is a message for the user."""


@dataclass(frozen=True)
class PromptStyle:
    name: str
    prompt: str = ""
    negative_prompt: str = ""


def merge_prompts(style_prompt: str, prompt: str) -> str:
    """Apply one style text to ``prompt`` (A1111's rule, see the module docstring)."""
    if "{prompt}" in style_prompt:
        return style_prompt.replace("{prompt}", prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


def apply_styles_to_prompt(prompt: str, style_prompts: Iterable[str]) -> str:
    for style_prompt in style_prompts:
        prompt = merge_prompts(style_prompt, prompt)
    return prompt


class StyleStore:
    """The styles of one ``styles.csv`` (the file need not exist until the first write)."""

    def __init__(self, csv_path: str | os.PathLike) -> None:
        self.path = Path(csv_path)
        self._lock = threading.RLock()
        self._entries: list[PromptStyle | dict] = []  # styles, and comment rows kept verbatim
        self._signature: tuple | None = None
        self._loaded = False

    # -- reading --------------------------------------------------------------------------

    def _file_signature(self) -> tuple | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _refresh(self) -> None:
        signature = self._file_signature()
        if self._loaded and signature == self._signature:
            return
        self._entries = self._read() if signature is not None else []
        self._signature = signature
        self._loaded = True

    def _read(self) -> list[PromptStyle | dict]:
        entries: list[PromptStyle | dict] = []
        with open(self.path, "r", encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, skipinitialspace=True)
            for row in reader:
                if not row or row.get("name") is None:
                    continue
                name = row["name"]
                if name.startswith("#"):
                    entries.append({k: v for k, v in row.items() if k is not None})
                    continue
                prompt = row.get("prompt") if "prompt" in row else row.get("text")
                entries.append(PromptStyle(name, prompt or "", row.get("negative_prompt") or ""))
        # later rows with the same name win, as in A1111's dict
        by_name: dict[str, int] = {}
        deduped: list[PromptStyle | dict] = []
        for entry in entries:
            if isinstance(entry, PromptStyle):
                if entry.name in by_name:
                    deduped[by_name[entry.name]] = entry
                    continue
                by_name[entry.name] = len(deduped)
            deduped.append(entry)
        return deduped

    def list(self) -> list[PromptStyle]:
        """All styles, in file order."""
        with self._lock:
            self._refresh()
            return [e for e in self._entries if isinstance(e, PromptStyle)]

    def names(self) -> list[str]:
        return [s.name for s in self.list()]

    def get(self, name: str) -> PromptStyle:
        for style in self.list():
            if style.name == name:
                return style
        raise StyleError(f"Unknown style {name!r}")

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.list())

    # -- applying -------------------------------------------------------------------------

    def known(self, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """``names`` split into the styles that exist and those that do not (None/""/"None" dropped)."""
        names = [n for n in names if n not in (None, "", "None")]
        with self._lock:
            self._refresh()
            have = {e.name for e in self._entries if isinstance(e, PromptStyle)}
        return [n for n in names if n in have], [n for n in names if n not in have]

    def apply(self, prompt: str, negative: str, names: Iterable[str]) -> tuple[str, str]:
        """``(prompt, negative)`` with the styles ``names`` applied in order."""
        names = [n for n in names if n not in (None, "", "None")]
        if not names:
            return prompt, negative
        with self._lock:
            self._refresh()
            known = {e.name: e for e in self._entries if isinstance(e, PromptStyle)}
        missing = [n for n in names if n not in known]
        if missing:
            raise StyleError(
                f"Unknown style{'s' if len(missing) > 1 else ''}: {', '.join(repr(m) for m in missing)}"
            )
        styles = [known[n] for n in names]
        return (
            apply_styles_to_prompt(prompt, [s.prompt for s in styles]),
            apply_styles_to_prompt(negative, [s.negative_prompt for s in styles]),
        )

    # -- writing ---------------------------------------------------------------------------

    def create(self, name: str, prompt: str = "", negative_prompt: str = "") -> PromptStyle:
        """Add a new style; ``StyleError`` if the name is taken or invalid."""
        style = PromptStyle(_check_name(name), prompt or "", negative_prompt or "")
        with self._lock:
            self._refresh()
            if any(isinstance(e, PromptStyle) and e.name == style.name for e in self._entries):
                raise StyleError(f"A style named {style.name!r} already exists")
            self._write(self._entries + [style])
        return style

    def update(
        self,
        name: str,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        *,
        new_name: str | None = None,
    ) -> PromptStyle:
        """Change an existing style (only the fields given); it keeps its place in the file."""
        with self._lock:
            self._refresh()
            entries = list(self._entries)
            index = _index_of(entries, name)
            old = entries[index]
            target = _check_name(new_name) if new_name is not None else old.name
            if target != old.name and _has(entries, target):
                raise StyleError(f"A style named {target!r} already exists")
            new = PromptStyle(
                target,
                old.prompt if prompt is None else prompt,
                old.negative_prompt if negative_prompt is None else negative_prompt,
            )
            entries[index] = new
            self._write(entries)
        return new

    def save(self, style: PromptStyle) -> PromptStyle:
        """Create or replace ``style`` (by name)."""
        with self._lock:
            self._refresh()
            if _has(self._entries, style.name):
                return self.update(style.name, style.prompt, style.negative_prompt)
            return self.create(style.name, style.prompt, style.negative_prompt)

    def delete(self, name: str) -> None:
        with self._lock:
            self._refresh()
            entries = list(self._entries)
            del entries[_index_of(entries, name)]
            self._write(entries)

    def _write(self, entries: list[PromptStyle | dict]) -> None:
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(FIELDS), extrasaction="ignore")
        writer.writeheader()
        for entry in entries:
            if isinstance(entry, PromptStyle):
                writer.writerow({"name": entry.name, "prompt": entry.prompt, "negative_prompt": entry.negative_prompt})
            else:
                writer.writerow({k: entry.get(k) or "" for k in FIELDS})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            shutil.copy2(self.path, self.path.with_name(self.path.name + ".bak"))
        atomic_write_text(self.path, buffer.getvalue(), encoding="utf-8-sig")
        self._entries = list(entries)
        self._signature = self._file_signature()
        self._loaded = True


def _check_name(name: str | None) -> str:
    if name is None or not str(name).strip():
        raise StyleError("A style needs a name")
    name = str(name).strip()
    if name.startswith("#"):
        raise StyleError("A style name cannot start with '#' (styles.csv treats such rows as comments)")
    if name == "None":
        raise StyleError("'None' is reserved and cannot be used as a style name")
    return name


def _has(entries, name: str) -> bool:
    return any(isinstance(e, PromptStyle) and e.name == name for e in entries)


def _index_of(entries, name: str) -> int:
    for index, entry in enumerate(entries):
        if isinstance(entry, PromptStyle) and entry.name == name:
            return index
    raise StyleError(f"Unknown style {name!r}")
