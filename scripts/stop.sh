#!/usr/bin/env bash
# Stop the appliance that scripts/start.sh started: the app first (it finishes the requests in
# flight), then supervisord. Needs no environment: start.sh recorded where it runs.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=instance.sh
source "$(dirname "${BASH_SOURCE[0]}")/instance.sh"

ws="$(known_workspace)"
PIDFILE="$ws/supervisord.pid"
pid=""
[[ -f "$PIDFILE" ]] && pid="$(cat "$PIDFILE")"

if running_in "$ws"; then
    pid="$(ctl_in "$ws" pid)"
    say "==> stopping $PROGRAM and supervisord (pid $pid, workspace $ws)"
    ctl_in "$ws" shutdown
elif [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    # The socket is gone but the process is not: ask it directly, the same signal.
    say "==> supervisord (pid $pid) does not answer on its socket; sending it SIGTERM"
    kill -TERM "$pid"
else
    say "==> not running (no supervisord answers in $ws)"
    exit 0
fi

# supervisord exits once the app has stopped (stopwaitsecs=8 bounds that), so 30 s is ample.
for _ in $(seq 1 30); do
    if ! kill -0 "$pid" 2>/dev/null; then
        say "==> stopped"
        exit 0
    fi
    sleep 1
done
say "!! supervisord (pid $pid) is still running after 30 s; look at $ws/supervisord.log" >&2
exit 1
