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
problem="$(settings_problem "$ws")"
if [[ -n "$problem" ]]; then
    say "!! the settings file is wrong, so the app will not start: $problem"
    say "   fix that line, then: scripts/supervisorctl restart $PROGRAM"
fi
say "log        $ws/$PROGRAM.log"
say "url        $url"
say "health     ${reply:0:200}"
(cd "$ROOT" && "$VENV/bin/python" -m webui.jobs.report "$ws") || true
ctl_in "$ws" status || true
# A program that is not up for another reason says why in the last lines it wrote; each failed
# start writes the same lines, so repeats are shown once.
state="$(ctl_in "$ws" status "$PROGRAM" 2>/dev/null | awk '{print $2}' || true)"
if [[ -z "$problem" && "$state" != RUNNING && -f "$ws/$PROGRAM.log" ]]; then
    say "--- $PROGRAM is ${state:-not running}; the last lines of its log:"
    tail -n 40 "$ws/$PROGRAM.log" | uniq | tail -n 8
fi
[[ "$reply" == 200* ]]
