"""The row under a tab's result gallery, as A1111 has it: 📂 open the output folder (only for a browser on this
machine), 💾 save (download the selected image), 🗃️ zip (every image of the result with its infotext, as one
download), send to img2img / inpaint / extras; and the ⇅ button that swaps width and height.

The handlers are plain functions of the tab's records (`GenerationPanel.records`: one dict per image, the grid
first when the result has one), so they are tested without a browser.
"""
from __future__ import annotations

import datetime as _dt
import html
import io
import ipaddress
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from PIL import Image

DOWNLOADS = "latent-studio-downloads"  # under the system's temp folder; Gradio copies a download into its cache
KEEP_SECONDS = 3600


def chosen(records: list[dict] | None, selected) -> dict | None:
    """The selected record (the first when the index is out of range), None without a result."""
    if not records:
        return None
    return records[selected if isinstance(selected, int) and 0 <= selected < len(records) else 0]


def _status(text: str, kind: str = "info") -> str:
    return f'<div class="ls-status ls-{kind}"><span class="ls-status-text">{html.escape(text)}</span></div>'


# ---- 📂 open the output folder ------------------------------------------------------------------------------

def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return host.lower() == "localhost" or ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def launch_file_manager(folder: Path) -> None:
    """Open `folder` in the desktop's file manager (as A1111: startfile / open / xdg-open). OSError when none."""
    if sys.platform == "win32":
        os.startfile(str(folder))  # type: ignore[attr-defined]  # noqa: S606 - a folder, not a program
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(opener) is None:
        raise OSError(f"{opener} was not found, so no file manager can be opened")
    subprocess.Popen([opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def output_folder(records: list[dict] | None, selected, outputs_root: Path, mode: str) -> Path:
    """The selected image's folder; without a saved image, outputs/<mode>-images."""
    rec = chosen(records, selected)
    if rec and rec.get("path"):
        return Path(rec["path"]).parent
    return Path(outputs_root) / f"{mode}-images"


def open_folder(ctx, mode: str, records, selected, client_host: str | None,
                launcher: Callable[[Path], None] = launch_file_manager) -> str:
    """📂: the status line's message. Refused unless the server is on this machine only (not --listen/--share) and
    the browser asking is on it too: a file manager opens on the server's screen."""
    if not ctx.local:
        return _status("Open folder works only when the browser runs on the server's machine: this server is "
                       "reachable from other machines (--listen, --share, --server-name)", "error")
    if client_host is not None and not is_loopback(client_host):
        return _status(f"Open folder works only from a browser on the server's machine (this one is at "
                       f"{client_host})", "error")
    folder = output_folder(records, selected, ctx.engine.settings.outputs_path, mode)
    if not folder.is_dir():
        return _status(f"Nothing saved yet: {folder} does not exist", "warn")
    try:
        launcher(folder)
    except OSError as exc:
        return _status(f"Could not open {folder}: {exc}", "error")
    return _status(f"Opened {folder}", "ok")


# ---- 💾 save and 🗃️ zip --------------------------------------------------------------------------------------

def _private_base() -> Path:
    """This user's own downloads folder in the temp folder: made 0700, and refused when it is a symlink, another
    user's, or open to others (a shared /tmp name could otherwise point the cleanup below at someone's files)."""
    uid = getattr(os, "getuid", lambda: None)()
    base = Path(tempfile.gettempdir()) / (DOWNLOADS if uid is None else f"{DOWNLOADS}-{uid}")
    try:
        base.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if uid is not None and (stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != uid
                            or st.st_mode & 0o077):
        raise OSError(f"{base} is not a private folder of this user; downloads refused")
    return base


def downloads_dir(root: Path | None = None) -> Path:
    """A fresh folder for one download; downloads older than an hour are removed."""
    base = Path(root) if root else _private_base()
    base.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in base.iterdir():
        try:
            if now - old.stat().st_mtime > KEEP_SECONDS:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=base))


def _png_bytes(image: Image.Image, infotext: str) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text("parameters", infotext or "")
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def _name(rec: dict, index: int) -> str:
    if rec.get("path"):
        return Path(rec["path"]).name
    if rec.get("grid"):
        return f"grid-{index:04d}.png"
    return f"{index:05d}-{rec.get('seed')}.png"


