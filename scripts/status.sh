#!/usr/bin/env bash
# Is the appliance that scripts/start.sh started running, and is it healthy? Needs no environment.
# Exit status: 0 running and healthy, 1 running but /health is not 200, 3 not running.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=instance.sh
source "$(dirname "${BASH_SOURCE[0]}")/instance.sh"

ws="$(known_workspace)"
if ! running_in "$ws"; then
    say "not running (workspace $ws); start it with scripts/start.sh"
    exit 3
fi
url="$(url_in "$ws")"
reply="$(health_at "$url")"
say "workspace  $ws"
say "settings   $ws/$PROGRAM.env"
say "log        $ws/$PROGRAM.log"
say "url        $url"
say "health     ${reply:0:200}"
(cd "$ROOT" && "$VENV/bin/python" -m webui.jobs.report "$ws") || true
ctl_in "$ws" status || true
[[ "$reply" == 200* ]]
