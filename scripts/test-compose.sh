#!/usr/bin/env bash
# `make test-compose`: the production stack of compose/ brought up for real on this machine, games
# through its containers, listeners scaled out, a listener and the daemon crashed mid-run
# (tests/compose_stack/). This script prepares the machine; the test owns the stack's life.
#
# 1. Docker engine: installs docker.io, docker-compose and debootstrap with apt when missing, and
#    starts dockerd when none answers (and stops it again at the end: nothing left running).
# 2. Base images: no registry is reachable here, so stand-ins for python:3.11-slim, redis and
#    postgres are built from a debootstrapped Debian (compose/local-bases/). Each is tagged with a
#    hash of what it is built from and reused while that tag exists (docker keeps it on disk).
# 3. The stack: a leftover of an aborted run is torn down first; the test brings it up with
#    compose/docker-compose.yml + compose/docker-compose.test.yml; the exit trap tears down
#    containers, volumes and networks whatever happened.
#
# A missing prerequisite skips with the reason on a user's machine and fails under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
PROJECT=superhero-compose-test
SUITE=bookworm  # its python3 is 3.11, as in python:3.11-slim
WORK=$(mktemp -d /var/tmp/superhero-compose-test.XXXXXX)
ENV_FILE=$WORK/stack.env
REPORT=$WORK/report.json
DOCKERD_PID=

say() { printf 'test-compose: %s\n' "$*" >&2; }

unavailable() {
    if [ "${CI:-}" = "true" ]; then
        say "FAILED (required under CI=true): $*"
        exit 1
    fi
    say "SKIPPED: $*"
    exit 0
}

compose() {
    docker-compose --project-name "$PROJECT" --env-file "$ENV_FILE" \
        -f compose/docker-compose.yml -f compose/docker-compose.test.yml "$@"
}

teardown() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -s "$ENV_FILE" ] && docker info >/dev/null 2>&1; then
        compose --profile simulate down --volumes --remove-orphans --timeout 10 >"$WORK/down.log" 2>&1 \
            || { say "teardown failed:"; cat "$WORK/down.log" >&2; rc=1; }
    fi
    if [ -n "$DOCKERD_PID" ]; then
        kill "$DOCKERD_PID" 2>/dev/null || true
        for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ 1. the engine
need_tools() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker >/dev/null || missing+=(docker.io)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    printf '%s\n' "${missing[@]}" | sort -u | grep . || true
}
missing=$(need_tools)
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
        || unavailable "missing $(echo $missing) and not root with apt-get to install them"
    say "installing $(echo $missing)"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >"$WORK/apt.log" 2>&1 \
        || { apt-get update -q >>"$WORK/apt.log" 2>&1 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >>"$WORK/apt.log" 2>&1; } \
        || { tail -20 "$WORK/apt.log" >&2; unavailable "apt-get could not install $(echo $missing)"; }
fi
[ -x "$PYTHON" ] || unavailable "$PYTHON not found (run make install)"

if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || unavailable "no Docker engine answers and not root to start dockerd"
    DOCKERD_LOG=/var/log/superhero-compose-test-dockerd.log
    say "starting dockerd (log: $DOCKERD_LOG)"
    dockerd >"$DOCKERD_LOG" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { tail -20 "$DOCKERD_LOG" >&2; unavailable "dockerd did not start"; }
fi

# ------------------------------------------------------------------ 2. base images
# The Debian mirror apt already uses (debootstrap needs one the machine reaches).
debian_mirror() {
    if [ -n "${SUPERHERO_DEBIAN_MIRROR:-}" ]; then echo "$SUPERHERO_DEBIAN_MIRROR"; return; fi
    local uri
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# The host's pip index (a mirror, if it uses one), for the image build; file:// indexes are left
# out, a container cannot see them.
host_pip_index() {
    local url
    url=${PIP_INDEX_URL:-$("$PYTHON" -m pip config get global.index-url 2>/dev/null || true)}
    case "$url" in http://* | https://*) echo "$url" ;; esac
}

hash_of() { cat "$@" | sha256sum | cut -c1-12; }

STARTED=$(date +%s)
MIRROR=$(debian_mirror)
DEBIAN_IMAGE=superhero-local/debian:$SUITE-$(printf 'minbase %s %s\n' "$SUITE" "$MIRROR" | sha256sum | cut -c1-12)
if ! docker image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1; then
    say "building $DEBIAN_IMAGE with debootstrap from $MIRROR"
    ROOTFS=$WORK/rootfs
    debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; unavailable "debootstrap failed"; }
    tar -C "$ROOTFS" -c . | docker import - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$ROOTFS"
