#!/usr/bin/env bash
# Sourced by start.sh, stop.sh, status.sh and supervisorctl: where the appliance that start.sh
# started lives. start.sh records its workspace in the checkout (.seqgpt-instance), and the
# settings (port, host, model ...) live in that workspace's seqgpt560m.env, so that any shell
# finds the running copy without repeating the environment it was started with.
# Sourced, never run; strict like the scripts that source it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF="$ROOT/supervisor/supervisord.conf"
VENV="$ROOT/.venv"
PROGRAM="seqgpt560m"
INSTANCE_FILE="$ROOT/.seqgpt-instance"

say() { printf '%s\n' "$*"; }

recorded_workspace() {
    [[ -f "$INSTANCE_FILE" ]] && sed -n 's/^SEQGPT_WORKSPACE=//p' "$INSTANCE_FILE" | tail -n 1
    return 0
}

# The workspace the commands act on: the one start.sh recorded, else $SEQGPT_WORKSPACE, else logs/.
known_workspace() {
    local ws
    ws="$(recorded_workspace)"
    printf '%s\n' "${ws:-${SEQGPT_WORKSPACE:-$ROOT/logs}}"
}

# supervisorctl against the supervisord of workspace $1; the config expands these three.
ctl_in() {
    local ws="$1"
    shift
    SEQGPT_WORKSPACE="$ws" SEQGPT_HOME="$ROOT" SEQGPT_PYTHON="$VENV/bin/python" \
        "$VENV/bin/supervisorctl" -c "$CONF" "$@"
}

running_in() { [[ -x "$VENV/bin/supervisorctl" ]] && ctl_in "$1" pid >/dev/null 2>&1; }

# The value the app uses for setting $2 in workspace $1: its settings file, else the default.
setting_in() { (cd "$ROOT" && "$VENV/bin/python" -m webui.settings_file get "$1" "$2"); }

# Why the app would refuse the settings file of workspace $1; empty when every line is well formed.
settings_problem() { (cd "$ROOT" && "$VENV/bin/python" -m webui.settings_file check "$1") || true; }

# The address to check from here: a wildcard bind address is reached through loopback.
url_in() {
    local host port
    host="$(setting_in "$1" SEQGPT_HOST)"
    port="$(setting_in "$1" SEQGPT_PORT)"
    case "$host" in
        "" | 0.0.0.0 | "::" | "[::]") host="127.0.0.1" ;;
    esac
    printf 'http://%s:%s\n' "$host" "$port"
}

# Prints "CODE BODY" for GET $1/health; CODE is 000 when nothing answers.
health_at() {
    "$VENV/bin/python" - "$1/health" <<'PY'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(r.status, r.read(300).decode("utf-8", "replace").replace("\n", " "))
except urllib.error.HTTPError as e:
    print(e.code, e.read(300).decode("utf-8", "replace").replace("\n", " "))
except OSError as e:
    print("000", getattr(e, "reason", e))
PY
}

# A path as the user types it from the repository folder.
from_root() { printf '%s\n' "${1#"$ROOT"/}"; }

print_commands() {
    local ws="$1" url
    url="$(url_in "$ws")"
    say ""
    say "  open the UI     $url"
    say "  health          $url/health"
    say "  status          scripts/status.sh"
    say "  settings        $(from_root "$ws")/$PROGRAM.env  (edit, then restart)"
    say "  restart         scripts/supervisorctl restart $PROGRAM"
    say "  follow the log  tail -f $(from_root "$ws")/$PROGRAM.log"
    say "  stop            scripts/stop.sh"
}
