"""ControlNet preprocessors ("modules"), with sd-webui-controlnet's names, sliders and defaults.

Those that are plain image processing run with OpenCV/NumPy and need nothing else. Those that are neural networks
(depth, openpose, lineart, softedge, scribble_hed/pidinet, mlsd) run through ``controlnet_aux`` with weights from a
local folder, never downloaded: ``models/annotators/<kind>/`` or A1111's
``extensions/sd-webui-controlnet/annotator/downloads/<kind>/`` (the extension's own layout), so a copy of an A1111
install works as is. A missing file is an error naming the folders and the file.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from webui.engine.requests import NotFoundError, RequestError


@dataclass(frozen=True)
class Slider:
    label: str
    value: float
    minimum: float
    maximum: float


RES = Slider("Preprocessor Resolution", 512, 64, 2048)


@dataclass(frozen=True)
class Module:
    name: str
    run: Callable  # (rgb uint8 HxWx3, resolution, a, b, weights_folder) -> uint8 HxWx3 (or HxW)
    sliders: tuple = ()  # (resolution, threshold a, threshold b): None where unused
    weights: tuple[str, tuple[str, ...]] | None = None  # (folder name, files) for the neural ones
    alias: str = ""
    uses_resolution: bool = True

    def defaults(self, res: float, a: float, b: float) -> tuple[int, float, float]:
        """The extension's bound check: a value outside a slider's range (-1 included) is its default."""
        out = []
        for value, slider in zip((res, a, b), (self.sliders + (None, None, None))[:3]):
            out.append(value if slider is None or slider.minimum <= value <= slider.maximum else slider.value)
        return int(out[0]), float(out[1]), float(out[2])


# ---- helpers ---------------------------------------------------------------------------------------------

def _cv2():
    import cv2

    return cv2


def to_resolution(img: np.ndarray, res: int) -> np.ndarray:
    """Scale so that the short side is ``res`` (as the extension does before a detector runs)."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    k = res / min(h, w)
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return cv2.resize(img, size, interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)


def _gray(img: np.ndarray) -> np.ndarray:
    return _cv2().cvtColor(img, _cv2().COLOR_RGB2GRAY)


# ---- the algorithmic modules -------------------------------------------------------------------------------

def _none(img, res, a, b, folder):
    return img


def _invert(img, res, a, b, folder):
    return 255 - img


def _canny(img, res, a, b, folder):
    return _cv2().Canny(to_resolution(img, res), a, b)


def _threshold(img, res, a, b, folder):
    return np.where(_gray(to_resolution(img, res)) > a, 255, 0).astype(np.uint8)


def _blur(img, res, a, b, folder):
    return _cv2().GaussianBlur(to_resolution(img, res), (0, 0), a)


def _tile_resample(img, res, a, b, folder):
    """Downsampled by ``a`` (the tile model adds the detail back)."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, int(w / a)), max(1, int(h / a))), interpolation=cv2.INTER_AREA)


def _color_grid(img, res, a, b, folder):
    """T2I-Adapter's colour grid: 64x smaller, then back up with nearest."""
    cv2 = _cv2()
    img = to_resolution(img, res)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // 64), max(1, h // 64)), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _lineart_standard(img, res, a, b, folder):
    """Dark lines on a light background to white-on-black lines: how far each pixel is below its blurred
    surroundings, normalised by the typical line strength."""
    x = to_resolution(img, res).astype(np.float32)
    blurred = _cv2().GaussianBlur(x, (0, 0), 6.0)
    strength = np.min(blurred - x, axis=2).clip(0, 255)
    lines = strength[strength > 8]
    norm = max(16.0, float(np.median(lines)) if lines.size else 16.0)
    return (strength / norm * 127).clip(0, 255).astype(np.uint8)


def _scribble_xdog(img, res, a, b, folder):
    """Difference of Gaussians: edges stronger than ``a`` become white scribbles."""
    cv2 = _cv2()
    x = to_resolution(img, res).astype(np.float32)
    dog = np.min(cv2.GaussianBlur(x, (0, 0), 0.5) - cv2.GaussianBlur(x, (0, 0), 5.0), axis=2)
    return np.where(dog > a, 255, 0).astype(np.uint8)


