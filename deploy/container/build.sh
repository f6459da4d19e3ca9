#!/usr/bin/env bash
# Build the pushcore image with podman where no registry image can be pulled: the Debian
# bookworm base is made here with debootstrap (from the Debian mirror apt uses) and imported
# as localhost/pushcore-base:bookworm-rN.  The root file system is cached outside the checkout
# (PUSHCORE_CACHE_DIR, default ~/.cache/pushcore), so only the first run pays for it.
#
# Usage: deploy/container/build.sh [IMAGE]      (default: the kustomization's image)
# Where a registry is reachable, plain `docker build`/`podman build` with the Dockerfile's
# default base (debian:bookworm-slim) does the same (see the Dockerfile's header).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONTAINER="$ROOT/deploy/container"
CACHE="${PUSHCORE_CACHE_DIR:-$HOME/.cache/pushcore}"
# Bump ROOTFS_REVISION when make_rootfs changes: the cached tarball and base are then remade.
ROOTFS_REVISION=1
BASE="localhost/pushcore-base:bookworm-r$ROOTFS_REVISION"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOTFS_TAR="$CACHE/debian-bookworm-minbase-r$ROOTFS_REVISION.tar"

log() { printf 'container: %s\n' "$*" >&2; }
die() { printf 'container: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=deploy/container/podman.sh
source "$CONTAINER/podman.sh"

version() { sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -n 1; }
default_image() {
  # newName:newTag of the kustomization's one image (tests/deploy checks compose names it too)
  awk '/newName:/ {n=$2} /newTag:/ {gsub(/"/, "", $2); t=$2} END {print n ":" t}' \
    "$ROOT/deploy/kubernetes/kustomization.yaml"
}

make_rootfs() {
  command -v debootstrap >/dev/null || die "debootstrap is missing (deploy/local/services.sh installs it)"
  local dir="$CACHE/debootstrap-bookworm.partial"
  mkdir -p "$CACHE"
  rm -rf "$dir" "$ROOTFS_TAR.partial"
  log "debootstrap: a minimal bookworm root file system from $MIRROR (once; cached in $CACHE)"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $CACHE/debootstrap.log"
  # What Debian's slim images leave out: documentation, manual pages, translations (now and
  # in every package installed later), downloaded packages and package lists.
  cat >"$dir/etc/dpkg/dpkg.cfg.d/pushcore-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
SLIM
  find "$dir/usr/share/doc" -type f ! -name copyright -delete
  find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/cache/apt/* \
    "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log "$dir"/var/log/apt
  # The sources apt uses inside the image: the same mirror debootstrap used.
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    "$MIRROR" "$MIRROR" >"$dir/etc/apt/sources.list"
  tar --numeric-owner -C "$dir" -cf "$ROOTFS_TAR.partial" .
  mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
  rm -rf "$dir"
}

ensure_base() {
  if pc image exists "$BASE"; then return; fi
  [[ -s "$ROOTFS_TAR" ]] || make_rootfs
  log "importing $ROOTFS_TAR as $BASE"
  pc import --quiet "$ROOTFS_TAR" "$BASE" >/dev/null
}

build() {
  local image="$1" ca_args=() ca="${PIP_CERT:-}"
  # pip in the build trusts what pip here trusts: PIP_CERT, else this machine's CA bundle
  # (which holds a TLS-inspecting proxy's CA where there is one; Debian's bundle in the
  # image would not).  A build secret: it is in no layer.
  [[ -n "$ca" && -s "$ca" ]] || ca=/etc/ssl/certs/ca-certificates.crt
  if [[ -s "$ca" ]]; then ca_args=(--secret "id=pip-ca,src=$ca"); fi
  log "building $image from $BASE"
  # shellcheck disable=SC2046 # two --ulimit words
  pc build --quiet --format docker --layers $(pc_ulimits) \
    --ignorefile "$CONTAINER/Dockerfile.dockerignore" \
    --file "$CONTAINER/Dockerfile" \
    --build-arg "BASE_IMAGE=$BASE" --build-arg "VERSION=$(version)" \
    "${ca_args[@]}" --tag "$image" "$ROOT" >/dev/null
}

IMAGE="${1:-$(default_image)}"
# One build at a time per machine (checkouts share the cache and podman's store).
mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock -w 1800 9 || die "another build held $CACHE/build.lock for 30 minutes"
ensure_base
build "$IMAGE"
echo "$IMAGE"
