"""Temporary files for atomic writes (write a hidden temp file, then rename it over the target), named so that the
ones a crashed process left behind can be found and removed at the next start, and never one still being written.

A temp file is `.<target name>.<pid>@<host>.<12 hex>.tmp`: the process id tells whether its writer is still alive.
On a folder shared by several machines (replicas under Ray Serve) another host's pid means nothing here: such a file
is stale only once it is older than any write could take."""
from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)

_TEMP = re.compile(r"^\..+?\.(?:(?P<pid>\d+)(?:@(?P<host>[A-Za-z0-9-]+))?\.)?[0-9a-f]{12}\.tmp$")
LEGACY_AGE = 60.0  # seconds: temp files without a pid (older versions) are stale after this
FOREIGN_AGE = 3600.0  # seconds: another machine's temp file is stale after this


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"


def temp_name(target: str) -> str:
    return f".{target}.{os.getpid()}@{_host()}.{secrets.token_hex(6)}.tmp"


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
    if m.group("pid") and m.group("host") in (None, _host()):
        return not _alive(int(m.group("pid")))
    try:
        return now - path.stat().st_mtime > (FOREIGN_AGE if m.group("pid") else LEGACY_AGE)
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
