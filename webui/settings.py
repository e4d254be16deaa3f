"""Settings: every path, device choice and default in one object, built once from flags.

Nothing here probes hardware; `webui.engine.device.select_device` turns the wishes into a choice at start-up.
User-editable defaults are saved as YAML, atomically, with a backup of the previous file.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from webui.engine.errors import EngineError  # the package's __init__ loads nothing; no cycle
from webui.files import temp_name

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Settings:
    # folders (A1111 names); extra dirs are searched in addition to the defaults
    data_dir: Path = ROOT
    models_dir: Path | None = None
    ckpt_dirs: list[Path] = field(default_factory=list)
    vae_dirs: list[Path] = field(default_factory=list)
    lora_dirs: list[Path] = field(default_factory=list)
    upscaler_dirs: list[Path] = field(default_factory=list)
    gfpgan_dirs: list[Path] = field(default_factory=list)
    codeformer_dirs: list[Path] = field(default_factory=list)
    controlnet_dirs: list[Path] = field(default_factory=list)  # --controlnet-dir (ControlNet models)
    controlnet_annotator_dirs: list[Path] = field(default_factory=list)  # --controlnet-annotator-models-path
    embeddings_dir: Path | None = None
    outputs_dir: Path | None = None
    # device and memory
    device: str = "auto"  # auto | cuda | mps | cpu | cuda:N
    precision: str = "auto"  # auto (fp16 on CUDA, fp32 elsewhere) | fp16 | fp32
    xformers: bool = False
    medvram: bool = False
    lowvram: bool = False
    attention_slicing: bool = False
    compile: bool = False  # --compile: torch.compile the UNet and VAE decode (webui/engine/acceleration)
    backend: str = "pytorch"  # --backend: pytorch | openvino (CPU)
    openvino_precision: str = "f32"  # --openvino-precision: f32 (as PyTorch) | bf16 (CPUs with bf16 support)
    # checkpoint handling
    ckpt: str | None = None  # checkpoint to load first (title, name or path)
    checkpoint_cache_size: int = 1  # checkpoints kept in RAM (A1111: sd_checkpoints_limit)
    # generation limits and defaults
    max_image_side: int = 2048
    max_batch_images: int = 64
    max_steps: int = 150  # the UI's sampling steps limit (A1111's slider maximum); the API takes any up to 1000
    queue_size: int = 32
    default_sampler: str = "DPM++ 2M"  # with "Automatic": Karras, as A1111 1.10
    default_scheduler: str = "Automatic"
    default_steps: int = 20
    default_cfg_scale: float = 7.0
    vae_tiling_threshold: int = 1536  # decode tiled above this many pixels on a side
    save_images: bool = True
    api_always_save: bool = False  # save API images even when the request says save_images=false
    max_combinations: int = 100  # wildcard combinatorial mode: at most this many images
    preview_every: int = 5  # live preview every N steps (0 = off); a cheap latent -> RGB map
    upscaler_tile: int = 192  # model upscalers run in tiles of this many pixels (0 = whole image), A1111's ESRGAN_tile
    upscaler_tile_overlap: int = 8
    face_restoration_model: str = "CodeFormer"  # what restore_faces uses: CodeFormer, GFPGAN or RestoreFormer
    code_former_weight: float = 0.5  # CodeFormer's fidelity: 0 = the model's face, 1 = closest to the input
    grid_save: bool = True  # A1111's grid_save: save grids (a batch's, the scripts') in outputs/<mode>-grids/
    return_grid: bool = True  # A1111's return_grid: show a batch's grid first among the results
    controlnet_unit_count: int = 3  # sd-webui-controlnet's control_net_unit_count: units in the UI's accordion
    controlnet_cache_size: int = 2  # ControlNet models kept in RAM
    # who may change settings while running (from flags, never from the file): --freeze-settings freezes all;
    # folders are also locked when the server is reachable from other machines or with --hide-ui-dir-config
    freeze_settings: bool = False
    lock_folders: bool = False
    # where each value that is not the default came from: "config.yaml" or "command line" (see `origin`)
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    # ---- derived folders -------------------------------------------------------------------------------
    @property
    def models_root(self) -> Path:
        return Path(self.models_dir) if self.models_dir else Path(self.data_dir) / "models"

    @property
    def checkpoint_dirs(self) -> list[Path]:
        return [self.models_root / "Stable-diffusion", *map(Path, self.ckpt_dirs)]

    @property
    def vae_search_dirs(self) -> list[Path]:
        return [self.models_root / "VAE", *map(Path, self.vae_dirs)]

    @property
    def lora_search_dirs(self) -> list[Path]:
        return [self.models_root / "Lora", self.models_root / "LyCORIS", *map(Path, self.lora_dirs)]

    @property
    def upscaler_search_dirs(self) -> list[Path]:
        return [self.models_root / d for d in ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT")] + \
            [*map(Path, self.upscaler_dirs)]

    @property
    def face_model_dirs(self) -> dict[str, list[Path]]:
        """Face restorer folders by the kind a file there is unless its name says otherwise."""
        return {"GFPGAN": [self.models_root / "GFPGAN", *map(Path, self.gfpgan_dirs)],
                "CodeFormer": [self.models_root / "Codeformer", *map(Path, self.codeformer_dirs)]}

    @property
    def controlnet_search_dirs(self) -> list[Path]:
        """models/ControlNet, A1111's extensions/sd-webui-controlnet/models, and --controlnet-dir."""
        return [self.models_root / "ControlNet", self.extensions_path / "sd-webui-controlnet" / "models",
                *map(Path, self.controlnet_dirs)]

    @property
    def controlnet_annotator_search_dirs(self) -> list[Path]:
        """Where the preprocessors' weights are (<folder>/<kind>/<file>), A1111's extension's layout included."""
        return [self.models_root / "annotators", *map(Path, self.controlnet_annotator_dirs),
                self.extensions_path / "sd-webui-controlnet" / "annotator" / "downloads"]

    @property
    def embeddings_path(self) -> Path:
        return Path(self.embeddings_dir) if self.embeddings_dir else Path(self.data_dir) / "embeddings"

    @property
    def wildcards_path(self) -> Path:
        return self.models_root / "wildcards"

    @property
    def extensions_path(self) -> Path:
        return Path(self.data_dir) / "extensions"

    @property
    def styles_file(self) -> Path:
        return Path(self.data_dir) / "styles.csv"

    @property
    def outputs_path(self) -> Path:
        return Path(self.outputs_dir) if self.outputs_dir else Path(self.data_dir) / "outputs"

    @property
    def cache_path(self) -> Path:
        """Small files the app writes for itself (hash cache, generated model configs)."""
        return Path(self.data_dir) / "cache"

    @property
    def settings_file(self) -> Path:
        return Path(self.data_dir) / "config.yaml"

    def with_overrides(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def origin(self, name: str) -> str:
        """Where the value of setting `name` comes from: "default", "config.yaml" or "command line"."""
        return self.origins.get(name, "default")

    def with_origin(self, origin: str, names) -> "Settings":
        """A copy that records `names` as coming from `origin`."""
        return dataclasses.replace(self, origins={**self.origins, **dict.fromkeys(names, origin)})


# Fields the user may change from the settings file / Settings tab / API options (folders and device come from
# flags), each with its check. One table, so the file, the UI and the API accept exactly the same values.
class SettingError(EngineError, ValueError):
    """A setting value that is refused; the message names the setting."""


def _int(lo: int, hi: int):
    def check(name: str, value, settings: "Settings") -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or int(value) != value or not lo <= value <= hi:
            raise SettingError(f"{name}: must be a whole number, at least {lo} and at most {hi} (got {value!r})")
        return int(value)
    return check


def _float(lo: float, hi: float):
    def check(name: str, value, settings: "Settings") -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not lo <= value <= hi:
            raise SettingError(f"{name}: must be a number, at least {lo:g} and at most {hi:g} (got {value!r})")
        return float(value)
    return check


def _bool(name: str, value, settings: "Settings") -> bool:
    if not isinstance(value, bool):
        raise SettingError(f"{name}: expected true or false (got {value!r})")
    return value


def _choice(names_of):
    def check(name: str, value, settings: "Settings") -> str:
        names = names_of()
        if not isinstance(value, str) or value not in names:
            raise SettingError(f"{name}: expected one of {', '.join(names)} (got {value!r})")
        return value
    return check


def _samplers() -> list[str]:
    from webui.engine.samplers import sampler_names  # imports diffusers: only when a sampler is checked

    return sampler_names()


def _schedules() -> list[str]:
    from webui.engine.samplers import schedule_names

    return schedule_names()


# Folders that must never become the outputs folder: the app serves image files from it to the browser.
_SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/root/.ssh", "/run", "/sbin", "/sys", "/usr",
                "/var/lib", "/var/log", "C:/Windows", "C:/Program Files")


