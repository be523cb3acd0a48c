#!/usr/bin/env bash
# Container smoke test: every image builds, docker-compose.yml starts, and the service answers /detect,
# /classify and /stylize from the seeded S3 store; PostgreSQL answers pg_isready, and where the service has
# the identity routes, GET /identities answers from it. Tears the stack down (volumes included) on exit;
# non-zero on failure.
# With --slim: builds the slim target instead (OpenVINO, no torch), runs it alone on the host network
# from its baked store, calls each endpoint, checks that method=nst answers 422 and that the container's
# resident memory stays within SLIM_MAX_RSS_MB.
#
#   docker/smoke.sh                     # offline: no registry, no package index inside the builds
#   docker/smoke.sh --slim              # the slim image (or SMOKE_SLIM=1)
#   SMOKE_ONLINE=1 docker/smoke.sh      # where registries and PyPI are reachable (e.g. a CI runner)
#
# Offline, images come from a debootstrap base image and wheel folders prepared on the host with its pip.
# Needs root on Debian when the engine is missing: installs docker.io, docker-compose and debootstrap,
# and starts dockerd (host networking only; stopped again at the end).
# Environment: BASE_IMAGE (offline default: deepcanvas-base:bookworm, built here once), TORCH_SPEC, EXTRAS,
# READY_TIMEOUT_S, HOST_PYTHON (whose pip prepares the wheel folders; default .venv/bin/python, else python3),
# SLIM_MAX_RSS_MB (default 800), POSTGRES_PORT (default 55432) and the compose file's other POSTGRES_*.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE_ONLINE="${SMOKE_ONLINE:-}"
SMOKE_SLIM="${SMOKE_SLIM:-}"
case "${1:-}" in
    "") ;;
    --slim) SMOKE_SLIM=1 ;;
    *) echo "usage: $0 [--slim]" >&2; exit 2 ;;
esac
if [ -n "$SMOKE_ONLINE" ]; then
    BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim-bookworm}"
    PROMETHEUS_BASE_IMAGE="${PROMETHEUS_BASE_IMAGE:-debian:bookworm-slim}"
    POSTGRES_BASE_IMAGE="${POSTGRES_BASE_IMAGE:-debian:bookworm-slim}"
    TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
else
    BASE_IMAGE="${BASE_IMAGE:-deepcanvas-base:bookworm}"
    PROMETHEUS_BASE_IMAGE="${PROMETHEUS_BASE_IMAGE:-$BASE_IMAGE}"
    POSTGRES_BASE_IMAGE="${POSTGRES_BASE_IMAGE:-$BASE_IMAGE}"
    # The pair whose wheels this machine's package index holds.
    TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
fi
EXTRAS="${EXTRAS:-serve,torch,openvino}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-300}"
HOST_PYTHON="${HOST_PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/deepcanvas-dockerd.log}"
SLIM_MAX_RSS_MB="${SLIM_MAX_RSS_MB:-800}"
SLIM_CONTAINER=deepcanvas-slim-smoke
# The slim run requires an API key on its model routes: the calls below send it (AUTH), and api-key checks refusals.
SMOKE_API_KEY="smoke-key-$$-0123456789abcdef"
AUTH=()
SERVICE=http://127.0.0.1:8000
PROMETHEUS=http://127.0.0.1:9090
# The compose file's defaults, exported so the checks below and compose agree; a fresh admin token per run
# (the identity routes that write need it).
export POSTGRES_USER="${POSTGRES_USER:-deepcanvas}" POSTGRES_DB="${POSTGRES_DB:-deepcanvas}"
export POSTGRES_PORT="${POSTGRES_PORT:-55432}"
DEEPCANVAS_ADMIN_TOKEN="${DEEPCANVAS_ADMIN_TOKEN:-smoke-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export DEEPCANVAS_ADMIN_TOKEN
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0 COMPOSE_PROJECT_NAME=deepcanvas-smoke

