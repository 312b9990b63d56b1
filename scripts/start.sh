#!/usr/bin/env bash
# Start the SeqGPT-560M appliance on this machine under Supervisor, from a fresh clone.
#
# Sets up .venv, finds weights (real ones, a download, or loudly: demo weights), writes the
# SEQGPT_* settings given to it into the workspace's settings file, starts supervisord with
# supervisor/supervisord.conf in the background and waits for /health. It records the
# workspace in .seqgpt-instance, so stop.sh, status.sh, supervisorctl and a second start.sh
# find the running copy from any shell. Running it again while the appliance is up only
# reports what is running, whatever the environment says.
#
# Settings (all optional): SEQGPT_WORKSPACE (default: the recorded one, else logs/ here),
# SEQGPT_START_TIMEOUT (seconds to wait for /health, 900), PYTHON (interpreter that creates
# .venv, python3), and every SEQGPT_* the app reads (SEQGPT_PORT, SEQGPT_MODEL_DIR ...): those
# are written into $SEQGPT_WORKSPACE/seqgpt560m.env, where they stay for the next start. The
# benchmark switches (SEQGPT_EXTRACT_EXACT_TOKENS, SEQGPT_GENERATE_IGNORE_EOS) are not settings:
# they hold until scripts/stop.sh, through supervisord's environment, and never enter the file.
set -euo pipefail

CALLER_DIR="$PWD"
# shellcheck source-path=SCRIPTDIR source=instance.sh
source "$(dirname "${BASH_SOURCE[0]}")/instance.sh"
cd "$ROOT"
DEMO_DIR="$ROOT/models/demo"
DEFAULT_MODEL_DIR="/root/models/seqgpt-560m"
START_TIMEOUT="${SEQGPT_START_TIMEOUT:-900}"
# Read by start.sh itself; every other SEQGPT_* variable is a setting of the app.
NOT_APP_SETTINGS=" SEQGPT_WORKSPACE SEQGPT_HOME SEQGPT_PYTHON SEQGPT_START_TIMEOUT "
# model_loader/backends/bench.py's switches: for this run of supervisord only, so that a
# benchmark's start does not pin answers on every later start of the workspace.
BENCH_SWITCHES=" SEQGPT_EXTRACT_EXACT_TOKENS SEQGPT_GENERATE_IGNORE_EOS "

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

report_running() {
    local ws="$1" url
    url="$(url_in "$ws")"
    say "==> already running (supervisord pid $(ctl_in "$ws" pid), workspace $ws); not starting a second copy."
    if [[ -n "${SEQGPT_WORKSPACE:-}" || -n "$(app_settings_given)$(bench_switches_given)" ]]; then
        say "    Settings given to this start.sh are not applied to a running copy: run scripts/stop.sh first,"
        say "    or edit $ws/$PROGRAM.env and run scripts/supervisorctl restart $PROGRAM."
    fi
    ctl_in "$ws" status || true
    say "health: $(health_at "$url")"
    print_commands "$ws"
}

app_settings_given() {
    local name
    for name in $(compgen -e | grep '^SEQGPT_' || true); do
        [[ "$NOT_APP_SETTINGS$BENCH_SWITCHES" == *" $name "* ]] || printf '%s=%s\n' "$name" "${!name}"
    done
}

bench_switches_given() {
    local name
    for name in $BENCH_SWITCHES; do
        [[ -z "${!name+set}" ]] || printf '%s=%s\n' "$name" "${!name}"
    done
}

# SEQGPT_REPLICAS (given now or kept in the settings file) needs Ray Serve, an optional extra:
# installed then, and only then, so the single-box appliance never carries it.
ensure_cluster_extra() {
    local replicas stamp want
    replicas="$(setting_in "$WORKSPACE" SEQGPT_REPLICAS)"
    [[ -n "$replicas" && "$replicas" != 0 ]] || return 0
    stamp="$VENV/.requirements-cluster.txt.sha256"
    want="$(cat requirements.txt requirements-cluster.txt | sha256sum | cut -d' ' -f1)"
    if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
        say "==> SEQGPT_REPLICAS=$replicas: installing requirements-cluster.txt (Ray Serve) into .venv"
        "$VENV/bin/python" -m pip install --no-input --progress-bar off -q -r requirements-cluster.txt
        printf '%s\n' "$want" >"$stamp"
    fi
}

remember() { "$VENV/bin/python" -m webui.settings_file remember "$WORKSPACE" "$@"; }

banner() {
    say ""
    say "############################################################################"
    for line in "$@"; do say "##  $line"; done
    say "############################################################################"
    say ""
}

# The model the settings file names, unless that is the demo fallback and the caller named none:
# then the real model's usual place is looked at again, in case it has been installed since.
choose_model() {
    local wanted
    wanted="$(setting_in "$WORKSPACE" SEQGPT_MODEL_DIR)"
    if [[ -z "${SEQGPT_MODEL_DIR:-}" && "$wanted" == "$DEMO_DIR" ]]; then
        wanted="$DEFAULT_MODEL_DIR"
    fi
    WANTED_MODEL_DIR="$wanted"
    if "$VENV/bin/python" scripts/download_model.py --check --dest "$wanted" >/dev/null 2>&1; then
        MODEL_DIR="$wanted"
        say "==> model: $MODEL_DIR"
    else
        say "==> no SeqGPT-560M in $wanted; trying to download it"
        if "$VENV/bin/python" scripts/download_model.py --dest "$wanted"; then
            MODEL_DIR="$wanted"
        else
            if ! "$VENV/bin/python" scripts/download_model.py --check --dest "$DEMO_DIR" >/dev/null 2>&1; then
                "$VENV/bin/python" scripts/make_demo_model.py "$DEMO_DIR"
            fi
            MODEL_DIR="$DEMO_DIR"
        fi
    fi
    remember "SEQGPT_MODEL_DIR=$MODEL_DIR"
}

