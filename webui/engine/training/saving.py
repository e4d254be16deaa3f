"""Writing training files atomically (a hidden temp file renamed over the target, as webui.files names them, so a
crash leaves no half-written LoRA that would be listed) and readable like any downloaded file (mode 0644)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from webui.files import temp_name


def atomic_write(path: Path, write: Callable[[str], None]) -> Path:
    path = Path(path)
    tmp = path.with_name(temp_name(path.name))
    try:
        write(str(tmp))
        tmp.chmod(0o644)  # safetensors writes 0600
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