WORK="$(mktemp -d)"
DOCKERD_PID=""
STACK_UP=""
SLIM_UP=""
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

# Arguments every build of the Dockerfile shares.
service_build() {
    docker build --network host --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg "$(wheels_arg docker/wheels)" \
        --build-arg TORCH_SPEC="$TORCH_SPEC" --build-arg EXTRAS="$EXTRAS" "$@" .
}

# The classic builder keeps each stage's layers as untagged images. They pile up: every build with new code or
# a new store leaves the previous build's project and export stages behind (hundreds of megabytes each, the
# store copied several times), and a long-lived engine such as a CI runner's ran out of disk that way.
# So every build ends by pruning all dangling images, and only the dependencies stage (gigabytes of pip
# installs, rebuilt only when pyproject.toml or the wheels change) survives as the next build's cache,
# through a tag of its own.
CACHE_TAG=deepcanvas-build:dependencies
prune_dangling() {
    local reclaimed
    reclaimed="$(docker image prune --force | tail -n 1)"
    echo "pruned dangling images: ${reclaimed:-nothing}"
}

docker_disk() {
    local root
    root="$(docker info --format '{{.DockerRootDir}}')"
    df -h "$root" | tail -n 1 | awk -v root="$root" '{print "docker root " root ": " $4 " free of " $2}'
}

# Whatever a previous run (or an interrupted one) left dangling, before this run needs the space.
free_space() {
    prune_dangling
    docker_disk
}

build_with_cache() {
    service_build --target dependencies -t "$CACHE_TAG"
    service_build "$@"
    prune_dangling
    docker_disk
}

build_service_image() {
    build_with_cache -t deepcanvas:local
}

build_slim_image() {
    build_with_cache --target slim -t deepcanvas:slim
}

# The point of the slim image: torch is not merely unused but absent.
check_no_torch() {
    local error
    if error="$(docker run --rm --network host deepcanvas:slim python -c 'import torch' 2>&1)"; then
        echo "deepcanvas:slim imports torch" >&2
        return 1
    fi
    grep -q "No module named 'torch'" <<<"$error" || { echo "$error" >&2; return 1; }
    echo "deepcanvas:slim: import torch fails (No module named 'torch')"
}

s3_build() {
    docker build --network host --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg "$(wheels_arg wheels)" "$@" docker/s3
}

build_s3_image() {
    # Its builder stage tagged too, so that the prunes keep it as the next build's cache (moto's pip install).
    s3_build --target builder -t deepcanvas-build:s3
    s3_build -t deepcanvas-s3:local
}

build_postgres_image() {
    docker build --network host --build-arg BASE_IMAGE="$POSTGRES_BASE_IMAGE" \
        -t deepcanvas-postgres:local docker/postgres
}

build_prometheus_image() {
    docker build --network host --build-arg BASE_IMAGE="$PROMETHEUS_BASE_IMAGE" \
        -t deepcanvas-prometheus:local docker/prometheus
}

# --- stack --------------------------------------------------------------------------------------------

# On the host network another server on port 8000 would answer in the service's place.
check_port_free() {
    if curl -s -o /dev/null --max-time 2 "$SERVICE/healthz"; then
        echo "something already answers on $SERVICE; stop it first" >&2
        return 1
    fi
}

# Likewise a cluster on the host listening on the database's port.
check_database_port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$POSTGRES_PORT") 2>/dev/null; then
        echo "something already listens on 127.0.0.1:$POSTGRES_PORT; stop it or set POSTGRES_PORT" >&2
        return 1
    fi
}

start_stack() {
    check_port_free
    check_database_port_free
    STACK_UP=1
    compose up --detach --no-build
}

