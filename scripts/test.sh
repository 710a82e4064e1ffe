#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint, and run the whole test suite. .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
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
