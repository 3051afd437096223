#!/usr/bin/env bash
# Build tagwatch's image (Containerfile) with Podman where no container registry can be
# reached: the base image is made from Debian packages, the Python wheels come from PyPI on the
# host, and the build itself needs no network.
#
#   scripts/build_image.sh [TAG]        (default tagwatch:VERSION; run as root: debootstrap)
#
# 1. base: debootstrap a minimal Debian bookworm with python3, python3-venv and
#    ca-certificates, `podman import` it as localhost/debian-python:bookworm (skipped when that
#    image exists);
# 2. wheels: `pip wheel` tagwatch, its dependencies and setuptools into the build context;
# 3. `podman build --format docker` (the Docker format keeps HEALTHCHECK; OCI has no such
#    field) with BASE and PIP_NO_INDEX=1, from a context holding
#    only the files git tracks, plus the wheels.
#
# Environment: PODMAN_RUNTIME=runc where crun cannot start containers (crun refuses hybrid
# cgroup v1/v2 hosts); DEBIAN_MIRROR (default http://deb.debian.org/debian); PYTHON (the
# host's python3 with pip, default .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
VERSION=$("$PYTHON" -c 'import tagwatch; print(tagwatch.__version__)' 2>/dev/null \
    || sed -n 's/^__version__ = "\(.*\)"/\1/p' tagwatch/__init__.py)
TAG=${1:-tagwatch:$VERSION}
BASE=localhost/debian-python:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
RUNTIME=()
[ -n "${PODMAN_RUNTIME:-}" ] && RUNTIME=(--runtime "$PODMAN_RUNTIME")
work=$(mktemp -d /tmp/tagwatch-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! podman image exists "$BASE"; then
    echo "==> $BASE: debootstrap bookworm (python3, python3-venv, ca-certificates)" >&2
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar -C "$work/rootfs" -c . | podman import \
        --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE" >/dev/null
    rm -rf "$work/rootfs"
fi

echo "==> build context: the files git tracks, and the wheels from PyPI" >&2
mkdir -p "$work/context"
git ls-files -z | xargs -0 tar -c | tar -C "$work/context" -x
"$PYTHON" -m pip wheel --quiet --wheel-dir "$work/context/wheels" . "setuptools>=77"

echo "==> podman build -t $TAG (BASE=$BASE)" >&2
podman build "${RUNTIME[@]}" --format docker --network=none -t "$TAG" \
    --build-arg BASE="$BASE" \
    --build-arg PIP_FIND_LINKS=/src/wheels --build-arg PIP_NO_INDEX=1 \
    -f Containerfile "$work/context"
podman image inspect --format '{{.Id}} {{.Size}} bytes' "$TAG"
