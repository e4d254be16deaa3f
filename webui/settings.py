"""Settings: every path, device choice and default in one object, built once from flags.

Nothing here probes hardware; `webui.engine.device.select_device` turns the wishes into a choice at start-up.
User-editable defaults are saved as YAML, atomically, with a backup of the previous file.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Settings:
    # folders (A1111 names); extra dirs are searched in addition to the defaults
    data_dir: Path = ROOT
    models_dir: Path | None = None
    ckpt_dirs: list[Path] = field(default_factory=list)
    vae_dirs: list[Path] = field(default_factory=list)
    lora_dirs: list[Path] = field(default_factory=list)
    embeddings_dir: Path | None = None
    outputs_dir: Path | None = None
    # device and memory
    device: str = "auto"  # auto | cuda | mps | cpu | cuda:N
    precision: str = "auto"  # auto (fp16 on CUDA, fp32 elsewhere) | fp16 | fp32
    xformers: bool = False
    medvram: bool = False
    lowvram: bool = False
    attention_slicing: bool = False
    # checkpoint handling
    ckpt: str | None = None  # checkpoint to load first (title, name or path)
    checkpoint_cache_size: int = 1  # checkpoints kept in RAM (A1111: sd_checkpoints_limit)
    # generation limits and defaults
    max_image_side: int = 2048
    max_batch_images: int = 64
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


# Fields the user may change from the settings file / Settings tab (folders and device come from flags).
EDITABLE = (
    "checkpoint_cache_size", "max_image_side", "default_sampler", "default_scheduler", "default_steps",
    "default_cfg_scale", "save_images", "outputs_dir", "queue_size", "preview_every", "max_combinations", "api_always_save",
)


def load_user_settings(settings: Settings) -> tuple[Settings, str | None]:
    """Apply the YAML settings file on top of `settings`. A corrupt file is moved aside; returns a notice."""
    path = settings.settings_file
    if not path.exists():
        return settings, None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError("top level is not a mapping")
        changes = {k: v for k, v in data.items() if k in EDITABLE}
        return settings.with_overrides(**changes), None
    except (yaml.YAMLError, ValueError, TypeError, UnicodeDecodeError) as exc:
        moved = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        os.replace(path, moved)
        return settings, f"Settings file {path} could not be read ({exc}); moved to {moved.name}, using defaults."


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
