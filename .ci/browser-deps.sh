#!/bin/sh
# System packages for the browser tests (tests/ui, marker "browser"): Debian's chromium, which Playwright drives
# through executable_path=/usr/bin/chromium. Never `playwright install` (it downloads a browser).
# Python side (playwright, pytest) comes from the project's requirements.
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update
$SUDO apt-get install -y chromium
