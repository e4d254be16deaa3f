"""The Gradio web UI: one module per tab, all sharing one `UiContext` (the engine and friends).

`build_ui(ctx)` returns the Blocks; `webui.server` mounts it on FastAPI with `theme=THEME, css=CSS, head=HEAD`.
The engine never imports gradio: everything gradio lives in this package.
"""
from __future__ import annotations

import gradio as gr

from webui.ui import (extensions_tab, extras_tab, header as header_mod, history_tab, img2img, lora_tab, models_tab,
                      pnginfo_tab, settings_tab, styles_tab, train_tab, txt2img, wildcards_tab)
from webui.ui import gallery_actions, inspect_tab, limits
from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel, record_image

__all__ = ["UiContext", "build_ui", "THEME", "CSS", "HEAD"]

# System fonts only: the default theme would fetch Google Fonts, and the UI must work offline.
THEME = gr.themes.Default(
    primary_hue="orange", neutral_hue="slate", radius_size="sm", spacing_size="sm", text_size="md",
    font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)

CSS = """
.gradio-container { max-width: 1600px !important; }
.ls-header { align-items: flex-end; }
.ls-icon-btn { align-self: flex-end; min-height: 42px; }
.ls-model-status { align-self: center; font-size: 0.9em; }
.ls-prompt-group { position: relative; }
.ls-tokens { position: absolute !important; top: 8px; right: 12px; z-index: 5; width: auto !important; font-size: 0.8em;
             padding: 0 6px; border-radius: 4px; background: var(--block-background-fill); opacity: 0.8;
             font-variant-numeric: tabular-nums; pointer-events: none; }
.ls-tokens .ls-over { color: var(--color-accent); font-weight: 600; }
.ls-actions { gap: 8px !important; }
.ls-actions button.lg { min-height: 72px; font-size: 1.15em; }
.ls-tight { gap: 8px !important; }
.ls-seed-row { align-items: flex-end; gap: 6px !important; }
.ls-seed-row button { min-height: 40px; margin-bottom: 2px; }
.ls-status { padding: 6px 10px; border-radius: 6px; font-size: 0.9em; background: var(--block-background-fill);
             border: 1px solid var(--border-color-primary); min-height: 1.6em; }
.ls-status-text { font-variant-numeric: tabular-nums; }
.ls-bar { height: 6px; border-radius: 3px; background: var(--neutral-200); overflow: hidden; margin-bottom: 4px; }
.ls-bar-fill { height: 100%; background: var(--color-accent); transition: width 0.25s ease; }
.ls-error { border-color: #dc2626; color: #b91c1c; }
.ls-warn { border-color: #d97706; }
.ls-ok { border-color: #16a34a; }
.ls-error-text { color: #b91c1c; }
.ls-ok-text { color: var(--body-text-color-subdued); }
.ls-loading { color: #d97706; }
.ls-muted, .ls-hint { color: var(--body-text-color-subdued); font-size: 0.88em; }
.ls-notice { padding: 8px 12px; border: 1px solid #d97706; border-radius: 6px; background: #fffbeb; color: #92400e; }
.ls-kv { border-collapse: collapse; font-size: 0.9em; width: 100%; }
.ls-kv th, .ls-kv td { border: none !important; border-bottom: 1px solid var(--border-color-primary) !important;
                       padding: 4px 6px !important; vertical-align: top; }
.ls-kv th { text-align: left; white-space: nowrap; font-weight: 600; }
.ls-kv td { word-break: break-word; }
#pnginfo_table table, #pnginfo_table tr, #pnginfo_table tbody { border: none !important; }
#pnginfo_table th { width: 30%; }
.ls-align-end { align-items: flex-end !important; }
.ls-inline-btn { align-self: flex-end !important; flex-grow: 0 !important; min-height: 40px; max-height: 44px;
                 margin-bottom: 4px; white-space: nowrap; }
.ls-preview img { width: 100% !important; height: 100% !important; object-fit: contain; image-rendering: pixelated; }
.ls-file-list .wrap { flex-direction: column; align-items: stretch; max-height: 420px; overflow-y: auto; }
.ls-size-row { align-items: flex-end; }
.ls-swap { align-self: center !important; flex-grow: 0 !important; min-height: 40px; font-size: 1.2em; }
.ls-gallery-actions button { flex-grow: 1; white-space: nowrap; }
.ls-origins td:last-child { color: var(--body-text-color-subdued); }
"""

# Ctrl+Enter in a prompt box generates (as in A1111).
HEAD = """
<script>
document.addEventListener('keydown', (e) => {
  if (!(e.ctrlKey || e.metaKey) || e.key !== 'Enter') return;
  for (const mode of ['txt2img', 'img2img']) {
    const box = e.target.closest && e.target.closest('#' + mode + '_prompt, #' + mode + '_neg_prompt');
    if (box) { e.preventDefault(); document.getElementById(mode + '_generate')?.click(); }
  }
});
</script>
""" + limits.LIMITS_HEAD  # limit sliders keep a typed value above their maximum (refused with a message)