def _outputs_dir(name: str, value, settings: "Settings") -> Path | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # the default: outputs/ in the data folder
    if not isinstance(value, (str, Path)) or "\x00" in str(value):
        raise SettingError(f"{name}: expected a folder path (got {value!r})")
    path = Path(str(value).strip()).expanduser()
    real = (path if path.is_absolute() else Path(settings.data_dir) / path).resolve()
    # never the data folder, home or a parent of them; never in or above a model folder or the app's cache
    holders = [Path(settings.data_dir), Path.home()]
    private = [settings.models_root, settings.embeddings_path, settings.cache_path, *settings.checkpoint_dirs,
               *settings.lora_search_dirs, *settings.vae_search_dirs, *settings.upscaler_search_dirs,
               *[f for folders in settings.face_model_dirs.values() for f in folders]]
    for folder in [f.resolve() for f in holders + private]:
        if real == folder or real in folder.parents:
            raise SettingError(f"{name}: {path} would expose {folder}; choose a folder of its own for images")
    for folder in [f.resolve() for f in private]:
        if folder in real.parents:
            raise SettingError(f"{name}: {path} is inside {folder}; choose a folder of its own for images")
    system = [Path(d) for d in _SYSTEM_DIRS]
    if real == Path(real.anchor) or any(real == d or d in real.parents for d in system):
        raise SettingError(f"{name}: {path} is a system folder; choose a folder of its own for images")
    return path


