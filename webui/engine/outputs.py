"""Where finished images go: outputs/<mode>-images/YYYY-MM-DD/NNNNN-seed.png, and grids (a batch's, the scripts')
outputs/<mode>-grids/YYYY-MM-DD/<kind>-NNNN.png as A1111 names them (grid-0000.png, xyz_grid-0000.png ...); written
atomically with infotext."""
from __future__ import annotations

import datetime as _dt
import re
import threading
from pathlib import Path

from PIL import Image

from webui.engine.image_files import save_image_with_infotext

_NUMBERED = re.compile(r"^(\d{5,})-")


class OutputWriter:
    def __init__(self, root: Path, fmt: str = "png"):
        self.root = Path(root)
        self.fmt = fmt
        self._lock = threading.Lock()

    def folder(self, mode: str, day: _dt.date | None = None) -> Path:
        day = day or _dt.date.today()
        return self.root / f"{mode}-images" / day.isoformat()

    def save(self, image: Image.Image, infotext: str, seed: int | str, mode: str = "txt2img",
             folder: Path | None = None) -> Path:
        """NNNNN-<seed>.png (Extras: NNNNN-<the input's name>.png) in the mode's folder for today."""
        folder = Path(folder) if folder else self.folder(mode)
        with self._lock:  # numbering and writing happen together so two jobs never take the same number
            folder.mkdir(parents=True, exist_ok=True)
            number = _next_number(folder)
            path = folder / f"{number:05d}-{seed}.{self.fmt}"
            return save_image_with_infotext(image, path, infotext)

    def save_grid(self, image: Image.Image, infotext: str, mode: str = "txt2img", kind: str = "grid") -> Path:
        """<kind>-NNNN.png in outputs/<mode>-grids/YYYY-MM-DD/."""
        folder = self.root / f"{mode}-grids" / _dt.date.today().isoformat()
        pattern = re.compile(rf"^{re.escape(kind)}-(\d{{4,}})\.")
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            numbers = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
            path = folder / f"{kind}-{max(numbers, default=-1) + 1:04d}.{self.fmt}"
            return save_image_with_infotext(image, path, infotext)


def _next_number(folder: Path) -> int:
    best = -1
    for p in folder.iterdir():
        m = _NUMBERED.match(p.name)
        if m:
            best = max(best, int(m.group(1)))
    return best + 1