def build_ui(ctx: UiContext) -> gr.Blocks:
    with gr.Blocks(title="Latent Studio", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        header = header_mod.Header(ctx).build()
        with gr.Tabs(elem_id="tabs") as tabs:
            panels: dict[str, GenerationPanel] = {"txt2img": txt2img.build(ctx), "img2img": img2img.build(ctx)}
            styles_tab.build(ctx, panels)
            wildcards_tab.build(ctx, panels)
            target = lora_tab.build(ctx, panels)
            models_tab.build(ctx, header)
            extras = extras_tab.build(ctx)
            train_tab.build(ctx)
            inspect_tab.build(ctx).wire_sending(panels["txt2img"], tabs)  # before _wire chains the paste events
            pnginfo_tab.build(ctx, panels, tabs)
            history_tab.build(ctx, panels, tabs)
            extensions_tab.build_extension_tabs(ctx)
            extensions_tab.build(ctx)
            settings_tab.build(ctx, panels)
        _wire(ctx, header, panels, tabs, target)
        # gallery actions that send to another tab; slider maxima from the settings as they are now
        gallery_actions.wire_sending(panels, tabs, extras)
        sliders = [c for p in panels.values() for c in limits.limit_sliders(p)]
        demo.load(lambda: limits.refresh_maxima(sliders, ctx.engine.settings), None, sliders, queue=False,
                  show_progress="hidden", api_visibility="private")
    return demo


def _wire(ctx: UiContext, header, panels: dict[str, GenerationPanel], tabs: gr.Tabs, target: gr.Radio) -> None:
    sizes = [c for p in panels.values() for c in (p.width, p.height)]
    private = dict(api_visibility="private")
    header.timer.tick(header.tick, [header.native, *sizes],
                      [header.checkpoint, header.model_status, header.message, header.native, header.timer, *sizes],
                      show_progress="hidden", **private)
    header.checkpoint.input(header.switch, [header.checkpoint, header.native, *sizes],
                            [header.checkpoint, header.model_status, header.message, header.native, *sizes],
                            show_progress="hidden", concurrency_limit=None, **private)
    header.refresh_btn.click(header.refresh, None, [header.checkpoint, header.model_status, header.vae], **private)
    # a generation may have loaded a checkpoint (after "Unload all", or one named in a request)
    for panel in panels.values():
        for event in panel.generate_events:
            event.then(header.current, None, [header.checkpoint, header.model_status], show_progress="hidden",
                       queue=False, **private)
    header.vae.input(header.select_vae, header.vae, [header.vae, header.message], concurrency_limit=None, **private)

    i2i, t2i = panels["img2img"], panels["txt2img"]

    def chosen(records, selected):
        if not records:
            return None
        return records[selected if isinstance(selected, int) and 0 <= selected < len(records) else 0]

    def send_to_img2img(records, selected):
        rec = chosen(records, selected)
        if rec is None:
            return [*[gr.skip()] * len(i2i.paste_outputs()), gr.skip(), gr.skip()]
        image = record_image(rec)
        editor = {"background": image, "layers": [], "composite": image}
        return [*i2i.paste_values(rec["infotext"]), editor, gr.Tabs(selected="img2img")]

    def send_to_txt2img(records, selected):
        rec = chosen(records, selected)
        if rec is None:
            return [*[gr.skip()] * len(t2i.paste_outputs()), gr.skip()]
        return [*t2i.paste_values(rec["infotext"]), gr.Tabs(selected="txt2img")]

    for panel in panels.values():
        i2i.on_paste(panel.send_img2img_btn.click, send_to_img2img, [panel.records, panel.selected],
                     [i2i.init_editor, tabs])
    t2i.on_paste(i2i.send_txt2img_btn.click, send_to_txt2img, [i2i.records, i2i.selected], [tabs])
    # pasted parameters that name a checkpoint or VAE switch to it as the header's dropdowns do
    for panel in panels.values():
        for event in panel.paste_events:
            event.then(header.apply_pasted, [panel.paste_target, header.native],
                       [header.checkpoint, header.model_status, header.message, header.native, header.vae,
                        panel.paste_target], show_progress="hidden", concurrency_limit=None, **private)

    # the extra-networks cards under each prompt (a checkpoint card loads through the header, as its dropdown)
    for panel in panels.values():
        panel.extra_networks.wire(panel, header, sizes)

    # the LoRA tab inserts into the prompt box focused last
    for label, box in (("txt2img prompt", t2i.prompt), ("txt2img negative", t2i.negative),
                       ("img2img prompt", i2i.prompt), ("img2img negative", i2i.negative)):
        box.focus(None, None, target, js=f"() => {label!r}", queue=False, show_progress="hidden", **private)
