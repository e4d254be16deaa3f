"""Latent Studio: `python app.py` starts the web UI; `python app.py generate --prompt ...` runs headless.
Flags: `python app.py --help`."""
import sys

from webui.cli import main

if __name__ == "__main__":
    sys.exit(main())
