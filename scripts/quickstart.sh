#!/usr/bin/env bash
# Set up and run the main job: compile the mcu-tiny model for the host, then prove the
# generated C computes exactly what the golden reference computes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MODEL=preset:mcu-tiny
if [[ -f models/mcu-tiny.pt ]]; then
    MODEL=models/mcu-tiny.pt  # the shipped, trained checkpoint
fi
.venv/bin/tinygen info "$MODEL"
.venv/bin/tinygen build "$MODEL" --target host -o out/mcu-tiny-host --force
.venv/bin/tinygen verify out/mcu-tiny-host