def _shuffle(img, res, a, b, folder):
    """Content shuffle: the image warped by a smooth random flow (seeded: the same input gives the same map)."""
    cv2 = _cv2()
    img = to_resolution(img, res)
    h, w = img.shape[:2]
    rng = np.random.default_rng(0)

    def smooth_noise(scale):
        coarse = rng.random((max(2, h // 256 + 2), max(2, w // 256 + 2))).astype(np.float32)
        return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * scale

    fx, fy = smooth_noise(w), smooth_noise(h)
    return cv2.remap(img, fx.clip(0, w - 1), fy.clip(0, h - 1), cv2.INTER_LINEAR)


def _recolor(channel: str):
    def run(img, res, a, b, folder):
        cv2 = _cv2()
        img = to_resolution(img, res)
        if channel == "luminance":
            v = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)[:, :, 0].astype(np.float32) / 255.0
        else:
            v = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[:, :, 2].astype(np.float32) / 255.0
        return (np.power(v, a) * 255.0).clip(0, 255).astype(np.uint8)
    return run


# ---- the neural ones (controlnet_aux, local weights) --------------------------------------------------------

def _aux(kind: str, **call):
    """A controlnet_aux detector, built from the files in ``folder`` (loaded once per folder, see Preprocessors)."""
    def run(img, res, a, b, detector):
        kwargs = dict(call)
        if kind == "mlsd":
            kwargs.update(thr_v=a, thr_d=b)
        out = detector(Image.fromarray(img), detect_resolution=res, image_resolution=res, output_type="np",
                       **kwargs)
        return np.asarray(out)
    return run


def _load_detector(kind: str, folder: Path):
    folder = str(folder)
    if kind == "lineart":
        from controlnet_aux.lineart import LineartDetector
        return LineartDetector.from_pretrained(folder)
    if kind == "lineart_anime":
        from controlnet_aux.lineart_anime import LineartAnimeDetector
        return LineartAnimeDetector.from_pretrained(folder)
    if kind == "hed":
        from controlnet_aux.hed import HEDdetector
        return HEDdetector.from_pretrained(folder)
    if kind == "pidinet":
        from controlnet_aux.pidi import PidiNetDetector
        return PidiNetDetector.from_pretrained(folder)
    if kind == "openpose":
        from controlnet_aux.open_pose import OpenposeDetector
        return OpenposeDetector.from_pretrained(folder, filename="body_pose_model.pth",
                                                hand_filename="hand_pose_model.pth", face_filename="facenet.pth")
    if kind == "midas":
        from controlnet_aux.midas import MidasDetector
        return MidasDetector.from_pretrained(folder, filename="dpt_hybrid-midas-501f0c75.pt")
    if kind == "mlsd":
        from controlnet_aux.mlsd import MLSDdetector
        return MLSDdetector.from_pretrained(folder, filename="mlsd_large_512_fp32.pth")
    raise ValueError(kind)


LINEART = ("lineart", ("sk_model.pth", "sk_model2.pth"))
HED = ("hed", ("ControlNetHED.pth",))
PIDI = ("pidinet", ("table5_pidinet.pth",))
POSE = ("openpose", ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"))
MIDAS = ("midas", ("dpt_hybrid-midas-501f0c75.pt",))


def _modules() -> list[Module]:
    r = (RES,)
    return [
        Module("none", _none, uses_resolution=False),
        Module("invert (from white bg & black line)", _invert, alias="invert", uses_resolution=False),
        Module("canny", _canny, (RES, Slider("Canny Low Threshold", 100, 1, 255),
                                 Slider("Canny High Threshold", 200, 1, 255))),
        Module("threshold", _threshold, (RES, Slider("Binarization Threshold", 127, 0, 255)), alias="binary"),
        Module("blur_gaussian", _blur, (RES, Slider("Sigma", 9.0, 0.01, 64.0))),
        Module("tile_resample", _tile_resample, (None, Slider("Down Sampling Rate", 1.0, 1.0, 8.0)),
               uses_resolution=False),
        Module("t2ia_color_grid", _color_grid, r, alias="color"),
        Module("lineart_standard (from white bg & black line)", _lineart_standard, r, alias="lineart_standard"),
        Module("scribble_xdog", _scribble_xdog, (RES, Slider("XDoG Threshold", 32, 1, 64))),
        Module("shuffle", _shuffle, r),
        Module("recolor_luminance", _recolor("luminance"), (RES, Slider("Gamma Correction", 1.0, 0.1, 2.0))),
        Module("recolor_intensity", _recolor("intensity"), (RES, Slider("Gamma Correction", 1.0, 0.1, 2.0))),
        Module("lineart_realistic", _aux("lineart", coarse=False), r, LINEART),
        Module("lineart_coarse", _aux("lineart", coarse=True), r, LINEART),
        Module("lineart_anime", _aux("lineart_anime"), r, ("lineart_anime", ("netG.pth",))),
        Module("softedge_hed", _aux("hed"), r, HED),
        Module("softedge_hedsafe", _aux("hed", safe=True), r, HED),
        Module("scribble_hed", _aux("hed", scribble=True), r, HED),
        Module("softedge_pidinet", _aux("pidinet"), r, PIDI),
        Module("softedge_pidisafe", _aux("pidinet", safe=True), r, PIDI),
        Module("scribble_pidinet", _aux("pidinet", scribble=True), r, PIDI),
        Module("openpose", _aux("openpose"), r, POSE),
        Module("openpose_hand", _aux("openpose", include_hand=True), r, POSE),
        Module("openpose_face", _aux("openpose", include_face=True), r, POSE),
        Module("openpose_full", _aux("openpose", include_hand=True, include_face=True), r, POSE),
        Module("depth_midas", _aux("midas"), r, MIDAS),
        Module("mlsd", _aux("mlsd"), (RES, Slider("MLSD Value Threshold", 0.1, 0.01, 2.0),
                                      Slider("MLSD Distance Threshold", 0.1, 0.01, 20.0)),
               ("mlsd", ("mlsd_large_512_fp32.pth",))),
    ]


@dataclass
class Preprocessors:
    """The modules, and the neural detectors loaded so far (one per weights folder)."""
    search_dirs: list[Path]  # each holds <kind>/<file> folders
    modules: dict[str, Module] = field(default_factory=dict)
    detectors: dict[str, object] = field(default_factory=dict)

    def __post_init__(self):
        self.modules = {m.name: m for m in _modules()}
        self.aliases = {m.alias: m.name for m in self.modules.values() if m.alias}

    def names(self, alias_names: bool = False) -> list[str]:
        return [m.alias or m.name if alias_names else m.name for m in self.modules.values()]

    def get(self, name: str) -> Module:
        key = (name or "none").strip()
        key = self.aliases.get(key, key)
        if key not in self.modules:
            low = {n.lower(): n for n in self.modules}
            key = low.get(key.lower(), key)
        if key not in self.modules:
            raise NotFoundError(f"ControlNet module {name!r} not found (available: {', '.join(self.names())})")
        return self.modules[key]

    def weights_folder(self, module: Module) -> Path:
        """The folder that holds all of the module's files; NotFoundError naming where to put them."""
        kind, files = module.weights
        for root in self.search_dirs:
            if all((Path(root) / kind / f).is_file() for f in files):
                return Path(root) / kind
        where = " or ".join(str(Path(r) / kind) for r in self.search_dirs)
        raise NotFoundError(f"ControlNet module {module.name} needs its model weights ({', '.join(files)}) in "
                            f"{where}; that folder is missing or incomplete (nothing is downloaded)")

    def check(self, name: str) -> Module:
        """The module, with its weights present (for planning: fails before the queue)."""
        module = self.get(name)
        if module.weights:
            self.weights_folder(module)
        return module

    def run(self, name: str, image: Image.Image, res: float = -1, a: float = -1, b: float = -1) -> Image.Image:
        """The detected map of ``image`` (RGB), as an RGB image at the processor resolution."""
        module = self.check(name)
        res, a, b = module.defaults(res, a, b)
        arr = np.asarray(image.convert("RGB"))
        target = self._detector(module) if module.weights else None
        try:
            out = module.run(arr, res, a, b, target)
        except Exception as exc:  # OpenCV / a detector on odd input
            raise RequestError(f"ControlNet module {module.name} failed on this image: {exc}") from exc
        out = np.ascontiguousarray(out)
        if out.ndim == 2:
            out = np.stack([out] * 3, axis=-1)
        return Image.fromarray(out.astype(np.uint8)).convert("RGB")

    def _detector(self, module: Module):
        folder = self.weights_folder(module)
        key = str(folder)
        if key not in self.detectors:
            self.detectors[key] = _load_detector(module.weights[0], folder)
        return self.detectors[key]

    def detail(self, alias_names: bool = False) -> dict:
        """/controlnet/module_list's module_detail: each module's sliders and whether it needs a model."""
        out = {}
        for m in self.modules.values():
            sliders = []
            for s in m.sliders:
                if s is None:
                    continue
                sliders.append({"name": s.label, "value": s.value, "min": s.minimum, "max": s.maximum,
                                **({"step": 1} if s is RES else {})})
            out[m.alias or m.name if alias_names else m.name] = {"model_free": m.name == "none",
                                                                  "sliders": sliders}
        return out


def pixel_perfect_resolution(image: Image.Image, width: int, height: int, resize_mode: str) -> int:
    """The extension's "Pixel Perfect": the processor resolution that maps the input 1:1 onto the output."""
    k0, k1 = height / image.height, width / image.width
    k = min(k0, k1) if resize_mode == "Resize and Fill" else max(k0, k1)
    return round(k * min(image.width, image.height))

