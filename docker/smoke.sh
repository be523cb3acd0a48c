#!/usr/bin/env bash
# Container smoke test: every image builds, docker-compose.yml starts, and the service answers /detect,
# /classify and /stylize from the seeded S3 store. Tears the stack down on exit; non-zero on failure.
#
#   docker/smoke.sh                     # offline: no registry, no package index inside the builds
#   SMOKE_ONLINE=1 docker/smoke.sh      # where registries and PyPI are reachable (e.g. a CI runner)
#
# Offline, images come from a debootstrap base image and wheel folders prepared on the host with its pip.
# Needs root on Debian when the engine is missing: installs docker.io, docker-compose and debootstrap,
# and starts dockerd (host networking only; stopped again at the end).
# Environment: BASE_IMAGE (offline default: deepcanvas-base:bookworm, built here once), TORCH_SPEC, EXTRAS,
# READY_TIMEOUT_S, HOST_PYTHON (whose pip prepares the wheel folders; default .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE_ONLINE="${SMOKE_ONLINE:-}"
if [ -n "$SMOKE_ONLINE" ]; then
    BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim-bookworm}"
    PROMETHEUS_BASE_IMAGE="${PROMETHEUS_BASE_IMAGE:-debian:bookworm-slim}"
    TORCH_SPEC="${TORCH_SPEC:-torch torchvision}"
else
    BASE_IMAGE="${BASE_IMAGE:-deepcanvas-base:bookworm}"
    PROMETHEUS_BASE_IMAGE="${PROMETHEUS_BASE_IMAGE:-$BASE_IMAGE}"
    # The pair whose wheels this machine's package index holds.
    TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
fi
EXTRAS="${EXTRAS:-serve}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-300}"
HOST_PYTHON="${HOST_PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/deepcanvas-dockerd.log}"
SERVICE=http://127.0.0.1:8000
PROMETHEUS=http://127.0.0.1:9090
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0 COMPOSE_PROJECT_NAME=deepcanvas-smoke

WORK="$(mktemp -d)"
DOCKERD_PID=""
STACK_UP=""
CURRENT_PHASE="setup"
TIMINGS=()
SMOKE_START=$SECONDS

phase() {
    local name="$1" start=$SECONDS
    shift
    CURRENT_PHASE="$name"
    echo "== $name"
    "$@"
    TIMINGS+=("$(printf '  %-16s %5ds' "$name" $((SECONDS - start)))")
}

compose() {
    if command -v docker-compose >/dev/null; then docker-compose "$@"; else docker compose "$@"; fi
}

# --- engine -------------------------------------------------------------------------------------------

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
    [ -n "$SMOKE_ONLINE" ] || command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v curl >/dev/null || missing+=(curl)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

wait_for_engine() {
    local deadline=$((SECONDS + 60))
    until docker info >/dev/null 2>&1; do
        kill -0 "$DOCKERD_PID" 2>/dev/null || return 1
        [ $SECONDS -lt $deadline ] || return 1
        sleep 1
    done
}

start_dockerd() {
    # No bridge and no iptables: a sandbox without those kernel features still runs host-network containers.
    dockerd --bridge=none --iptables=false --ip6tables=false "$@" >"$DOCKERD_LOG" 2>&1 &
    DOCKERD_PID=$!
    wait_for_engine
}

ensure_engine() {
    install_packages
    docker info >/dev/null 2>&1 && return
    if ! start_dockerd; then
        # overlay2 can fail when nested in another overlay filesystem; vfs works anywhere, but copies every
        # layer whole, so the multi-gigabyte service image then needs tens of gigabytes and much longer.
        echo "dockerd did not start with its default storage driver (see $DOCKERD_LOG); trying vfs" >&2
        kill "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
        start_dockerd --storage-driver=vfs
    fi
    echo "dockerd started (pid $DOCKERD_PID, storage driver $(docker info --format '{{.Driver}}'))"
}

# --- images -------------------------------------------------------------------------------------------

# pip downloads on the host, where the package indexes are configured; the builds then install offline.
prepare_wheels() {
    local folder="$1" stamp="$1/.spec"
    shift
    local spec
    spec="$* $(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ]; then
        echo "$folder is up to date"
        return
    fi
    find "$folder" -name '*.whl' -delete
    "$HOST_PYTHON" -m pip download --quiet --disable-pip-version-check --dest "$folder" "$@"
    echo "$spec" >"$stamp"
}

# Offline, each build installs from its wheel folder alone; online, WHEELS stays empty.
wheels_arg() {
    [ -n "$SMOKE_ONLINE" ] && echo "WHEELS=" || echo "WHEELS=$1"
}

build_service_image() {
    docker build --network host --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg "$(wheels_arg docker/wheels)" \
        --build-arg TORCH_SPEC="$TORCH_SPEC" --build-arg EXTRAS="$EXTRAS" -t deepcanvas:local .
    # The previous deepcanvas:local, now untagged; the builder stage's layers stay as the next build's cache.
    docker image prune --force --filter label=org.opencontainers.image.title=DeepCanvas >/dev/null
}