fi

CA_BUNDLE=${SUPERHERO_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$CA_BUNDLE" ] || unavailable "no CA bundle at $CA_BUNDLE (set SUPERHERO_CA_BUNDLE)"
PIP_INDEX=$(host_pip_index)

# local_base NAME EXTRA_FILE...: build compose/local-bases/NAME.Dockerfile unless its tag exists
# (the tag hashes the Debian base, the pip index, the Dockerfile and the files copied in).
local_base() {
    local name=$1; shift
    local dockerfile=compose/local-bases/$name.Dockerfile
    local tag
    tag=superhero-local/$name:$(printf '%s %s\n' "$DEBIAN_IMAGE" "$PIP_INDEX" | cat - "$dockerfile" "$@" | sha256sum | cut -c1-12)
    if ! docker image inspect "$tag" >/dev/null 2>&1; then
        say "building $tag"
        local ctx=$WORK/ctx-$name
        mkdir -p "$ctx"
        cp "$dockerfile" "$ctx/Dockerfile"
        for extra in "$@"; do cp "$extra" "$ctx/"; done
        local args=(--build-arg "DEBIAN_BASE=$DEBIAN_IMAGE")
        [ "$name" != python ] || args+=(--build-arg "HOST_PIP_INDEX=$PIP_INDEX")
        docker build "${args[@]}" -t "$tag" "$ctx" >"$WORK/build-$name.log" 2>&1 \
            || { tail -30 "$WORK/build-$name.log" >&2; say "building $tag failed"; exit 1; }
    fi
    echo "$tag"
}
cp "$CA_BUNDLE" "$WORK/host-ca.crt"
PYTHON_IMAGE=$(local_base python "$WORK/host-ca.crt")
REDIS_IMAGE=$(local_base redis)
POSTGRES_IMAGE=$(local_base postgres compose/local-bases/postgres-entrypoint.sh)
say "base images ready in $(($(date +%s) - STARTED)) s: $PYTHON_IMAGE $REDIS_IMAGE $POSTGRES_IMAGE"

# ------------------------------------------------------------------ 3. the stack
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
secret() { "$PYTHON" -c 'import secrets; print(secrets.token_hex(24))'; }
{
    # The user's settings file is never read: the example, then what the test needs.
    grep -v -E '^(REDIS_PASSWORD|POSTGRES_PASSWORD|COMPOSE_PROJECT_NAME|REDIS_PORT|DAGSTER_WEBSERVER_PORT|SUPERHERO_IMAGE_TAG|SIMULATOR_RATE)=' compose/.env.example
    echo "REDIS_PASSWORD=$(secret)"
    echo "POSTGRES_PASSWORD=$(secret)"
    echo "REDIS_PORT=$(free_port)"
    echo "DAGSTER_WEBSERVER_PORT=$(free_port)"
    echo "SUPERHERO_IMAGE_TAG=compose-test"
    echo "SIMULATOR_RATE=3"  # the stack's simulator service during the crashes: 3 games/s
    echo "SUPERHERO_TEST_PYTHON_IMAGE=$PYTHON_IMAGE"
    echo "SUPERHERO_TEST_REDIS_IMAGE=$REDIS_IMAGE"
    echo "SUPERHERO_TEST_POSTGRES_IMAGE=$POSTGRES_IMAGE"
} >"$ENV_FILE"

compose --profile simulate down --volumes --remove-orphans --timeout 5 >"$WORK/stale-down.log" 2>&1 \
    || { cat "$WORK/stale-down.log" >&2; say "could not remove a stale $PROJECT stack"; exit 1; }

rc=0
SUPERHERO_COMPOSE_PROJECT=$PROJECT SUPERHERO_COMPOSE_ENV_FILE=$ENV_FILE \
    SUPERHERO_COMPOSE_REPORT=$REPORT SUPERHERO_COMPOSE_BASE_SECONDS=$(($(date +%s) - STARTED)) \
    "$PYTHON" -m pytest -q -p no:cacheprovider tests/compose_stack "$@" || rc=$?
if [ -s "$REPORT" ]; then say "figures:"; cat "$REPORT" >&2; echo >&2; fi
say "total $(($(date +%s) - STARTED)) s (machine load: $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$rc"
