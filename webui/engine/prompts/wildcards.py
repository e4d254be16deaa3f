"""Wildcards and variants (sd-dynamic-prompts syntax) on top of the ``dynamicprompts`` library.

Syntax (all handled by ``dynamicprompts``): ``__name__`` = a random line of
``<folder>/name.txt`` (subfolders: ``__animals/cats__``, globs ``__animals/*__``;
``#`` lines are comments), ``{a|b|c}`` variants, ``{0.5::a|b}`` weights,
``{2$$a|b|c}`` pick two (joined with ``,``), ``{1-2$$a|b|c}`` ranges, nesting.
Everything else - ``(x:1.2)``, ``[a:b:0.5]``, ``[a|b]``, ``<lora:x:1>`` - is
passed through untouched, also inside wildcard files.

``expand(template, seed)`` uses dynamicprompts' random sampler seeded with the
image seed (what sd-dynamic-prompts does by default), so the same seed gives
the same prompt and a batch with consecutive seeds gets different expansions.

Errors never crash a job: a missing wildcard file, a name that tries to leave
the folder (``__../../x__``, absolute paths), a wildcard that includes itself,
or a syntax dynamicprompts cannot parse (``{a|b`` , a stray ``__``) raise
``WildcardError`` with a message meant for the user; the caller puts it in
the job result. (dynamicprompts itself would silently leave ``__missing__``
in the prompt and only log a warning.)

Names can only select files that dynamicprompts found under the folder: a name
is a lookup key in the tree it builds, never a path that is opened; names with
``..``, a leading ``/``, ``~``, a drive letter or NUL are rejected up front.
``read``/``write``/``delete`` resolve names the same way and refuse anything
that resolves outside the folder (symlinks included). Expansion sees the same
files: the tree of names is built from the folder's files whose real path
(symlinks resolved) stays inside the real folder, so ``__linkdir/secret__``
with ``linkdir`` a symlink to another folder is "not found"; each real folder is
walked once, so symlink loops cannot make the walk explode.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from dynamicprompts.generators import CombinatorialPromptGenerator, RandomPromptGenerator
from dynamicprompts.wildcards import WildcardManager
from dynamicprompts.wildcards.tree import WildcardTree
# private helper (dynamicprompts is pinned): name + collection(s) of one .txt/.json/.yaml file, as its own walk does
from dynamicprompts.wildcards.tree.build import _get_wildcard_collections_from_path

from webui.engine.requests import RequestError
from webui.settings import atomic_write_text

__all__ = ["WildcardError", "WildcardExpander", "has_wildcard_syntax"]

_NAME_OK = re.compile(r"^[^\x00]+$")
_DRIVE = re.compile(r"^[A-Za-z]:")


class WildcardError(RequestError):
    """A prompt's wildcards could not be expanded; ``str(err)`` is a message for the user."""


def has_wildcard_syntax(template: str) -> bool:
    """Whether ``template`` uses anything dynamicprompts would expand (``{...}`` or ``__name__``)."""
    return "{" in template or "}" in template or "__" in template


def _check_name(name: str) -> str:
    """Normalise a wildcard name (``animals/cats``); raise ``WildcardError`` for unsafe ones."""
    raw = name
    name = name.strip()
    if name.startswith("__") and name.endswith("__") and len(name) > 4:
        name = name[2:-2]
    if not name or not _NAME_OK.match(name):
        raise WildcardError(f"Invalid wildcard name {raw!r}")
    unified = name.replace("\\", "/")
    parts = unified.split("/")
    if (
        unified.startswith("/")
        or unified.startswith("~")
        or _DRIVE.match(unified)
        or any(part in ("..", ".") for part in parts)
        or any(part == "" for part in parts)
    ):
        raise WildcardError(f"Invalid wildcard name {raw!r}: names are relative to the wildcards folder")
    return unified


def _files_inside(root: Path):
    """The files under ``root`` (symlinks followed) whose real path is inside the real ``root``; hidden folders
    skipped like dynamicprompts does, and each real folder walked once (no symlink loops)."""
    real_root = root.resolve()
    seen: set[Path] = set()
    for dirname, dirnames, filenames in os.walk(root, followlinks=True):
        real_dir = Path(dirname).resolve()
        if real_dir in seen or not real_dir.is_relative_to(real_root):
            dirnames[:] = []
            continue
        seen.add(real_dir)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = Path(dirname) / filename
            if path.resolve().is_relative_to(real_root):
                yield path