warn_if_demo() {
    if [[ -f "$MODEL_DIR/DEMO_WEIGHTS.md" ]]; then
        banner "RUNNING ON DEMO WEIGHTS (random): every answer is MEANINGLESS." \
            "Weights in use: $MODEL_DIR" \
            "Install the real model (it also points $(from_root "$WORKSPACE")/$PROGRAM.env at it):" \
            "  .venv/bin/python scripts/download_model.py --dest $WANTED_MODEL_DIR" \
            "  (a copy you have: put it there and add --source none)" \
            "then restart: scripts/supervisorctl restart $PROGRAM"
    fi
}

wait_for_health() {
    local start=$SECONDS last_report=-10 reply state
    say "==> waiting for $URL/health (up to ${START_TIMEOUT}s)"
    while ((SECONDS - start < START_TIMEOUT)); do
        reply="$(health_at "$URL")"
        [[ "$reply" == 200* ]] && return 0
        state="$(ctl_in "$WORKSPACE" status "$PROGRAM" 2>/dev/null | awk '{print $2}' || true)"
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

port_in_use() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

ensure_venv

# A copy already running, in the recorded workspace or the one asked for, is reported, never doubled.
RECORDED="$(recorded_workspace)"
if [[ -n "$RECORDED" ]] && running_in "$RECORDED"; then
    report_running "$RECORDED"
    exit 0
fi
WORKSPACE="${SEQGPT_WORKSPACE:-${RECORDED:-$ROOT/logs}}"
[[ "$WORKSPACE" == /* ]] || WORKSPACE="$CALLER_DIR/$WORKSPACE"
# From here on, what is created is its owner's only: the workspace holds the settings file (a
# password in SEQGPT_AUTH), the log (text prefixes) and batch results (whole texts).
umask 077
mkdir -p "$WORKSPACE"
chmod go-rwx "$WORKSPACE"
WORKSPACE="$(cd "$WORKSPACE" && pwd)"
if running_in "$WORKSPACE"; then
    printf 'SEQGPT_WORKSPACE=%s\n' "$WORKSPACE" >"$INSTANCE_FILE"
    report_running "$WORKSPACE"
    exit 0
fi

# The settings given here go into the settings file, where the app reads them at every start
# and the operator edits them; supervisord gets none of them (see the start below).
mapfile -t GIVEN < <(app_settings_given)
remember "${GIVEN[@]}"
URL="$(url_in "$WORKSPACE")"
CHECK="${URL#http://}"
if port_in_use "${CHECK%:*}" "${CHECK##*:}"; then
    say "!! something else already listens on $CHECK (not this appliance's supervisord)."
    say "   Stop it, or choose another port: SEQGPT_PORT=7861 scripts/start.sh"
    exit 1
fi

choose_model
warn_if_demo
ensure_cluster_extra

say "==> starting supervisord ($(from_root "$CONF"), workspace $WORKSPACE)"
printf 'SEQGPT_WORKSPACE=%s\n' "$WORKSPACE" >"$INSTANCE_FILE"
# supervisord passes its environment to the app, and the environment overrides the settings
# file, so it starts without any SEQGPT_* of this shell (the benchmark switches aside): an edited
# file then takes effect on `supervisorctl restart`. The config keeps supervisord in the foreground (it is PID 1 in the
# image), so here it is detached instead: a new session, no stdin, output to a file.
UNSET=()
for name in $(compgen -e | grep '^SEQGPT_' || true); do UNSET+=(-u "$name"); done
mapfile -t SWITCHES < <(bench_switches_given)
env "${UNSET[@]}" "${SWITCHES[@]}" SEQGPT_WORKSPACE="$WORKSPACE" SEQGPT_HOME="$ROOT" SEQGPT_PYTHON="$VENV/bin/python" \
    nohup setsid "$VENV/bin/supervisord" -c "$CONF" >"$WORKSPACE/supervisord.out" 2>&1 </dev/null &
for _ in $(seq 1 30); do
    running_in "$WORKSPACE" && break
    sleep 1
done
if ! running_in "$WORKSPACE"; then
    say "!! supervisord did not start; its output:"
    tail -n 30 "$WORKSPACE/supervisord.out" || true
    exit 1
fi

if ! wait_for_health; then
    say "--- last lines of $WORKSPACE/$PROGRAM.log ---"
    tail -n 40 "$WORKSPACE/$PROGRAM.log" 2>/dev/null || true
    say "--- (supervisord is left running so you can look; scripts/stop.sh stops it)"
    exit 1
fi

say "==> ready: $(health_at "$URL")"
warn_if_demo
print_commands "$WORKSPACE"
