"""Temporary files for atomic writes (write a hidden temp file, then rename it over the target), named so that the
ones a crashed process left behind can be found and removed at the next start, and never one still being written.

A temp file is `.<target name>.<pid>.<12 hex>.tmp`: the process id tells whether its writer is still alive."""
from __future__ import annotations

import logging
import os
import re
import secrets
import time
from pathlib import Path

log = logging.getLogger(__name__)

_TEMP = re.compile(r"^\..+?\.(?:(?P<pid>\d+)\.)?[0-9a-f]{12}\.tmp$")
LEGACY_AGE = 60.0  # seconds: temp files without a pid (older versions) are stale after this


def temp_name(target: str) -> str:
    return f".{target}.{os.getpid()}.{secrets.token_hex(6)}.tmp"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _stale(path: Path, now: float) -> bool:
    m = _TEMP.match(path.name)
    if m is None:
        return False
    if m.group("pid"):
        return not _alive(int(m.group("pid")))
    try:
        return now - path.stat().st_mtime > LEGACY_AGE
    except OSError:
        return False


def remove_stale_temps(folder: Path, recursive: bool = True) -> list[Path]:
    """Delete our temp files under `folder` whose writer is gone; returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, removed = time.time(), []
    for path in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
        if path.is_file() and not path.is_symlink() and _stale(path, now):
            try:
                path.unlink()
                removed.append(path)
            except OSError as exc:
                log.warning("could not remove the stale temp file %s: %s", path, exc)
    if removed:
        log.info("removed %d temp file(s) left by an interrupted write under %s", len(removed), folder)
    return removed
