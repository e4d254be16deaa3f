"""GET/POST /sdapi/v1/options: A1111's option names, mapped onto the engine where this app acts on them.

A POST is validated as a whole before anything changes: a wrong value for an option this app acts on (or a fixed
one set to another value) is a 422 naming it; an unknown checkpoint is a 404 naming it. Options this app does not
act on (webui/api/a1111_options.py, and any other key a client sends) are stored and returned, and never make the
rest of the body fail. Setting an option to the value it already has is always accepted (clients often send back
the whole GET answer)."""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable

from webui.api.a1111_options import STORED_DEFAULTS
from webui.api.errors import ApiError
from webui.engine import CheckpointLoadError, NotFoundError
from webui.settings import SettingError, SettingLocked, atomic_write_text, check_settings

log = logging.getLogger(__name__)
STORE_FILE = "api-options.json"  # in the data folder: the values of options this app only stores
MAX_KEY_CHARS, MAX_STORE_CHARS = 200, 1_000_000  # a client cannot grow the stored options without bound


# Our own API setting (A1111 has none of that name): save every API image, whatever the request's save_images.
API_ALWAYS_SAVE = "api_always_save"
# A1111 option -> our setting (checked by webui.settings' one table)
SETTINGS = {"samples_save": "save_images", "sd_checkpoints_limit": "checkpoint_cache_size",
            "ESRGAN_tile": "upscaler_tile", "ESRGAN_tile_overlap": "upscaler_tile_overlap",
            "show_progress_every_n_steps": "preview_every",
            "face_restoration_model": "face_restoration_model", "code_former_weight": "code_former_weight",
            "grid_save": "grid_save", "return_grid": "return_grid", API_ALWAYS_SAVE: API_ALWAYS_SAVE}
# Options a generation request may override for itself (override_settings), passed on to the engine's plan
JOB_OVERRIDES = ("face_restoration_model", "code_former_weight")


