#!/usr/bin/env bash
# The image's HEALTHCHECK: GET /health on the port the app listens on, which is $SEQGPT_PORT when
# the container sets it, else the SEQGPT_PORT line of the workspace's settings file (edited there
# and applied by a restart), else 7860. Exit 0 when /health answers 200.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port="${SEQGPT_PORT:-}"
if [[ -z "$port" ]]; then
    # The app's own reading of the file (webui.settings_file imports no torch: a fraction of a second).
    port="$(cd "$ROOT" && "${SEQGPT_PYTHON:-python}" -m webui.settings_file get \
        "${SEQGPT_WORKSPACE:-/root/workspace}" SEQGPT_PORT)"
fi
curl -fsS -o /dev/null --max-time 9 "http://127.0.0.1:${port:-7860}/health" || exit 1  # Docker: 1 is unhealthy
