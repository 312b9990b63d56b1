#!/usr/bin/env bash
# Stop the appliance that scripts/start.sh started: the app first (it finishes the
# requests in flight), then supervisord. Uses the same SEQGPT_WORKSPACE as start.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONF="supervisor/supervisord.conf"
VENV="$ROOT/.venv"
export SEQGPT_HOME="$ROOT"
export SEQGPT_PYTHON="$VENV/bin/python"
export SEQGPT_WORKSPACE="${SEQGPT_WORKSPACE:-$ROOT/logs}"
PIDFILE="$SEQGPT_WORKSPACE/supervisord.pid"

ctl() { "$VENV/bin/supervisorctl" -c "$CONF" "$@"; }

pid=""
[[ -f "$PIDFILE" ]] && pid="$(cat "$PIDFILE")"

if [[ -x "$VENV/bin/supervisorctl" ]] && ctl pid >/dev/null 2>&1; then
    pid="$(ctl pid)"
    echo "==> stopping seqgpt560m and supervisord (pid $pid)"
    ctl shutdown
elif [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    # The socket is gone but the process is not: ask it directly, the same signal.
    echo "==> supervisord (pid $pid) does not answer on its socket; sending it SIGTERM"
    kill -TERM "$pid"
else
    echo "==> not running (no supervisord answers in $SEQGPT_WORKSPACE)"
    exit 0
fi

# supervisord exits once the app has stopped (stopwaitsecs=8 bounds that), so 30 s is ample.
for _ in $(seq 1 30); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "==> stopped"
        exit 0
    fi
    sleep 1
done
echo "!! supervisord (pid $pid) is still running after 30 s; look at $SEQGPT_WORKSPACE/supervisord.log" >&2
exit 1
