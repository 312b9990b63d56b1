#!/usr/bin/env bash
# podman as the image tier runs it: the one place for what the project's build machines need
# and a user's `docker build` / `docker run` does not.
#
#   tests/image/podman.sh base                  make the base image (debootstrap), once
#   tests/image/podman.sh build TAG [ARGS...]   build the repository's Dockerfile as TAG
#   tests/image/podman.sh ARGS...               any other podman command, same settings
#
# Machine-specific, and why:
# - containers.conf (next to this script): runc instead of crun, and ulimits the machine allows;
# - the base image is Debian bookworm from debootstrap and this machine's own Debian archive,
#   imported as $BASE_IMAGE, because no container registry is reachable; the Dockerfile's
#   default base is the same distribution from Docker Hub;
# - --format docker, because the OCI image format has no HEALTHCHECK;
# - outbound HTTPS is re-signed by a local certificate authority, so the build gets the host's
#   CA bundle as the build secret `ca` (used for that step only, nothing stays in the image).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CONTAINERS_CONF="$HERE/containers.conf"
BASE_IMAGE="${SEQGPT_TEST_BASE_IMAGE:-localhost/debian-base:bookworm}"
CA_BUNDLE="${SEQGPT_TEST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

# The first URI of a bookworm source in this machine's apt configuration (deb822 or one-line).
debian_mirror() {
    local uri
    uri="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* \
        | grep -v security | head -n 1 | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' \
        | awk '{print $1}')"
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

make_base() {
    if podman image exists "$BASE_IMAGE"; then
        echo "==> base image $BASE_IMAGE already there"
        return
    fi
    local mirror dir
    mirror="$(debian_mirror)"
    dir="$(mktemp -d)"
    trap 'rm -rf "$dir"' RETURN
    echo "==> debootstrap --variant=minbase bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 \
        || { tail -n 30 "$dir.log" >&2; rm -f "$dir.log"; return 1; }
    rm -f "$dir.log"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE"
}

build() {
    local tag="$1"
    shift
    local secret=()
    [[ -f "$CA_BUNDLE" ]] && secret=(--secret "id=ca,src=$CA_BUNDLE")
    podman build --format docker --layers --build-arg "BASE_IMAGE=$BASE_IMAGE" "${secret[@]}" \
        -t "$tag" "$@" "$ROOT"
}

case "${1:-}" in
    base) make_base ;;
    build) shift; build "$@" ;;
    *) exec podman "$@" ;;
esac
