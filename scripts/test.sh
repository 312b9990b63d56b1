#!/usr/bin/env bash
# The one test command: sets up what the suite needs, runs `ruff check` and `mypy`, then the whole
# pytest suite. Extra arguments go to pytest (scripts/test.sh -k supervisor -x).
# Exits with pytest's status; "no tests collected" (5) is a failure like any other.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"

# Tests never phone home and never reach a model hub.
export GRADIO_ANALYTICS_ENABLED=False
export HF_HUB_OFFLINE=1
export PIP_NO_INPUT=1
export RAY_USAGE_STATS_ENABLED=0

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating $VENV with ${PYTHON:-python3}"
    "${PYTHON:-python3}" -m venv "$VENV"
fi
# Reinstall only when a requirements file changed since the last successful install. The
# cluster tier (tests/cluster) needs Ray Serve, the optional extra in requirements-cluster.txt.
stamp="$VENV/.requirements-dev.txt.sha256"
want="$(cat requirements.txt requirements-dev.txt requirements-cluster.txt | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    echo "==> installing requirements-dev.txt and requirements-cluster.txt into .venv"
    "$VENV/bin/python" -m pip install --no-input --progress-bar off -q -r requirements-dev.txt \
        -r requirements-cluster.txt
    printf '%s\n' "$want" >"$stamp"
fi

# The browser tests drive Debian's Chromium (Playwright's own browser download is not
# assumed to be reachable). Install it only where that is ours to do: as root, or in CI.
if ! command -v chromium >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]]; then
        echo "==> installing Debian chromium"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
    elif [[ "${CI:-}" == true ]] && command -v sudo >/dev/null 2>&1; then
        echo "==> installing Debian chromium (sudo)"
        sudo -n apt-get update -qq
        sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
    else
        echo "!! chromium is missing and this is not root: install it (apt-get install chromium)" >&2
        echo "   or the browser tests will fail" >&2
    fi
fi

# The image tier (tests/image) builds the Dockerfile and runs it with rootful podman; the base
# image comes from debootstrap. Install them where that is ours to do, as for chromium. Where
# podman still cannot run, that tier fails and says why: it never skips.
IMAGE_PACKAGES=(podman buildah runc debootstrap uidmap fuse-overlayfs slirp4netns)
missing=()
for tool in podman buildah runc debootstrap newuidmap fuse-overlayfs slirp4netns; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    if [[ "$(id -u)" == 0 ]]; then
        echo "==> installing ${IMAGE_PACKAGES[*]} for the image tier (missing: ${missing[*]})"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${IMAGE_PACKAGES[@]}"
    elif [[ "${CI:-}" == true ]] && command -v sudo >/dev/null 2>&1; then
        echo "==> installing ${IMAGE_PACKAGES[*]} for the image tier (sudo; missing: ${missing[*]})"
        sudo -n apt-get update -qq
        sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${IMAGE_PACKAGES[@]}"
    else
        echo "!! ${missing[*]} missing and this is not root: install ${IMAGE_PACKAGES[*]}" >&2
        echo "   (apt-get install), or the image tests will fail" >&2
    fi
fi

echo "==> ruff check ."
"$VENV/bin/ruff" check .

# The type checker, over the packages and scripts listed in pyproject.toml ([tool.mypy]): a
# drifting signature (Engine or RemoteEngine against EngineAPI) fails here, before any test runs.
echo "==> mypy"
"$VENV/bin/python" -m mypy

echo "==> pytest $*"
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
if [[ "$status" == 5 ]]; then
    echo "!! pytest collected no tests: that is a failure" >&2
fi
exit "$status"
