#!/usr/bin/env bash
# Set up and run the main job: compile the mcu-tiny model for the host, prove the generated
# C computes exactly what the golden reference computes, then speak a phrase into a WAV
# file with the project's synthesizer and transcribe it with the compiled C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MODEL=preset:mcu-tiny
if [[ -f models/mcu-tiny.pt ]]; then
    MODEL=models/mcu-tiny.pt  # the shipped, trained checkpoint
fi
.venv/bin/tinygen info "$MODEL"
# a 3 s window: the whole phrase fits (a windowed model refuses longer audio)
.venv/bin/tinygen build "$MODEL" --target host -o out/mcu-tiny-host --window-ms 3000 --force
.venv/bin/tinygen verify out/mcu-tiny-host
.venv/bin/tinygen data say "turn on the kitchen lights" -o out/hello.wav --force
.venv/bin/tinygen transcribe out/mcu-tiny-host out/hello.wav
