#!/usr/bin/env bash
# Set up and run the main job: describe the mcu-tiny model and its weight sharing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tinygen info preset:mcu-tiny