RULES = {
    "checkpoint_cache_size": _int(1, 64),
    "max_image_side": _int(64, 16384),
    "max_steps": _int(1, 1000),
    "max_batch_images": _int(1, 10000),
    "default_sampler": _choice(_samplers),
    "default_scheduler": _choice(_schedules),
    "default_steps": _int(1, 1000),
    "default_cfg_scale": _float(0, 100),
    "save_images": _bool,
    "outputs_dir": _outputs_dir,
    "queue_size": _int(1, 10000),
    "preview_every": _int(0, 1000),
    "max_combinations": _int(1, 100000),
    "api_always_save": _bool,
    "upscaler_tile": _int(0, 4096),
    "upscaler_tile_overlap": _int(0, 512),
    "face_restoration_model": _choice(lambda: ["CodeFormer", "GFPGAN", "RestoreFormer"]),
    "code_former_weight": _float(0, 1),
    "grid_save": _bool,
    "return_grid": _bool,
    "controlnet_unit_count": _int(1, 10),
    "controlnet_cache_size": _int(1, 16),
}
EDITABLE = tuple(RULES)
CONFIG_ORIGIN, FLAG_ORIGIN = "config.yaml", "command line"  # Settings.origins values ("default" when absent)
FOLDER_SETTINGS = ("outputs_dir",)
RESTART_SETTINGS = ("outputs_dir", "queue_size")  # read once at start (the file server and the queue)


