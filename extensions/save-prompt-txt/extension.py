"""Example extension: save the prompt next to every image as a .txt file (like A1111's "save text" option).

The file holds the prompt exactly as typed (captured by a prompt hook, before styles and wildcards) and the image's
full infotext. Shows: a prompt hook, an after-save hook, an API route and a UI tab.
"""
from pathlib import Path


def register(ext):
    ext.setting("save", False, "Save a .txt file next to every image")
    recent: list[Path] = []
    typed: dict[int, str] = {}

    def remember(prompt, negative, request):
        typed[id(request)] = prompt
        return prompt, negative

    def write_txt(path: Path, infotext: str, ctx) -> None:
        if not ext.get("save"):
            return
        txt = Path(path).with_suffix(".txt")
        raw = typed.get(id(ctx.request), ctx.prompt)
        txt.write_text(f"Typed prompt: {raw}\n\n{infotext}\n", encoding="utf-8")
        recent.insert(0, txt)
        del recent[50:]

    def last_files():
        return {"files": [str(p) for p in recent if p.exists()]}

    def build_tab(engine):
        import gradio as gr

        box = gr.Textbox(label="Prompt files written this session", lines=10, interactive=False)
        gr.Button("Refresh").click(lambda: "\n".join(last_files()["files"]), outputs=box)

    ext.prompt_transform(remember, order=-100)  # first, to see the prompt as typed
    ext.on_saved(write_txt)
    ext.api_route("/recent", last_files)
    ext.ui_tab("Prompt files", build_tab)
