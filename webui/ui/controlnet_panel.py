"""The ControlNet accordion of txt2img and img2img: sd-webui-controlnet's units (the setting
controlnet_unit_count, 3 by default), each with its image, preprocessor, model and settings, and a preview of the
preprocessed image. `request_fields(data)` gives the request's controlnet_units; `paste_values(params)` sets the
units from a pasted infotext's "ControlNet N" entries."""
from __future__ import annotations

import gradio as gr
from PIL import Image

from webui.engine import (CONTROL_MODES, CONTROLNET_RESIZE_MODES, ControlNetUnit, EngineError,
                          controlnet_units_from_params)

NONE = "None"


class ControlNetPanel:
    def __init__(self, engine, mode: str):
        self.engine, self.mode = engine, mode
        self.units: list[dict[str, gr.components.Component]] = []

    def build(self) -> "ControlNetPanel":
        m = self.mode
        models = [NONE, *self.engine.controlnet_models()]
        modules = self.engine.controlnet_modules()
        with gr.Accordion("ControlNet", open=False, elem_id=f"{m}_controlnet"):
            with gr.Tabs():
                for i in range(self.engine.settings.controlnet_unit_count):
                    with gr.Tab(f"ControlNet Unit {i}"):
                        self.units.append(self._unit(i, models, modules))
            refresh = gr.Button("Refresh models", size="sm", elem_id=f"{m}_controlnet_refresh")
            refresh.click(lambda: [gr.update(choices=[NONE, *self.engine.controlnet_models(refresh=True)])
                                   for _ in self.units], None, [u["model"] for u in self.units], queue=False,
                          api_visibility="private")
        return self

    def _unit(self, i: int, models: list[str], modules: list[str]) -> dict:
        p = f"{self.mode}_controlnet_{i}"
        with gr.Row():
            image = gr.Image(label="Control image", type="pil", sources=["upload", "clipboard"], height=220,
                             elem_id=f"{p}_image")
            preview = gr.Image(label="Preprocessor preview", type="pil", interactive=False, height=220,
                               elem_id=f"{p}_preview")
        with gr.Row():
            enabled = gr.Checkbox(label="Enable", value=False, elem_id=f"{p}_enable")
            pixel_perfect = gr.Checkbox(label="Pixel Perfect", value=False, elem_id=f"{p}_pixel_perfect")
        with gr.Row():
            module = gr.Dropdown(modules, value="none", label="Preprocessor", elem_id=f"{p}_module")
            model = gr.Dropdown(models, value=NONE, label="Model", elem_id=f"{p}_model")
            run = gr.Button("Preview", size="sm", elem_id=f"{p}_run_preview")
        with gr.Row():
            weight = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Control Weight", elem_id=f"{p}_weight")
            start = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Starting Control Step", elem_id=f"{p}_start")
            end = gr.Slider(0.0, 1.0, value=1.0, step=0.01, label="Ending Control Step", elem_id=f"{p}_end")
        with gr.Row():
            res = gr.Slider(64, 2048, value=512, step=8, label="Preprocessor Resolution", elem_id=f"{p}_res")
            a = gr.Number(value=-1, label="Threshold A (-1: default)", elem_id=f"{p}_threshold_a")
            b = gr.Number(value=-1, label="Threshold B (-1: default)", elem_id=f"{p}_threshold_b")
        control_mode = gr.Radio(list(CONTROL_MODES), value=CONTROL_MODES[0], label="Control Mode",
                                elem_id=f"{p}_control_mode")
        resize_mode = gr.Radio(list(CONTROLNET_RESIZE_MODES), value="Crop and Resize", label="Resize Mode",
                               elem_id=f"{p}_resize_mode")
        run.click(self.preview, [module, image, res, a, b], preview, api_visibility="private")
        return dict(image=image, enabled=enabled, pixel_perfect=pixel_perfect, module=module, model=model,
                    weight=weight, guidance_start=start, guidance_end=end, processor_res=res, threshold_a=a,
                    threshold_b=b, control_mode=control_mode, resize_mode=resize_mode)

    def preview(self, module: str, image: Image.Image | None, res, a, b):
        """The preprocessed image, as the unit will use it."""
        if image is None:
            raise gr.Error("Upload a control image first")
        try:
            return self.engine.controlnet_detect(module, [image], int(res), float(a), float(b))[0]
        except EngineError as exc:
            raise gr.Error(str(exc)) from None

    @property
    def inputs(self) -> set:
        return {c for unit in self.units for c in unit.values()}

    def request_fields(self, data: dict) -> dict:
        units = []
        for comps in self.units:
            values = {name: data.get(comp) for name, comp in comps.items()}
            if not values["enabled"]:
                continue
            image = values.pop("image")
            units.append(ControlNetUnit(image=image.convert("RGB") if image is not None else None,
                                        **{k: v for k, v in values.items() if v is not None}))
        return {"controlnet_units": units} if units else {}

    # ---- pasting parameters -----------------------------------------------------------------------------
    def paste_outputs(self) -> list:
        """The unit controls a pasted infotext sets (all but the control image and its preview)."""
        return [comp for unit in self.units for name, comp in unit.items() if name != "image"]

    def paste_values(self, params: dict) -> tuple[list, list[str]]:
        """Values for `paste_outputs()` from a parsed infotext, and notes on what could not be set. Units are
        filled in the order written; the units after them are disabled; no ControlNet entry leaves all alone."""
        written = controlnet_units_from_params(params)
        if not written:
            return [gr.skip()] * len(self.paste_outputs()), []
        models, notes, values = self.engine.controlnet_models(), [], []
        for i, comps in enumerate(self.units):
            unit = dict(written[i]) if i < len(written) else {"enabled": False}
            if "model" in unit:
                unit["model"] = _installed(str(unit["model"]), models, notes, i)
            if not isinstance(unit.get("processor_res"), int) or unit["processor_res"] < 64:
                unit.pop("processor_res", None)  # -1 (the module's default) is not a slider value
            values += [unit.get(name, gr.skip()) for name in comps if name != "image"]
        if len(written) > len(self.units):
            notes.append(f"ControlNet units past {len(self.units)} (the setting controlnet_unit_count)")
        return values, notes


def _installed(title: str, models: list[str], notes: list[str], index: int) -> str:
    """The installed model a pasted "name [hash]" means: the same title, else the same name; else None + a note."""
    if title in models or title == NONE:
        return title
    name = title.split(" [")[0]
    same = [m for m in models if m.split(" [")[0] == name]
    if same:
        return same[0]
    notes.append(f"ControlNet {index}: model {title} (not installed)")
    return NONE
