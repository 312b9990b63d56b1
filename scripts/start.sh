#!/usr/bin/env bash
# Start the SeqGPT-560M appliance on this machine under Supervisor, from a fresh clone.
#
# Sets up .venv, finds weights (real ones, a download, or loudly: demo weights), starts
# supervisord with supervisor/supervisord.conf in the background and waits for /health.
# Running it again while the appliance is up only reports what is running.
#
# Settings (all optional): SEQGPT_MODEL_DIR, SEQGPT_WORKSPACE (default: logs/ here),
# SEQGPT_PORT (7860), SEQGPT_HOST, SEQGPT_START_TIMEOUT (seconds to wait for /health, 900),
# PYTHON (interpreter that creates .venv, python3), and every SEQGPT_* the app reads.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONF="supervisor/supervisord.conf"
VENV="$ROOT/.venv"
PROGRAM="seqgpt560m"
DEMO_DIR="$ROOT/models/demo"

# supervisord.conf expands these three; it refuses to start if any is unset.
export SEQGPT_HOME="$ROOT"
export SEQGPT_PYTHON="$VENV/bin/python"
export SEQGPT_WORKSPACE="${SEQGPT_WORKSPACE:-$ROOT/logs}"
export SEQGPT_PORT="${SEQGPT_PORT:-7860}"
MODEL_DIR="${SEQGPT_MODEL_DIR:-/root/models/seqgpt-560m}"
START_TIMEOUT="${SEQGPT_START_TIMEOUT:-900}"

# A wildcard bind address is reached through loopback from here.
case "${SEQGPT_HOST:-}" in
    "" | 0.0.0.0 | "::" | "[::]") CHECK_HOST="127.0.0.1" ;;
    *) CHECK_HOST="$SEQGPT_HOST" ;;
esac
URL="http://${CHECK_HOST}:${SEQGPT_PORT}"

say() { printf '%s\n' "$*"; }
ctl() { "$VENV/bin/supervisorctl" -c "$CONF" "$@"; }

ensure_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "==> creating $VENV with ${PYTHON:-python3}"
        "${PYTHON:-python3}" -m venv "$VENV"
    fi
    # Reinstall only when requirements.txt changed since the last successful install.
    local stamp="$VENV/.requirements.txt.sha256" want
    want="$(sha256sum requirements.txt | cut -d' ' -f1)"
    if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
        say "==> installing requirements.txt into .venv (the first time takes several minutes)"
        "$VENV/bin/python" -m pip install --no-input --progress-bar off -q -r requirements.txt
        printf '%s\n' "$want" >"$stamp"
    fi
}

print_commands() {
    # supervisorctl finds the socket through the config, which expands SEQGPT_WORKSPACE.
    local ws="${SEQGPT_WORKSPACE#"$ROOT"/}"
    say ""
    say "  open the UI     $URL"
    say "  health          $URL/health"
    say "  status          SEQGPT_WORKSPACE=$ws .venv/bin/supervisorctl -c $CONF status"
    say "  restart         SEQGPT_WORKSPACE=$ws .venv/bin/supervisorctl -c $CONF restart $PROGRAM"
    say "  follow the log  tail -f $ws/$PROGRAM.log"
    say "  stop            scripts/stop.sh"
}

# Prints "CODE BODY" for GET /health; CODE is 000 when nothing answers.
health() {
    "$VENV/bin/python" - "$URL/health" <<'PY'
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

port_in_use() { (exec 3<>"/dev/tcp/${CHECK_HOST}/${SEQGPT_PORT}") 2>/dev/null; }

banner() {
    say ""
    say "############################################################################"
    for line in "$@"; do say "##  $line"; done
    say "############################################################################"
    say ""
}

choose_model() {
    if "$SEQGPT_PYTHON" scripts/download_model.py --check --dest "$MODEL_DIR" 2>/dev/null; then
        export SEQGPT_MODEL_DIR="$MODEL_DIR"
        say "==> model: $MODEL_DIR"
        return
    fi
    say "==> no SeqGPT-560M in $MODEL_DIR; trying to download it"
    if "$SEQGPT_PYTHON" scripts/download_model.py --dest "$MODEL_DIR"; then
        export SEQGPT_MODEL_DIR="$MODEL_DIR"
        return
    fi
    if ! "$SEQGPT_PYTHON" scripts/download_model.py --check --dest "$DEMO_DIR" 2>/dev/null; then
        "$SEQGPT_PYTHON" scripts/make_demo_model.py "$DEMO_DIR"
    fi
    export SEQGPT_MODEL_DIR="$DEMO_DIR"
}

warn_if_demo() {
    if [[ -f "$SEQGPT_MODEL_DIR/DEMO_WEIGHTS.md" ]]; then
        banner "RUNNING ON DEMO WEIGHTS (random): every answer is MEANINGLESS." \
            "Weights in use: $SEQGPT_MODEL_DIR" \
            "For the real model, put SeqGPT-560M in $MODEL_DIR" \
            "(python scripts/download_model.py), or set SEQGPT_MODEL_DIR; then" \
            "run scripts/stop.sh and scripts/start.sh again."
    fi
}

wait_for_health() {
    local start=$SECONDS last_report=-10 reply state
    say "==> waiting for $URL/health (up to ${START_TIMEOUT}s)"
    while ((SECONDS - start < START_TIMEOUT)); do
        reply="$(health)"
        [[ "$reply" == 200* ]] && return 0
        state="$(ctl status "$PROGRAM" 2>/dev/null | awk '{print $2}' || true)"
        if [[ "$state" == FATAL ]]; then
            say "!! $PROGRAM could not stay up (state FATAL)"
            return 1
        fi
        if ((SECONDS - last_report >= 10)); then
            say "   $((SECONDS - start))s: program ${state:-starting}, health: ${reply:0:150}"
            last_report=$SECONDS
        fi
        sleep 2
    done
    say "!! /health was not ready after ${START_TIMEOUT}s"
    return 1
}

ensure_venv
mkdir -p "$SEQGPT_WORKSPACE"

if ctl pid >/dev/null 2>&1; then
    say "==> already running (supervisord pid $(ctl pid)); not starting a second copy:"
    ctl status || true
    say "health: $(health)"
    print_commands
    exit 0
fi
if port_in_use; then
    say "!! something else already listens on ${CHECK_HOST}:${SEQGPT_PORT} (not this appliance's supervisord)."
    say "   Stop it, or choose another port: SEQGPT_PORT=7861 scripts/start.sh"
    exit 1
fi

choose_model
warn_if_demo

say "==> starting supervisord ($CONF, workspace $SEQGPT_WORKSPACE)"
# The config keeps supervisord in the foreground (it is PID 1 in the image), so here
# it is detached from this terminal instead: a new session, no stdin, output to a file.
nohup setsid "$VENV/bin/supervisord" -c "$CONF" \
    >"$SEQGPT_WORKSPACE/supervisord.out" 2>&1 </dev/null &
for _ in $(seq 1 30); do
    ctl pid >/dev/null 2>&1 && break
    sleep 1
done
if ! ctl pid >/dev/null 2>&1; then
    say "!! supervisord did not start; its output:"
    tail -n 30 "$SEQGPT_WORKSPACE/supervisord.out" || true
    exit 1
fi

if ! wait_for_health; then
    say "--- last lines of $SEQGPT_WORKSPACE/$PROGRAM.log ---"
    tail -n 40 "$SEQGPT_WORKSPACE/$PROGRAM.log" 2>/dev/null || true
    say "--- (supervisord is left running so you can look; scripts/stop.sh stops it)"
    exit 1
fi

say "==> ready: $(health)"
warn_if_demo
print_commands
