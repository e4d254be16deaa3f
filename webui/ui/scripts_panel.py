"""A1111's Script dropdown for txt2img and img2img: "None" or one of the engine's scripts (X/Y/Z plot, SD upscale,
prompt matrix, prompts from file, and extensions' scripts), each with its controls built from the script's own
argument list (`engine.script_args`), so the UI sends exactly the `script_args` the API takes.

X/Y/Z plot's axis values are typed as text here (comma lists, ranges), as with A1111's "Use text inputs instead of
dropdowns"; its per-axis dropdown lists are not shown."""
from __future__ import annotations

import gradio as gr

NONE = "None"
TEXT_INPUTS = "use text inputs instead of dropdowns"


def _component(arg, elem_id: str):
    """A Gradio control for one ScriptArg (its `kind` says which)."""
    label, value, kind = arg.label or " ", arg.value, arg.kind
    if kind == "html":
        return gr.HTML(str(value or ""), elem_id=elem_id, js_on_load=None)
    if kind == "checkbox":
        return gr.Checkbox(bool(value), label=label, elem_id=elem_id)
    if kind in ("dropdown", "radio") and arg.choices:
        make = gr.Dropdown if kind == "dropdown" else gr.Radio
        return make(list(arg.choices), value=value, label=label, elem_id=elem_id)
    if kind == "slider" and arg.minimum is not None and arg.maximum is not None:
        return gr.Slider(arg.minimum, arg.maximum, value=value, step=arg.step or 1, label=label, elem_id=elem_id)
    if kind == "number":
        return gr.Number(value, label=label, elem_id=elem_id)
    if kind == "multiselect":
        return gr.Dropdown(list(arg.choices or []), value=list(value or []), multiselect=True, label=label,
                           visible=False, elem_id=elem_id)
    return gr.Textbox(str(value if value is not None else ""), label=label, lines=4 if kind == "textarea" else 1,
                      elem_id=elem_id)


class ScriptsPanel:
    """The dropdown and one group of controls per script; `request_fields(data)` gives script_name/script_args."""

    def __init__(self, engine, mode: str):
        self.engine, self.mode = engine, mode
        self.controls: dict[str, list] = {}  # script title -> its components, in script_args order
        self.args: dict[str, list] = {}  # script title -> its ScriptArg list

    def build(self) -> "ScriptsPanel":
        titles = self.engine.list_scripts(self.mode)
        self.dropdown = gr.Dropdown([NONE, *titles], value=NONE, label="Script", elem_id=f"{self.mode}_script")
        groups = []
        for title in titles:
            self.args[title] = self.engine.script_args(title, self.mode)
            with gr.Group(visible=False) as group:
                slug = title.replace(" ", "_").replace("/", "")
                self.controls[title] = [_component(arg, f"{self.mode}_script_{slug}_{i}")
                                        for i, arg in enumerate(self.args[title])]
            groups.append(group)
        self.dropdown.change(lambda chosen: [gr.update(visible=chosen == t) for t in titles], self.dropdown, groups,
                             queue=False, show_progress="hidden", api_visibility="private")
        return self

    @property
    def inputs(self) -> set:
        return {self.dropdown, *(c for comps in self.controls.values() for c in comps)}

    def request_fields(self, data: dict) -> dict:
        """{} for "None"; else the script's name and its arguments in its order (A1111's script_args)."""
        title = data.get(self.dropdown) or NONE
        if title == NONE or title not in self.controls:
            return {}
        values = []
        for arg, comp in zip(self.args[title], self.controls[title]):
            value = data.get(comp, arg.value)
            if arg.label.lower() == TEXT_INPUTS:
                value = True  # the axis values come from the text boxes
            values.append(value)
        return {"script_name": title, "script_args": values}
