#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint, and run the whole test suite. .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Third-party kernel libraries for the backend tests (../shared/third_party/README.md):
# used when that folder exists and the variable is not set already.
if [[ -d ../shared/third_party ]]; then
    # the physical path: builds resolve symlinks, and a Makefile must see the same paths
    third_party=$(cd ../shared/third_party && pwd -P)
    export TINYGEN_CMSIS_NN=${TINYGEN_CMSIS_NN:-$third_party/cmsis-nn}
    export TINYGEN_ESP_NN=${TINYGEN_ESP_NN:-$third_party/esp-nn}
    export TINYGEN_TFLM=${TINYGEN_TFLM:-$third_party/esp-tflite-micro}
fi
.venv/bin/ruff check tinygen tests bench
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    echo "test: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit $rc