build_s3_image() {
    docker build --network host --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg "$(wheels_arg wheels)" \
        -t deepcanvas-s3:local docker/s3
}

build_prometheus_image() {
    docker build --network host --build-arg BASE_IMAGE="$PROMETHEUS_BASE_IMAGE" \
        -t deepcanvas-prometheus:local docker/prometheus
}

# --- stack --------------------------------------------------------------------------------------------

start_stack() {
    STACK_UP=1
    compose up --detach --no-build
}

wait_until_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$SERVICE/readyz")" = 200 ]; do
        if [ $SECONDS -ge $deadline ]; then
            echo "not ready after ${READY_TIMEOUT_S}s: $(curl -s "$SERVICE/readyz")" >&2
            return 1
        fi
        sleep 2
    done
    curl -s "$SERVICE/readyz"
    echo
}

write_photo() {
    # A 96x80 gradient PNG written with the standard library only (the host needs no imaging package).
    python3 - "$1" <<'PY'
import struct
import sys
import zlib

width, height = 96, 80
rows = b"".join(
    b"\x00" + bytes(channel for x in range(width) for channel in (x * 255 // width, y * 255 // height, 128))
    for y in range(height)
)

def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
with open(sys.argv[1], "wb") as out:
    out.write(png)
PY
}

expect_200() {
    local what="$1" code
    shift
    code="$(curl -s -o "$WORK/body" -w '%{http_code}' "$@")"
    if [ "$code" != 200 ]; then
        echo "$what: HTTP $code: $(head -c 500 "$WORK/body")" >&2
        return 1
    fi
    echo "$what: 200 ($(wc -c <"$WORK/body") bytes)"
}

call_endpoints() {
    local photo="$WORK/photo.png" style
    write_photo "$photo"
    expect_200 "POST /detect" -F "image=@$photo" "$SERVICE/detect"
    expect_200 "POST /classify" -F "image=@$photo" "$SERVICE/classify"
    expect_200 "GET /styles" "$SERVICE/styles"
    style="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["styles"][0]["name"])' <"$WORK/body")"
    expect_200 "POST /stylize ($style)" -F "content=@$photo" -F "style_name=$style" -F max_side=64 \
        "$SERVICE/stylize"
    [ "$(head -c 4 "$WORK/body" | tail -c 3)" = PNG ] || { echo "POST /stylize: not a PNG" >&2; return 1; }
}

scrape_health() {
    curl -s "$PROMETHEUS/api/v1/targets" | python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
print(" ".join((t["health"] + " " + t["lastError"]).strip() for t in targets if t["labels"]["job"] == "deepcanvas"))'
}

check_prometheus() {
    local deadline=$((SECONDS + 60)) health
    until curl -sf -o /dev/null "$PROMETHEUS/-/ready"; do
        [ $SECONDS -lt $deadline ] || { echo "prometheus not ready after 60s" >&2; return 1; }
        sleep 2
    done
    # Informational only: the first scrape comes within one interval (15 s).
    deadline=$((SECONDS + 20))
    until health="$(scrape_health)"; [ "$health" != unknown ] || [ $SECONDS -ge $deadline ]; do sleep 2; done
    echo "prometheus ready; scrape of $SERVICE/metrics: $health"
}

# --- teardown -----------------------------------------------------------------------------------------

teardown() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$STACK_UP" ]; then
        [ $status -eq 0 ] || compose logs --no-color --tail=40 || true
        compose down --remove-orphans --volumes || true
    fi
    echo "== images"
    docker images --format '  {{.Repository}}:{{.Tag}} {{.Size}}' 2>/dev/null | grep deepcanvas || true
    if [ -n "$DOCKERD_PID" ]; then
        kill "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    echo "== timings"
    printf '%s\n' "${TIMINGS[@]}"
    printf '  %-16s %5ds\n' total $((SECONDS - SMOKE_START))
    if [ $status -eq 0 ]; then
        echo "container smoke test passed"
    else
        echo "container smoke test FAILED in phase: $CURRENT_PHASE" >&2
    fi
    exit $status
}
trap teardown EXIT
trap 'exit 130' INT TERM

phase engine ensure_engine
if [ -z "$SMOKE_ONLINE" ]; then
    phase base-image docker/base-image.sh "$BASE_IMAGE"
    # shellcheck disable=SC2086  # TORCH_SPEC is a list of requirements
    phase wheels prepare_wheels docker/wheels $TORCH_SPEC ".[$EXTRAS]" opencv-python-headless setuptools wheel
    phase s3-wheels prepare_wheels docker/s3/wheels "moto[server]>=5"
fi
phase build-service build_service_image
phase build-s3 build_s3_image
phase build-prometheus build_prometheus_image
phase compose-up start_stack
phase ready wait_until_ready
phase endpoints call_endpoints
phase prometheus check_prometheus