class SettingLocked(SettingError):
    """A change that flags forbid (--freeze-settings, or folders of a server reachable from other machines)."""


def check_settings(settings: "Settings", changes: dict) -> dict:
    """Checked and converted values of `changes`; SettingError naming every bad or unknown one."""
    out, problems = {}, []
    for name, value in changes.items():
        rule = RULES.get(name)
        if rule is None:
            problems.append(f"{name}: not a setting that can be changed")
            continue
        try:
            out[name] = rule(name, value, settings)
        except SettingError as exc:
            problems.append(str(exc))
    if problems:
        raise SettingError("; ".join(problems))
    return out


def updated_settings(settings: Settings, changes: dict) -> tuple[Settings, list[str]]:
    """Check `changes`, save them to the settings file and return (the settings to use now, the names of changed
    settings that apply after a restart). Nothing is saved or applied when one value is refused."""
    checked = check_settings(settings, changes)
    changed = [k for k, v in checked.items() if getattr(settings, k) != v]
    if settings.freeze_settings and changed:
        raise SettingLocked(f"settings are frozen (--freeze-settings); not changed: {', '.join(changed)}")
    locked = [k for k in changed if k in FOLDER_SETTINGS]
    if settings.lock_folders and locked:
        raise SettingLocked(f"{', '.join(locked)}: folders can only be changed from the command line or the "
                            "settings file while the server is reachable from other machines (--listen, --share) "
                            "or with --hide-ui-dir-config")
    new = settings.with_overrides(**checked)
    save_user_settings(new)
    restart = [k for k in RESTART_SETTINGS if k in changed]
    applied = new.with_origin(CONFIG_ORIGIN, [k for k in changed if k not in restart])
    return applied.with_overrides(**{k: getattr(settings, k) for k in RESTART_SETTINGS}), restart


def load_user_settings(settings: Settings) -> tuple[Settings, str | None]:
    """Apply the YAML settings file on top of `settings`. A file that cannot be read is moved aside; a bad value
    keeps its default and the file is copied aside. Returns the settings and a notice for the user (or None)."""
    path = settings.settings_file
    if not path.exists():
        return settings, None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError("top level is not a mapping")
    except (yaml.YAMLError, ValueError, TypeError, UnicodeDecodeError) as exc:
        moved = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        os.replace(path, moved)
        return settings, f"Settings file {path} could not be read ({exc}); moved to {moved.name}, using defaults."
    changes, problems = {}, []
    for name, value in data.items():
        if name not in RULES:
            continue  # e.g. written by a newer version; kept out of the way, not an error
        try:
            changes.update(check_settings(settings, {name: value}))
        except SettingError as exc:
            problems.append(str(exc))
    settings = settings.with_overrides(**changes).with_origin(CONFIG_ORIGIN, changes)
    if not problems:
        return settings, None
    kept = path.with_name(f"{path.name}.invalid-{int(time.time())}")
    shutil.copy2(path, kept)
    return settings, (
        f"Settings file {path}: {'; '.join(problems)}. Using the default for {'that' if len(problems) == 1 else 'those'}"
        f" (the file as it was is kept as {kept.name}).")


def save_user_settings(settings: Settings) -> None:
    """Write the editable fields atomically, keeping the previous file as config.yaml.bak."""
    path = settings.settings_file
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {}
    for k in EDITABLE:
        v = getattr(settings, k)
        data[k] = str(v) if isinstance(v, Path) else v
    if path.exists():
        shutil.copy2(path, path.with_name(path.name + ".bak"))
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write via a temp file in the same folder + fsync + rename: readers see the old or the new file, never half."""
    path = Path(path)
    tmp = path.parent / temp_name(path.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