# The slim image alone, serving its baked (exported) store; bound to loopback like the compose service.
start_slim() {
    check_port_free
    docker rm --force "$SLIM_CONTAINER" >/dev/null 2>&1 || true
    SLIM_UP=1
    AUTH=(-H "Authorization: Bearer $SMOKE_API_KEY")
    docker run --detach --name "$SLIM_CONTAINER" --network host -e DEEPCANVAS_API_KEYS="$SMOKE_API_KEY" \
        deepcanvas:slim deepcanvas serve --host 127.0.0.1 --port 8000
}

slim_running() {
    [ "$(docker inspect --format '{{.State.Running}}' "$SLIM_CONTAINER" 2>/dev/null)" = true ]
}

# ALIVE (optional): a command that fails once waiting is pointless, e.g. the container exited.
wait_until_ready() {
    local alive="${1:-true}" deadline=$((SECONDS + READY_TIMEOUT_S))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$SERVICE/readyz")" = 200 ]; do
        "$alive" || { echo "the service exited before it was ready" >&2; return 1; }
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

expect_status() {
    local expected="$1" what="$2" code
    shift 2
    code="$(curl -s -o "$WORK/body" -w '%{http_code}' "$@")"
    if [ "$code" != "$expected" ]; then
        echo "$what: HTTP $code, expected $expected: $(head -c 500 "$WORK/body")" >&2
        return 1
    fi
    echo "$what: $code ($(wc -c <"$WORK/body") bytes)"
}

expect_200() {
    expect_status 200 "$@"
}

call_endpoints() {
    local photo="$WORK/photo.png" style
    write_photo "$photo"
    expect_200 "POST /detect" "${AUTH[@]}" -F "image=@$photo" "$SERVICE/detect"
    expect_200 "POST /classify" "${AUTH[@]}" -F "image=@$photo" "$SERVICE/classify"
    expect_200 "GET /styles" "$SERVICE/styles"
    style="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["styles"][0]["name"])' <"$WORK/body")"
    expect_200 "POST /stylize ($style)" "${AUTH[@]}" -F "content=@$photo" -F "style_name=$style" -F max_side=64 \
        "$SERVICE/stylize"
    [ "$(head -c 4 "$WORK/body" | tail -c 3)" = PNG ] || { echo "POST /stylize: not a PNG" >&2; return 1; }
}

# The ONNX backend has AdaIN only: classical NST needs torch.
check_nst_refused() {
    local photo="$WORK/photo.png"
    write_photo "$photo"
    expect_status 422 "POST /stylize (method=nst)" "${AUTH[@]}" -F "content=@$photo" -F "style_name=$(first_style)" \
        -F method=nst -F max_side=64 "$SERVICE/stylize"
    echo "  $(cat "$WORK/body")"
}

# The slim run's model routes refuse a call without its key (401) or with another (403); health stays open.
check_api_key() {
    local photo="$WORK/photo.png"
    write_photo "$photo"
    expect_status 401 "POST /detect without a key" -F "image=@$photo" "$SERVICE/detect"
    expect_status 403 "POST /detect with another key" -H "Authorization: Bearer not-the-smoke-key-000" \
        -F "image=@$photo" "$SERVICE/detect"
    expect_200 "GET /healthz without a key" "$SERVICE/healthz"
}

first_style() {
    curl -s "$SERVICE/styles" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["styles"][0]["name"])'
}

# Docker's health check runs the image's own probe, with the slim venv's python.
wait_until_healthy() {
    local deadline=$((SECONDS + 60)) health
    until health="$(docker inspect --format '{{.State.Health.Status}}' "$SLIM_CONTAINER")"
        [ "$health" = healthy ]; do
        [ $SECONDS -lt $deadline ] || { echo "container health: $health after 60s" >&2; return 1; }
        sleep 2
    done
    echo "container health: $health"
}