def _file_bytes(rec: dict) -> bytes:
    if rec.get("path") and Path(rec["path"]).is_file():
        return Path(rec["path"]).read_bytes()
    image = rec.get("image")
    if image is None and rec.get("path"):
        raise OSError(f"{rec['path']} is gone")
    return _png_bytes(image, rec.get("infotext") or "")


def save_selected(records, selected, workdir: Path | None = None) -> Path:
    """💾: the selected image as a file to download: the saved PNG itself (with its infotext), or one written now
    when the image was not saved. ValueError without a result."""
    rec = chosen(records, selected)
    if rec is None:
        raise ValueError("Nothing to save yet: generate first")
    if rec.get("path") and Path(rec["path"]).is_file():
        return Path(rec["path"])
    out = downloads_dir(workdir) / _name(rec, selected if isinstance(selected, int) else 0)
    out.write_bytes(_file_bytes(rec))
    return out


def zip_records(records, mode: str, workdir: Path | None = None) -> Path:
    """🗃️: one .zip of every image of the result (the grid too), each PNG with its infotext inside and beside it as
    NAME.txt. ValueError without a result."""
    if not records:
        raise ValueError("Nothing to zip yet: generate first")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = downloads_dir(workdir) / f"{mode}-{stamp}.zip"
    used: set[str] = set()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, rec in enumerate(records):
            name = _name(rec, i)
            stem, suffix = os.path.splitext(name)
            n = 1
            while name in used:
                name, n = f"{stem}-{n}{suffix}", n + 1
            used.add(name)
            zf.writestr(name, _file_bytes(rec))
            zf.writestr(os.path.splitext(name)[0] + ".txt", rec.get("infotext") or "")
    return out


def swap_sizes(width, height):
    """⇅ (A1111's res_switch_btn): width and height trade places."""
    return height, width


# ---- the buttons ----------------------------------------------------------------------------------------------

class GalleryActions:
    """The buttons of one GenerationPanel (built under its gallery; the panel keeps `send_img2img_btn` and
    `send_txt2img_btn` as before). Sending to another tab is wired once both tabs exist (`wire_sending`)."""

    def __init__(self, panel, launcher: Callable[[Path], None] = launch_file_manager):
        self.panel = panel
        self.launcher = launcher

    def build(self) -> "GalleryActions":
        p, m = self.panel, self.panel.mode
        with gr.Row(elem_classes="ls-tight ls-gallery-actions", elem_id=f"{m}_gallery_actions"):
            self.open_btn = gr.Button("📂 Folder", size="sm", elem_id=f"{m}_open_folder", min_width=60,
                                      visible=bool(p.ctx.local))
            self.save_btn = gr.Button("💾 Save", size="sm", elem_id=f"save_{m}", min_width=60)
            self.zip_btn = gr.Button("🗃️ Zip", size="sm", elem_id=f"save_zip_{m}", min_width=60)
        with gr.Row(elem_classes="ls-tight ls-gallery-actions"):
            p.send_img2img_btn = gr.Button("Send to img2img", size="sm", elem_id=f"{m}_send_to_img2img")
            self.inpaint_btn = p.send_inpaint_btn = gr.Button("Send to inpaint", size="sm",
                                                              elem_id=f"{m}_send_to_inpaint")
            self.extras_btn = p.send_extras_btn = gr.Button("Send to extras", size="sm",
                                                            elem_id=f"{m}_send_to_extras")
            p.send_txt2img_btn = gr.Button("Send params to txt2img", size="sm", visible=m != "txt2img",
                                           elem_id=f"{m}_send_to_txt2img")
        self.download = gr.File(label="Download", visible=False, interactive=False, elem_id=f"download_files_{m}")
        return self

    def wire(self) -> None:
        p = self.panel
        private = dict(api_visibility="private", show_progress="hidden")
        self.open_btn.click(self.on_open, [p.records, p.selected], p.status, queue=False, **private)
        self.save_btn.click(self.on_save, [p.records, p.selected], [self.download, p.status], **private)
        self.zip_btn.click(self.on_zip, p.records, [self.download, p.status], **private)
        p.swap_btn.click(swap_sizes, [p.width, p.height], [p.width, p.height], queue=False, **private)

    def on_open(self, records, selected, request: gr.Request = None):
        host = getattr(getattr(request, "client", None), "host", None) if request is not None else None
        return open_folder(self.panel.ctx, self.panel.mode, records, selected, host, self.launcher)

    def on_save(self, records, selected):
        try:
            path = save_selected(records, selected)
        except (ValueError, OSError) as exc:
            return gr.update(visible=False), _status(str(exc), "warn")
        return gr.update(value=str(path), visible=True), _status(f"Ready to download: {path.name}", "ok")

    def on_zip(self, records):
        try:
            path = zip_records(records, self.panel.mode)
        except (ValueError, OSError) as exc:
            return gr.update(visible=False), _status(str(exc), "warn")
        n = len(records)
        return gr.update(value=str(path), visible=True), \
            _status(f"Ready to download: {path.name} ({n} image{'s' if n != 1 else ''} with their infotexts)", "ok")


