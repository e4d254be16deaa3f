"""A1111-compatible REST API (/sdapi/v1) on the engine. FastAPI only; never imports gradio.

    from webui.api import mount_api
    mount_api(app, engine, auth=[("user", "pass")])   # before mounting the Gradio UI at "/"
"""
from webui.api.routes import PREFIX, SdApi, mount_api

__all__ = ["PREFIX", "SdApi", "mount_api"]
