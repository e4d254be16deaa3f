"""Scripts (A1111's Script dropdown; script_name + script_args in the API): the built-in ones register as "script"
hooks, the way an extension's do (`ext.script(obj)`); webui/engine/scripts/base.py says what a script is."""
from __future__ import annotations

BUILTIN_ORDER = -1000  # before the extensions' scripts, as A1111 lists its own scripts first


class BuiltinScripts:
    """The owner of the built-in scripts' hooks (an extension is the owner of its own)."""
    name = "builtin"
    active = True


def register_builtin_scripts(hooks) -> None:
    """X/Y/Z plot, SD upscale, prompt matrix and prompts from file, once per Hooks."""
    if any(isinstance(h.owner, BuiltinScripts) for h in hooks.of("script")):
        return
    from webui.engine.scripts.prompt_matrix import PromptMatrix
    from webui.engine.scripts.prompts_from_file import PromptsFromFile
    from webui.engine.scripts.sd_upscale import SdUpscale
    from webui.engine.scripts.xyz_plot import XyzPlot

    owner = BuiltinScripts()
    for script in (PromptMatrix(), PromptsFromFile(), SdUpscale(), XyzPlot()):
        hooks.add("script", script, BUILTIN_ORDER, owner)