class _CheckedManager(WildcardManager):
    """A WildcardManager that reports unsafe names and missing wildcards instead of ignoring them, and only sees
    files that really are inside its folder."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.requested: list[str] = []

    @property
    def tree(self) -> WildcardTree:
        if self._tree is None:
            found = {}
            if self._path is not None and self._path.is_dir():
                for path in _files_inside(self._path):
                    found.update(_get_wildcard_collections_from_path(file_path=path, root_path=self._path))
            self._tree = WildcardTree.from_map(found)
        return self._tree

    def get_values(self, wildcard: str):
        name = _check_name(wildcard)
        self.requested.append(name)
        values = super().get_values(name)
        if len(values) == 0:
            raise WildcardError(f"Wildcard __{name}__ not found (no {name}.txt in the wildcards folder, or it is empty)")
        return values


class WildcardExpander:
    """Expand wildcard templates from the files in ``folder`` (``models/wildcards``)."""

    def __init__(self, folder: str | os.PathLike, *, max_combinations: int = 1000) -> None:
        self.folder = Path(folder)
        self.max_combinations = int(max_combinations)
        self._lock = threading.Lock()
        self._manager = _CheckedManager(self.folder)

    # -- expansion ---------------------------------------------------------------------

    def expand(self, template: str, seed: int) -> str:
        """One random expansion of ``template``, reproducible from ``seed`` (the image seed)."""
        if not has_wildcard_syntax(template):
            return template
        return self._run(lambda manager: RandomPromptGenerator(manager, seed=int(seed)).generate(template, 1), template)[0]

    def expand_batch(self, template: str, seeds: list[int]) -> list[str]:
        """``expand(template, seed)`` for each seed."""
        return [self.expand(template, seed) for seed in seeds]

    def combinations(self, template: str, limit: int | None = None) -> list[str]:
        """Every combination of ``template`` (combinatorial mode), at most ``limit`` (default ``max_combinations``)."""
        if not has_wildcard_syntax(template):
            return [template]
        cap = self.max_combinations if limit is None else max(0, min(int(limit), self.max_combinations))
        if cap == 0:
            return []
        return self._run(lambda manager: CombinatorialPromptGenerator(manager).generate(template, cap), template)

    def _run(self, generate, template: str) -> list[str]:
        with self._lock:
            manager = self._manager
            manager.clear_cache()  # see files added or edited since the last call
            manager.requested = []
            try:
                return [str(p) for p in generate(manager)]
            except WildcardError:
                raise
            except RecursionError:
                raise WildcardError(_loop_message(manager.requested)) from None
            except Exception as exc:  # pyparsing.ParseException and friends
                raise WildcardError(f"Cannot expand wildcards in {template!r}: {exc}") from None

    # -- files ----------------------------------------------------------------------------

    def list_files(self) -> list[str]:
        """Names usable as ``__name__``, sorted (``animals/cats`` for ``animals/cats.txt``)."""
        with self._lock:
            self._manager.clear_cache()
            return sorted(self._manager.get_collection_names())

    def path_of(self, name: str) -> Path:
        """The ``.txt`` file of wildcard ``name`` (which need not exist); never outside the folder."""
        name = _check_name(name)
        if name.endswith(".txt"):
            name = name[: -len(".txt")]
        root = self.folder.resolve()
        path = (root / f"{name}.txt").resolve()
        if root not in path.parents:
            raise WildcardError(f"Invalid wildcard name {name!r}: it points outside the wildcards folder")
        return path

    def read(self, name: str) -> str:
        path = self.path_of(name)
        if not path.is_file():
            raise WildcardError(f"Wildcard __{_check_name(name)}__ not found")
        return path.read_text(encoding="utf-8", errors="replace")

    def write(self, name: str, text: str) -> Path:
        """Create or replace wildcard ``name`` atomically (temp file + ``os.replace``)."""
        path = self.path_of(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        with self._lock:
            self._manager.clear_cache()
        return path

    def delete(self, name: str) -> None:
        path = self.path_of(name)
        if not path.is_file():
            raise WildcardError(f"Wildcard __{_check_name(name)}__ not found")
        path.unlink()
        with self._lock:
            self._manager.clear_cache()


def _loop_message(requested: list[str]) -> str:
    if requested:
        counts: dict[str, int] = {}
        for name in requested:
            counts[name] = counts.get(name, 0) + 1
        worst = max(counts, key=counts.get)
        return f"Wildcard __{worst}__ includes itself (directly or through other wildcards); expansion stopped"
    return "Wildcards nested too deeply; expansion stopped"