def _int_range(lo: int, hi: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        # the range test comes before int(): int(NaN) and int(Infinity) raise (NaN fails every comparison)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi or int(value) != value:
            raise ApiError(422, f"option {key}: expected an integer between {lo} and {hi} (got {value!r})")
        return int(value)
    return check


#: Longest checkpoint or VAE name/path a request may give; longer is no file name anywhere (the lookups, which also
#: try the value as a path, would fail with "File name too long", a 500).
MAX_NAME_CHARS = 1024


def resolve_checkpoint(engine, value: Any, field: str):
    """The checkpoint a request names: 422 naming ``field`` for a value that cannot be a name, 404 (with the
    available titles) for an unknown one."""
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or "\0" in value:
        raise ApiError(422, f"{field}: expected a checkpoint title of at most {MAX_NAME_CHARS} characters "
                            f"(got {_short(value)})")
    try:
        return engine.resolve_checkpoint(value)
    except NotFoundError:
        raise  # a 404 with the available titles
    except (OSError, ValueError) as exc:  # the file-path fallback of the lookup hit an impossible path
        raise ApiError(404, f"{field}: checkpoint {_short(value)} not found ({type(exc).__name__})") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ApiOptions:
    def __init__(self, engine):
        self.engine = engine
        self.clip_skip = 1  # A1111 CLIP_stop_at_last_layers: the clip skip of API requests that do not override it
        self._lock = threading.Lock()
        self.store_path = Path(engine.settings.data_dir) / STORE_FILE
        self.stored = {**STORED_DEFAULTS, **_read_store(self.store_path)}

    # ---- reading -------------------------------------------------------------------------------------------
    def checkpoint_title(self) -> str | None:
        active = self.engine.active_model()
        if active is not None:
            return active.title
        try:
            return self.engine.default_checkpoint().title
        except CheckpointLoadError:
            return None

    def snapshot(self) -> dict[str, Any]:
        return {**self.stored, **self.fixed(), **self.backed()}

    def backed(self) -> dict[str, Any]:
        """The options this app acts on, as they are now."""
        eng, st = self.engine, self.engine.settings
        active = eng.active_model()
        return {
            "sd_model_checkpoint": self.checkpoint_title(),
            "sd_checkpoint_hash": active.sha256 if active is not None else None,
            "sd_checkpoints_limit": eng.model_cache().size,
            "sd_vae": eng.vae_choice,
            "CLIP_stop_at_last_layers": self.clip_skip,
            "samples_save": bool(st.save_images),
            "ESRGAN_tile": st.upscaler_tile, "ESRGAN_tile_overlap": st.upscaler_tile_overlap,
            "face_restoration_model": st.face_restoration_model, "code_former_weight": st.code_former_weight,
            "live_previews_enable": st.preview_every > 0, "show_progress_every_n_steps": st.preview_every,
            "grid_save": bool(st.grid_save), "return_grid": bool(st.return_grid),
            API_ALWAYS_SAVE: bool(getattr(st, API_ALWAYS_SAVE, False)),
        }

    def fixed(self) -> dict[str, Any]:
        """Options with the one value this app works with (another value is a 422)."""
        outputs = self.engine.settings.outputs_path
        return {
            "samples_format": "png", "outdir_samples": "",
            "outdir_txt2img_samples": str(outputs / "txt2img-images"),
            "outdir_img2img_samples": str(outputs / "img2img-images"),
            "outdir_extras_samples": str(outputs / "extras-images"),
            "eta_noise_seed_delta": 0, "randn_source": "CPU", "img2img_background_color": "#ffffff",
            "face_restoration": False,
        }

    @property
    def always_save(self) -> bool:
        return bool(getattr(self.engine.settings, API_ALWAYS_SAVE, False))

    # ---- writing -------------------------------------------------------------------------------------------
    def apply(self, changes: dict[str, Any]) -> None:
        """Checked as a whole before anything changes; settings go through the engine's one settings table."""
        if not isinstance(changes, dict):
            raise ApiError(422, "options: expected a JSON object of option names and values")
        with self._lock:
            current = self.snapshot()
            changed = {k: v for k, v in changes.items() if k not in current or v != current[k]}
            if changed and self.engine.settings.freeze_settings:
                raise SettingLocked(f"settings are frozen (--freeze-settings); not changed: {', '.join(changed)}")
            checkpoint, settings, setters, store = None, {}, [], {}
            fixed = self.fixed()
            for key, value in changed.items():
                if key == "sd_model_checkpoint":
                    if value is not None:
                        checkpoint = resolve_checkpoint(self.engine, value, f"option {key}")
                elif key == "sd_vae":
                    setters.append(lambda v=self._vae(value, key): self.engine.select_vae(v))
                elif key == "CLIP_stop_at_last_layers":
                    setters.append(lambda v=_int_range(1, 12)(key, value): setattr(self, "clip_skip", v))
                elif key == "live_previews_enable":
                    settings["preview_every"] = _previews(value, self.engine.settings.preview_every)
                elif key in SETTINGS:
                    settings[SETTINGS[key]] = self._setting(key, value)
                elif key in fixed:
                    raise ApiError(422, f"option {key} cannot be changed here (it is {fixed[key]!r})")
                else:
                    store[key] = _storable(key, value)
            stored = self._stored_with(store)  # checked (size) before anything changes
            if settings:
                self.engine.update_settings(settings)  # saved to the settings file
            if checkpoint is not None:
                self.engine.load_checkpoint(checkpoint.title)  # through the queue; on failure the old one stays
            for set_ in setters:
                set_()
            if store:  # last: a body refused above stores nothing
                atomic_write_text(self.store_path, stored[1])
                self.stored = stored[0]

    def _stored_with(self, values: dict[str, Any]) -> tuple[dict, str]:
        """The stored options with `values`, and the file text (only what differs from A1111's defaults)."""
        stored = {**self.stored, **values}
        changed = {k: v for k, v in stored.items() if STORED_DEFAULTS.get(k, object()) != v}
        text = json.dumps(changed, indent=1, sort_keys=True)
        if len(text) > MAX_STORE_CHARS:
            raise ApiError(422, f"options: the stored options would exceed {MAX_STORE_CHARS} characters")
        return stored, text

    def _setting(self, key: str, value: Any) -> Any:
        try:
            return check_settings(self.engine.settings, {SETTINGS[key]: value})[SETTINGS[key]]
        except SettingError as exc:
            raise ApiError(422, f"option {key}: {str(exc).partition(': ')[2]}") from None

    def _vae(self, value, key: str) -> str:
        """A valid "SD VAE" choice ('Automatic', 'None' or a VAE file name); 404 naming the unknown one."""
        if value is not None and (not isinstance(value, str) or len(value) > MAX_NAME_CHARS):
            raise ApiError(422, f"{key}: expected the name of a VAE, 'Automatic' or 'None' (got {_short(value)})")
        try:
            return self.engine.check_vae(value)
        except NotFoundError as exc:
            raise ApiError(404, f"{key}: {exc}") from exc
        except (OSError, ValueError) as exc:  # the file-path fallback of the lookup hit an impossible path
            raise ApiError(404, f"{key}: VAE {_short(value)} not found ({type(exc).__name__})") from None

    def override(self, key: str, value: Any) -> tuple[str, Any] | None:
        """One override_settings entry of a generation request -> ('checkpoint'|'clip_skip'|'vae'|'job', value),
        or None when it asks for what is already in effect. 422 naming the key otherwise."""
        if key == "sd_model_checkpoint":
            return ("checkpoint", value) if value else None
        if key == "CLIP_stop_at_last_layers":
            return "clip_skip", _int_range(1, 12)(f"override_settings.{key}", value)
        if key == "sd_vae":
            return "vae", self._vae(value, f"override_settings.{key}")
        if key in JOB_OVERRIDES:  # the job's own value; the setting stays
            return "job", self._setting(key, value)
        current = self.snapshot()
        if key in current and value == current[key]:
            return None
        if key in current:
            raise ApiError(422, f"override_settings.{key}={value!r} is not supported (only {current[key]!r})")
        raise ApiError(422, f"override_settings key {key!r} is not supported. Supported: sd_model_checkpoint, "
                            f"CLIP_stop_at_last_layers, and options set to their current value")


def _previews(value: Any, every: int) -> int:
    if not isinstance(value, bool):
        raise ApiError(422, f"option live_previews_enable: expected true or false (got {_short(value)})")
    return (every or 5) if value else 0


def _storable(key: str, value: Any) -> Any:
    """A value kept as JSON: plain data only, and no NaN/Infinity (they are not JSON)."""
    if len(key) > MAX_KEY_CHARS:
        raise ApiError(422, f"option name too long ({len(key)} characters; at most {MAX_KEY_CHARS})")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ApiError(422, f"option {key}: expected plain JSON data (got {_short(value)})") from None
    if len(text) > 64_000:
        raise ApiError(422, f"option {key}: value too large ({len(text)} characters)")
    return value


def _read_store(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s could not be read (%s); stored API options start from A1111's defaults", path, exc)
        return {}
    return data if isinstance(data, dict) else {}
