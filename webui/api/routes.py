"""The /sdapi/v1 endpoints. Generation endpoints validate and decode in a worker thread, queue the job on the
engine's single queue and wait for it without holding a thread, so /progress, /interrupt and /skip answer at once
while jobs run."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.background import BackgroundTask

from webui.api import registries, schemas, translate
from webui.api.controlnet import ControlNetApi
from webui.api.errors import ApiError, ApiRoute
from webui.api.images import decode_image, encode_png, image_text_items
from webui.api.inspect_routes import InspectApi
from webui.api.options import ApiOptions
from webui.api.training import add_training_routes
from webui.auth import credentials_match
from webui.engine.infotext import parse_infotext
from webui.engine import LATENT_MODES, ExtrasRequest
from webui.engine.samplers import sampler_items, schedule_items

log = logging.getLogger(__name__)

PREFIX = "/sdapi/v1"
MAX_BODY_BYTES = 256 * 1024 * 1024
DISCONNECT_POLL = 0.5  # seconds between checks that a waiting client is still connected


def _basic_auth(credentials: list[tuple[str, str]]):
    scheme = HTTPBasic(auto_error=False)

    def check(given: HTTPBasicCredentials | None = Depends(scheme)) -> None:
        if given is None or not credentials_match(credentials, given.username, given.password):
            raise ApiError(401, "Incorrect username or password", headers={"WWW-Authenticate": "Basic"})

    return check


class SdApi:
    def __init__(self, engine, auth: list[tuple[str, str]] | None = None, extensions=None, flags: dict | None = None,
                 server_control=None):
        self.engine = engine
        self.extension_manager = extensions
        self.flags = dict(flags or {})
        self.server_control = server_control
        self.options = ApiOptions(engine)
        deps = [Depends(_basic_auth(auth))] if auth else []
        self.router = APIRouter(prefix=PREFIX, tags=["sdapi"], route_class=ApiRoute, dependencies=deps,
                                max_body_size=MAX_BODY_BYTES)
        r = self.router.add_api_route
        r("/txt2img", self.txt2img, methods=["POST"], response_model=schemas.GenerationResponse)
        r("/img2img", self.img2img, methods=["POST"], response_model=schemas.GenerationResponse)
        r("/extra-single-image", self.extra_single_image, methods=["POST"],
          response_model=schemas.ExtrasSingleImageResponse)
        r("/extra-batch-images", self.extra_batch_images, methods=["POST"],
          response_model=schemas.ExtrasBatchImagesResponse)
        r("/png-info", self.png_info, methods=["POST"], response_model=schemas.PNGInfoResponse)
        r("/progress", self.progress, methods=["GET"], response_model=schemas.ProgressResponse)
        r("/interrupt", self.interrupt, methods=["POST"])
        r("/skip", self.skip, methods=["POST"])
        r("/options", self.get_options, methods=["GET"])
        r("/options", self.set_options, methods=["POST"])
        r("/cmd-flags", self.cmd_flags, methods=["GET"])
        r("/samplers", self.samplers, methods=["GET"], response_model=list[schemas.SamplerItem])
        r("/schedulers", self.schedulers, methods=["GET"], response_model=list[schemas.SchedulerItem])
        r("/upscalers", self.upscalers, methods=["GET"], response_model=list[schemas.UpscalerItem])
        r("/latent-upscale-modes", self.latent_upscale_modes, methods=["GET"],
          response_model=list[schemas.LatentUpscalerModeItem])
        r("/sd-models", self.sd_models, methods=["GET"], response_model=list[schemas.SDModelItem])
        r("/sd-vae", self.sd_vae, methods=["GET"], response_model=list[schemas.SDVaeItem])
        r("/loras", self.loras, methods=["GET"], response_model=list[schemas.LoraItem])
        r("/hypernetworks", self.hypernetworks, methods=["GET"], response_model=list[schemas.HypernetworkItem])
        r("/face-restorers", self.face_restorers, methods=["GET"], response_model=list[schemas.FaceRestorerItem])
        r("/realesrgan-models", self.realesrgan_models, methods=["GET"],
          response_model=list[schemas.RealesrganItem])
        r("/prompt-styles", self.prompt_styles, methods=["GET"], response_model=list[schemas.PromptStyleItem])
        r("/embeddings", self.embeddings, methods=["GET"], response_model=schemas.EmbeddingsResponse)
        r("/memory", self.memory, methods=["GET"], response_model=schemas.MemoryResponse)
        r("/scripts", self.scripts, methods=["GET"], response_model=schemas.ScriptsList)
        r("/script-info", self.script_info, methods=["GET"], response_model=list[schemas.ScriptInfo])
        r("/extensions", self.extensions, methods=["GET"], response_model=list[schemas.ExtensionItem])
        r("/refresh-checkpoints", self.refresh_checkpoints, methods=["POST"])
        r("/refresh-vae", self.refresh_vae, methods=["POST"])
        r("/refresh-loras", self.refresh_loras, methods=["POST"])
        r("/refresh-embeddings", self.refresh_embeddings, methods=["POST"])
        r("/sd-modules", self.sd_modules, methods=["GET"], response_model=list[schemas.SDVaeItem])
        r("/unload-checkpoint", self.unload_checkpoint, methods=["POST"])
        r("/reload-checkpoint", self.reload_checkpoint, methods=["POST"])
        add_training_routes(self)  # /create/embedding, /train/embedding (A1111), /train/lora
        if server_control is not None:  # A1111's --api-server-stop; without it these paths are 404s
            r("/server-stop", self.server_stop, methods=["POST"])
            r("/server-kill", self.server_kill, methods=["POST"])
            r("/server-restart", self.server_restart, methods=["POST"])

    # ---- generation --------------------------------------------------------------------------------------
    async def txt2img(self, body: schemas.Txt2ImgRequest, request: Request) -> dict:
        return await self._generate(body, "txt2img", request)

    async def img2img(self, body: schemas.Img2ImgRequest, request: Request) -> dict:
        return await self._generate(body, "img2img", request)

    async def _generate(self, body: schemas.GenerationBody, mode: str, request: Request) -> dict:
        call = await run_in_threadpool(translate.prepare, self.engine, self.options, body, mode)
        job = await run_in_threadpool(self.engine.submit, call.request)
        result = await self._wait(job, request)
        if call.restore_checkpoint:
            await run_in_threadpool(self._restore, call.restore_checkpoint)
        return await run_in_threadpool(translate.response_body, self.engine, call, result)

    async def _wait(self, job, request: Request):
        """The job's result; a job still waiting in the queue when its client has gone is dropped."""
        future = asyncio.wrap_future(job.future)
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(future), DISCONNECT_POLL)
            except asyncio.TimeoutError:
                if await request.is_disconnected() and self.engine.cancel(job):
                    raise ApiError(499, "the client disconnected before the job started; it was dropped") from None

    def _restore(self, title: str) -> None:
        try:
            self.engine.load_checkpoint(title)
        except Exception:  # noqa: BLE001 - the images are made; a failed switch back is only logged
            log.exception("could not switch back to %s after override_settings", title)

    # ---- progress and control ----------------------------------------------------------------------------
    async def progress(self, skip_current_image: bool = False) -> dict:
        job, waiting = self.engine.current_job(), self.engine.queue_length()
        if job is None:
            state = schemas.ProgressState(job_count=1 if waiting else 0, queued=waiting)
            return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None}
        st = job.state
        started = st.started or st.created
        state = schemas.ProgressState(
            skipped=st.skipped, interrupted=st.interrupted, job=st.kind, job_count=max(1, st.job_count),
            job_timestamp=time.strftime("%Y%m%d%H%M%S", time.localtime(started)), job_no=st.job_no,
            sampling_step=st.sampling_step, sampling_steps=st.sampling_steps, queued=waiting)
        preview = None
        if st.preview is not None and not skip_current_image:
            preview = await run_in_threadpool(encode_png, st.preview)
        eta = st.eta
        return {"progress": max(0.01, min(1.0, st.progress)), "eta_relative": eta if eta is not None else 0.0,
                "state": state, "current_image": preview, "textinfo": st.textinfo}

    async def interrupt(self) -> dict:
        self.engine.interrupt()
        return {}

    async def skip(self) -> dict:
        self.engine.skip()
        return {}

    # ---- options and flags -------------------------------------------------------------------------------
    def get_options(self) -> dict:
        return self.options.snapshot()

    def set_options(self, body: dict[str, Any]) -> dict:
        self.options.apply(body)
        return {}

    def cmd_flags(self) -> dict:
        """A1111's flag names with the values in effect: those Settings hold, then the launch flags the server
        passed in (`flags`, without log-ins)."""
        s = self.engine.settings

        def text(p):
            return None if p is None else str(p)

        def first(paths, default=None):
            return text(paths[0]) if paths else text(default)

        return {
            "data_dir": text(s.data_dir), "models_dir": text(s.models_dir), "ckpt_dir": first(s.ckpt_dirs),
            "vae_dir": first(s.vae_dirs), "lora_dir": first(s.lora_dirs, s.models_root / "Lora"),
            "embeddings_dir": text(s.embeddings_path),
            "gfpgan_models_path": first(s.gfpgan_dirs, s.models_root / "GFPGAN"),
            "codeformer_models_path": first(s.codeformer_dirs, s.models_root / "Codeformer"),
            "esrgan_models_path": first(s.upscaler_dirs, s.models_root / "ESRGAN"), "ckpt": s.ckpt,
            "device": s.device, "precision": "full" if s.precision == "fp32" else "autocast",
            "no_half": s.precision == "fp32", "xformers": s.xformers, "medvram": s.medvram, "lowvram": s.lowvram,
            "opt_split_attention": s.attention_slicing, "freeze_settings": s.freeze_settings,
            "hide_ui_dir_config": s.lock_folders, "api": True, "api_auth": None,  # never echo credentials
            **self.flags,
        }

    # ---- server control (--api-server-stop) ---------------------------------------------------------------
    def server_stop(self) -> PlainTextResponse:
        return self._after_answer("Stopping.", "stop")

    def server_kill(self) -> PlainTextResponse:
        return self._after_answer("Killing.", "kill")

    def server_restart(self) -> PlainTextResponse:
        """As A1111: only when something will start the server again (`server_control.restartable`), else 501."""
        if not self.server_control.restartable:
            raise ApiError(501, "not restartable: nothing would start the server again (set SD_WEBUI_RESTART when "
                                "a supervisor restarts it on exit code 75)")
        return self._after_answer("Restarting.", "restart")

    def _after_answer(self, text: str, how: str) -> PlainTextResponse:
        """The answer goes out first; then the server stops (`server_control.request(how)`)."""
        return PlainTextResponse(text, background=BackgroundTask(self.server_control.request, how))

    # ---- lists ---------------------------------------------------------------------------------------------
    def samplers(self) -> list[dict]:
        return sampler_items()

    def schedulers(self) -> list[dict]:
        return schedule_items()

    def upscalers(self) -> list[dict]:
        self.engine.list_upscalers(refresh=True)  # a folder scan: files added since start are listed
        return self.engine.upscaler_items()

    def latent_upscale_modes(self) -> list[dict]:
        return [{"name": name} for name in LATENT_MODES]

    def sd_models(self) -> list[dict]:
        return [self._model_item(i) for i in self.engine.list_checkpoints()]

    @staticmethod
    def _model_item(info) -> dict:
        return {"title": info.title, "model_name": info.model_name, "hash": info.shorthash, "sha256": info.sha256,
                "filename": str(info.path), "config": None}

    def sd_vae(self) -> list[dict]:
        return registries.vaes(self.engine)

    def loras(self) -> list[dict]:
        return registries.loras(self.engine)

    def hypernetworks(self) -> list[dict]:
        return []

    def face_restorers(self) -> list[dict]:
        return [info.as_api() for info in self.engine.face_restorers(refresh=True)]

    def realesrgan_models(self) -> list[dict]:
        """A1111 lists the Real-ESRGAN models it has: those of models/RealESRGAN."""
        return [{"name": item["name"], "path": item["model_path"], "scale": item["scale"]}
                for item in self.engine.upscaler_items() if "RealESRGAN" in Path(item["model_path"] or "").parts]

    def prompt_styles(self) -> list[dict]:
        return registries.styles(self.engine)

    def embeddings(self) -> dict:
        return registries.embeddings(self.engine)

    def memory(self) -> dict:
        return {"ram": _ram(), "cuda": _cuda(self.engine)}

    def scripts(self) -> dict:
        return {"txt2img": self.engine.list_scripts("txt2img"), "img2img": self.engine.list_scripts("img2img")}

    def script_info(self) -> list[dict]:
        return self.engine.script_info()

    def extensions(self) -> list[dict]:
        return registries.extensions(self.extension_manager)

    # ---- refresh / load ------------------------------------------------------------------------------------
    def refresh_checkpoints(self) -> dict:
        self.engine.list_checkpoints(refresh=True)
        return {}

    def refresh_vae(self) -> dict:
        registries.refresh(self.engine, "vaes")
        return {}

    def refresh_loras(self) -> dict:
        registries.refresh(self.engine, "loras")
        return {}

    def refresh_embeddings(self) -> dict:
        registries.refresh(self.engine, "embeddings")
        return {}

    def sd_modules(self) -> list[dict]:
        """A1111 lists the VAE (and text encoder) modules it can load separately; for SD1/SD2/SDXL: the VAEs."""
        return registries.vaes(self.engine)

    def unload_checkpoint(self) -> dict:
        self.engine.unload_checkpoint()
        return {}

    def reload_checkpoint(self) -> dict:
        active = self.engine.active_model()
        self.engine.load_checkpoint(active.title if active is not None else None)
        return {}

    # ---- images ----------------------------------------------------------------------------------------------
    def png_info(self, body: schemas.PNGInfoRequest) -> dict:
        image = decode_image(body.image, "image")
        info, items = image_text_items(image)
        return {"info": info, "items": items, "parameters": parse_infotext(info)}

    def extra_single_image(self, body: schemas.ExtrasSingleImageRequest) -> dict:
        result = self._extras(body, [decode_image(body.image, "image")], [""])
        return {"html_info": _html(result.post), "image": self._encoded(result)[0] if body.show_extras_results
                else None}

    def extra_batch_images(self, body: schemas.ExtrasBatchImagesRequest) -> dict:
        if not body.imageList:
            raise ApiError(422, "imageList: no images given")
        images = [decode_image(f.data, f"imageList[{i}].data") for i, f in enumerate(body.imageList)]
        result = self._extras(body, images, [f.name for f in body.imageList])
        return {"html_info": _html(result.post), "images": self._encoded(result) if body.show_extras_results
                else []}

    def _extras(self, body: schemas.ExtrasBase, images: list, names: list[str]):
        fields = body.model_dump(include=set(ExtrasRequest.__dataclass_fields__) - {"images", "names"})
        return self.engine.extras(ExtrasRequest(images=images, names=names, save_images=self.options.always_save,
                                                **fields))

    @staticmethod
    def _encoded(result) -> list[str]:
        """As A1111 answers: each image with its own infotext, and the postprocessing in a text chunk of its own."""
        extra = {"postprocessing": result.post} if result.post else None
        return [encode_png(image, source or None, extra) for image, source in zip(result.images, result.sources)]


