#!/usr/bin/env bash
# Builds a Debian bookworm + Python 3.11 base image with debootstrap, for machines that cannot pull
# python:3.11-slim-bookworm from a registry. Pass it to the builds as --build-arg BASE_IMAGE=<tag>.
# Usage: docker/base-image.sh [TAG]   (default deepcanvas-base:bookworm; skipped when TAG already exists)
set -euo pipefail

TAG="${1:-deepcanvas-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-venv gives the builder stage `python3 -m venv`; the rest is what minbase lacks for pip and TLS.
PACKAGES="python3,python3-venv,ca-certificates"

if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG exists; skipping debootstrap"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }

ROOTFS="$(mktemp -d /tmp/deepcanvas-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT

debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" "$MIRROR"

# A mirror serving a frozen snapshot has expired Release files: carry the host's opt-out into the image
# so `apt-get update` in later builds (the Prometheus image) accepts them too.
if apt-config dump 2>/dev/null | grep -q 'Check-Valid-Until "false"'; then
    echo 'Acquire::Check-Valid-Until "false";' >"$ROOTFS/etc/apt/apt.conf.d/99no-check-valid-until"
fi
# Same size trims as the official slim images: no apt lists or caches, docs or man pages.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*

tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    - "$TAG"
echo "built base image $TAG"