def wire_sending(panels: dict, tabs: gr.Tabs, extras: dict | None) -> None:
    """Send to inpaint (the img2img tab's editor with the image as its background, the inpaint settings open)
    and Send to extras (its single-image source; `extras`: {"source": its Radio, "image": its Image}), from both
    tabs. (Send to img2img and to txt2img are wired in `webui.ui._wire`.)"""
    from webui.ui.extras_tab import SOURCES

    i2i = panels["img2img"]

    def to_inpaint(records, selected):
        rec = chosen(records, selected)
        if rec is None:
            return [*[gr.skip()] * len(i2i.paste_outputs()), gr.skip(), gr.skip(), gr.skip()]
        image = record_image(rec)
        values = i2i.paste_values(rec["infotext"])
        values[-2] = _status("Sent to inpaint: draw on the image over what should be repainted, then Generate "
                             "(the rest of the image is kept)")
        editor = {"background": image, "layers": [], "composite": image}
        return [*values, editor, gr.Accordion(open=True), gr.Tabs(selected="img2img")]

    for panel in panels.values():
        i2i.on_paste(panel.send_inpaint_btn.click, to_inpaint, [panel.records, panel.selected],
                     [i2i.init_editor, i2i.inpaint_accordion, tabs])
    if not extras:
        return

    def to_extras(records, selected):
        rec = chosen(records, selected)
        if rec is None:
            return gr.skip(), gr.skip(), gr.skip()
        return SOURCES[0], record_image(rec), gr.Tabs(selected="extras")

    for panel in panels.values():
        panel.send_extras_btn.click(to_extras, [panel.records, panel.selected],
                                    [extras["source"], extras["image"], tabs], api_visibility="private",
                                    show_progress="hidden")


def record_image(rec: dict):
    """A record's image for another tab: the saved file, else the in-memory image."""
    return rec.get("path") or rec.get("image")


def record_label(rec: dict) -> str:
    """A gallery caption: 'Seed 1234', or 'Grid' for a batch's grid."""
    return "Grid" if rec.get("grid") else f"Seed {rec.get('seed')}"


def result_records(result: Any) -> list[dict]:
    """One record per image of a GenerationResult, grids (they come first: `index_of_first_image`) marked with
    "grid": True. A grid has no seed of its own: it carries its first image's, as in A1111 (♻ reuses that one).
    `path` is where the image was saved (None when it was not)."""
    images = list(result.images)
    first = int(getattr(result, "index_of_first_image", 0) or 0)
    paths = list(result.paths or [])
    if len(paths) == len(images):
        aligned = paths
    elif first and len(paths) == len(images) - first:  # the grids were not saved, the images were
        aligned = [None] * first + paths
    else:
        aligned = paths + [None] * (len(images) - len(paths))
    out = []
    for i, image in enumerate(images):
        rec = {"path": str(aligned[i]) if aligned[i] else None,
               "infotext": result.infotexts[i] if i < len(result.infotexts) else "",
               "seed": result.seeds[i] if i < len(result.seeds) else None,
               "subseed": result.subseeds[i] if i < len(result.subseeds) else None}
        if i < first:
            rec["grid"] = True
        if not rec["path"]:
            image = image.copy()
            image.info["parameters"] = rec["infotext"]  # gradio copies text metadata when it encodes PNG
            rec["image"] = image
        out.append(rec)
    return out