def ping() -> dict:
    """A1111's liveness check: an empty object once the server answers."""
    return {}


def _html(post: str) -> str:
    return f"<p>{post}</p>" if post else ""


def _ram() -> dict:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return {"free": vm.available, "used": vm.total - vm.available, "total": vm.total}
    except Exception as exc:  # noqa: BLE001
        try:
            pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            avail = os.sysconf("SC_AVPHYS_PAGES")
            return {"free": avail * size, "used": (pages - avail) * size, "total": pages * size}
        except (ValueError, OSError, AttributeError):
            return {"error": str(exc)}


def _cuda(engine) -> dict:
    try:
        import torch

        if not torch.cuda.is_available() or engine.device.device.type != "cuda":
            return {"error": "unavailable"}
        dev = engine.device.device
        free, total = torch.cuda.mem_get_info(dev)
        stats = torch.cuda.memory_stats(dev)
        return {
            "system": {"free": free, "used": total - free, "total": total},
            "active": {"current": stats.get("active_bytes.all.current", 0), "peak": stats.get("active_bytes.all.peak", 0)},
            "allocated": {"current": stats.get("allocated_bytes.all.current", 0),
                          "peak": stats.get("allocated_bytes.all.peak", 0)},
            "reserved": {"current": stats.get("reserved_bytes.all.current", 0),
                         "peak": stats.get("reserved_bytes.all.peak", 0)},
            "inactive": {"current": stats.get("inactive_split_bytes.all.current", 0),
                         "peak": stats.get("inactive_split_bytes.all.peak", 0)},
            "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)},
        }
    except Exception as exc:  # noqa: BLE001
        return {"error": str(exc)}


def mount_api(app: FastAPI, engine, auth: list[tuple[str, str]] | None = None, extensions=None,
              flags: dict | None = None, server_control=None) -> SdApi:
    """Add the /sdapi/v1 routes and /internal/ping to `app` (HTTP Basic on every /sdapi/v1 route when `auth` is
    given). Call it before the Gradio UI is mounted at "/", so these routes are matched first. `flags`: the launch
    flags for /cmd-flags; `server_control` (with `.restartable` and `.request("stop" | "kill" | "restart")`): serve
    /server-stop, /server-kill and /server-restart, as A1111's --api-server-stop."""
    api = SdApi(engine, auth, extensions, flags, server_control)
    app.include_router(api.router)
    app.include_router(InspectApi(engine, api.router.dependencies).router)  # /ls/v1/inspect/...
    app.include_router(ControlNetApi(engine, api.router.dependencies).router)  # sd-webui-controlnet's /controlnet/...
    app.add_api_route("/internal/ping", ping, methods=["GET"], tags=["internal"])
    app.state.sdapi = api
    return api