# Resident memory of the service process (PID 1 in the container) with every model loaded and used.
check_memory() {
    local pid rss_mb peak_mb
    pid="$(docker inspect --format '{{.State.Pid}}' "$SLIM_CONTAINER")"
    rss_mb=$(($(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status") / 1024))
    peak_mb=$(($(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status") / 1024))
    echo "slim service RSS ${rss_mb} MB (peak ${peak_mb} MB; limit ${SLIM_MAX_RSS_MB} MB);" \
        "docker stats: $(docker stats --no-stream --format '{{.MemUsage}}' "$SLIM_CONTAINER")"
    if [ "$rss_mb" -gt "$SLIM_MAX_RSS_MB" ]; then
        echo "RSS ${rss_mb} MB exceeds ${SLIM_MAX_RSS_MB} MB" >&2
        return 1
    fi
}

# The database container answers pg_isready and the service's container connects to it; where the service
# has the identity routes (listed in its OpenAPI document), GET /identities answers 200 and the service's
# migrations created its tables.
check_database() {
    compose exec -T postgres sh -c \
        'pg_isready --host=127.0.0.1 --port="$POSTGRES_PORT" --username="$POSTGRES_USER" --dbname="$POSTGRES_DB"'
    # The service image holds the driver and reaches the database with the URL compose gives it.
    compose exec -T deepcanvas python -c 'import os, sqlalchemy
with sqlalchemy.create_engine(os.environ["DEEPCANVAS_DATABASE_URL"]).connect() as connection:
    print("service image -> database:", connection.execute(sqlalchemy.text("SELECT version()")).scalar())'
    expect_200 "GET /openapi.json" "$SERVICE/openapi.json"
    if ! python3 -c 'import json, sys; sys.exit("/identities" not in json.load(sys.stdin)["paths"])' \
        <"$WORK/body"; then
        echo "the service has no /identities route: database checks through the service skipped"
        return
    fi
    expect_200 "GET /identities" -H "Authorization: Bearer $DEEPCANVAS_ADMIN_TOKEN" "$SERVICE/identities"
    echo "  $(head -c 300 "$WORK/body")"
    local tables
    tables="$(compose exec -T postgres sh -c 'PGPASSWORD="$POSTGRES_PASSWORD" psql --no-psqlrc --tuples-only \
        --no-align --host=127.0.0.1 --port="$POSTGRES_PORT" --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" \
        --command="SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"' |
        tr -s '\r\n' '  ')"
    [ -n "$tables" ] || { echo "the service created no tables in $POSTGRES_DB" >&2; return 1; }
    echo "tables in $POSTGRES_DB: $tables"
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
    if [ -n "$SLIM_UP" ]; then
        [ $status -eq 0 ] || docker logs --tail 40 "$SLIM_CONTAINER" || true
        docker rm --force "$SLIM_CONTAINER" >/dev/null 2>&1 || true
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
phase free-space free_space
if [ -z "$SMOKE_ONLINE" ]; then
    phase base-image docker/base-image.sh "$BASE_IMAGE"
    # Both targets' wheels: the classic builder builds the slim stages (export, onnx) in a default build too.
    # shellcheck disable=SC2086  # TORCH_SPEC is a list of requirements
    phase wheels prepare_wheels docker/wheels $TORCH_SPEC ".[$EXTRAS,export,onnx,openvino]" opencv-python-headless \
        setuptools wheel
    [ -n "$SMOKE_SLIM" ] || phase s3-wheels prepare_wheels docker/s3/wheels "moto[server]>=5"
fi
if [ -n "$SMOKE_SLIM" ]; then
    phase build-slim build_slim_image
    phase no-torch check_no_torch
    phase run-slim start_slim
    phase ready wait_until_ready slim_running
    phase healthy wait_until_healthy
    phase endpoints call_endpoints
    phase nst-refused check_nst_refused
    phase api-key check_api_key
    phase memory check_memory
    exit 0
fi
phase build-service build_service_image
phase build-s3 build_s3_image
phase build-prometheus build_prometheus_image
phase build-postgres build_postgres_image
phase compose-up start_stack
phase ready wait_until_ready
phase endpoints call_endpoints
phase database check_database
phase prometheus check_prometheus
