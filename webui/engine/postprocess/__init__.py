"""Post-processing of finished images: upscalers (built-in and spandrel models, tiled)."""
