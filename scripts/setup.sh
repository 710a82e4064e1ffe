#!/usr/bin/env bash
# Set up tinygen in ./.venv: system packages (when root), torch==2.13.0 first, then the
# project with its dev tools. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools the tests and builds call. gcc compiles the generated host C; the lx106
# toolchain, picolibc and qemu-system-misc (qemu-system-xtensa) run --target qemu-xtensa;
# clang-22 and llvm-22 (llc-22, llvm-size-22) are the esp32 compile check; ffmpeg decodes
# G.722 for `data import`; flite and festival (+ voices) are `data synth --engines`.
APT_PACKAGES=(gcc make espeak-ng sox ffmpeg flite festival festvox-kallpc16k festvox-kdlpc16k
              festvox-us-slt-hts gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
              gcc-xtensa-lx106 picolibc-xtensa-lx106-elf qemu-system-misc clang-22 llvm-22)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        echo "setup: apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: missing system packages; run: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
# torch first and pinned: a looser requirement with no torch installed pulls a CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
echo "setup: ready ($(.venv/bin/tinygen --version))"
