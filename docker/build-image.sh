#!/usr/bin/env bash
# Build a stage image locally, without any registry, and print its tag.
#
#   docker/build-image.sh busybox [TAG]   # executor/busybox:<busybox-static version>, ~1 s
#   docker/build-image.sh debian  [TAG]   # executor/debian:bookworm, the base (debootstrap, ~1 min)
#   docker/build-image.sh python  [TAG]   # executor/python:bookworm-<recipe>, the default stage image
#   docker/build-image.sh redis   [TAG]   # executor/redis:<version>-<recipe>, Debian's redis-server
#   docker/build-image.sh s3      [TAG]   # executor/s3s-fs:0.14.1-<recipe>, the local S3 server
#   docker/build-image.sh worker  [TAG]   # executor/worker:<source digest>
# (<recipe>: a digest of docker/<dir>, so a changed recipe is built anew; each of the four
# is also tagged :latest.)
#
# The Dockerfiles under docker/ take their base as the build argument BASE; none needs a
# registry or the network. The worker's wheels are built with $PYTHON (default python3).
#
# Idempotent: when the tag already exists nothing is built; calls at once (parallel test
# processes) wait for each other, the first builds. Needs root (or a user in the docker group
# for busybox) and an apt mirror; nothing is pulled from a Docker registry.
set -euo pipefail

kind=${1:-}
tag=${2:-}

# One build at a time on this machine: two would race for apt's lock and build twice (most
# kinds build the Debian base first).
lock="${TMPDIR:-/tmp}/executor-build-image.lock"
if command -v flock >/dev/null 2>&1 && (: >>"$lock") 2>/dev/null; then
    exec 9>>"$lock"
    flock 9
fi

die() { echo "build-image.sh: $*" >&2; exit 1; }

# Docker tags allow [A-Za-z0-9_.-]: drop a Debian epoch ("1:") and map "+" and "~" to "-".
tag_version() { printf '%s' "$1" | sed -e 's/^[0-9]*://' -e 's/[+~]/-/g'; }

have_tag() { docker image inspect "$1" >/dev/null 2>&1; }

candidate() {
    v=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    if [ -z "$v" ] || [ "$v" = "(none)" ]; then
        apt-get update -qq >/dev/null || die "apt-get update failed"
        v=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    fi
    [ -n "$v" ] && [ "$v" != "(none)" ] || die "no apt candidate for package $1"
    printf '%s' "$v"
}

build_busybox() {
    [ -n "$tag" ] || tag="executor/busybox:$(tag_version "$(candidate busybox-static)")"
    if have_tag "$tag"; then echo "$tag"; return; fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && apt-get download -qq busybox-static >/dev/null 2>"$work/err") \
        || { cat "$work/err" >&2; die "apt-get download busybox-static failed"; }
    root="$work/root"
    dpkg-deb -x "$work"/busybox-static_*.deb "$root"
    bb="$root/bin/busybox"
    [ -x "$bb" ] || die "busybox-static did not contain bin/busybox"
    for applet in $("$bb" --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    rm -rf "$root/usr/share"
    mkdir -p "$root/etc" "$root/tmp" "$root/dev" "$root/proc" "$root/sys" "$root/work"
    chmod 1777 "$root/tmp"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . | docker import \
        -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c 'ENV SHELL=/bin/sh' \
        -c 'CMD ["/bin/sh"]' - "$tag" >/dev/null
    echo "$tag"
}

# The Debian archive this machine's apt already uses (debootstrap needs it spelled out).
apt_mirror() {
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
            2>/dev/null | sed -n -e 's/^URIs: *//p' -e 's/^deb  *\(\[[^]]*\] *\)\{0,1\}//p' \
        | awk '{print $1}' | grep -v -e security -e '^$' | head -n 1)
    [ -n "$m" ] || die "no Debian mirror found in /etc/apt/sources.list*"
    printf '%s' "$m"
}

# The base of every other image: Debian with Python (and venv, for installing wheels), bash
# and the CA certificates (for AWS S3), by debootstrap from this machine's apt mirror.
build_debian() {
    release=bookworm
    [ -n "$tag" ] || tag="executor/debian:$release"
    if have_tag "$tag"; then echo "$tag"; return; fi
    command -v debootstrap >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 \
            || die "cannot install debootstrap"
    }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,bash,ca-certificates \
        "$release" "$work/root" \
        "$(apt_mirror)" >"$work/log" 2>&1 || { tail -20 "$work/log" >&2; die "debootstrap failed"; }
    rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/* \
        "$work"/root/usr/share/doc "$work"/root/usr/share/man "$work"/root/usr/share/locale \
        "$work"/root/usr/share/info
    tar --numeric-owner -C "$work/root" -cf - . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV SHELL=/bin/bash' -c 'CMD ["/bin/bash"]' - "$tag" >/dev/null
    echo "$tag"
}

here=$(cd "$(dirname "$0")" && pwd)

# docker build without BuildKit: this machine's client has no buildx, and nothing here needs it.
# The image is also tagged <name>:latest (what deploy/compose.local.yaml uses).
build_from() {  # build_from DIR CONTEXT TAG: DIR/Dockerfile, on the Debian base
    base=$(tag="" build_debian)
    DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" -f "$1/Dockerfile" -t "$3" "$2" \
        >"$2/.build.log" 2>&1 || { tail -30 "$2/.build.log" >&2; die "docker build of $3 failed"; }
    docker tag "$3" "${3%:*}:latest"
    echo "$3"
}

# A short digest of the files under docker/NAME: a changed Dockerfile is a new tag.
recipe() { (cd "$here/$1" && find . -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-8); }

# The default stage image: Python 3 and bash (docker/stage).
build_python() {
    [ -n "$tag" ] || tag="executor/python:bookworm-$(recipe stage)"
    if have_tag "$tag"; then echo "$tag"; return; fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    build_from "$here/stage" "$work" "$tag"
}

# Redis from Debian's packages: the .debs the base lacks are downloaded here (apt), so the
# image build itself needs no network.
build_redis() {
    version=$(tag_version "$(candidate redis-server)")
    [ -n "$tag" ] || tag="executor/redis:$version-$(recipe redis)"
    if have_tag "$tag"; then echo "$tag"; return; fi
    base=$(tag="" build_debian)
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    docker run --rm --network none "$base" dpkg-query -W -f '${Package}\n' >"$work/have"
    # The dependencies the base does not have, and theirs (the first of alternatives).
    need=" redis-server " todo=redis-server
    while [ -n "$todo" ]; do
        next=""
        for pkg in $todo; do
            for dep in $(apt-cache depends --no-recommends --no-suggests "$pkg" \
                    | sed -n 's/^ *\(Pre\)\{0,1\}Depends: \([^<]*\)$/\2/p'); do
                dep=${dep%%:*}
                grep -qx "$dep" "$work/have" && continue
                case "$need" in *" $dep "*) continue ;; esac
                need="$need$dep " next="$next $dep"
            done
        done
        todo=$next
    done
    mkdir "$work/debs"
    # shellcheck disable=SC2086
    (cd "$work/debs" && apt-get download -qq $need) >/dev/null 2>"$work/err" \
        || { cat "$work/err" >&2; die "apt-get download failed"; }
    build_from "$here/redis" "$work" "$tag"
}

# The fleet's local S3 server: s3s-fs (a file-system backed S3 implementation in Rust),
# built by `cargo install s3s-fs --version 0.14.1 --features binary` (scripts/setup).
S3S_FS_VERSION=0.14.1
build_s3() {
    [ -n "$tag" ] || tag="executor/s3s-fs:$S3S_FS_VERSION-$(recipe s3)"
    if have_tag "$tag"; then echo "$tag"; return; fi
    binary=$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")
    [ -x "$binary" ] || die "s3s-fs is missing: cargo install s3s-fs --version $S3S_FS_VERSION --features binary"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cp "$binary" "$work/s3s-fs"
    cp "$here/s3/entrypoint.sh" "$work/"
    build_from "$here/s3" "$work" "$tag"
}

# The worker: the package from wheels built here beforehand (pip reaches PyPI; the image
# build does not). Tagged by a digest of the sources, so a changed worker is rebuilt and an
# unchanged one is reused; executor/worker:latest names the last one built.
# The environment markers (PEP 508) of the image's Python, printed in the image.
TARGET_MARKERS='
import json, os, platform, sys
v = sys.implementation.version
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": f"{v.major}.{v.minor}.{v.micro}",
    "os_name": os.name, "platform_machine": platform.machine(),
    "platform_release": platform.release(), "platform_system": platform.system(),
    "platform_version": platform.version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform}))'

# The package's files as they are here, committed or not (but not ignored), NUL-separated.
source_files() {
    git ls-files -z --cached --others --exclude-standard -- "$@" \
        | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done
}

build_worker() {
    src=$(cd "$here/.." && pwd)
    digest=$(cd "$src" && source_files pyproject.toml executor worker docker/worker docker/build-image.sh \
        | xargs -0 sha256sum | sha256sum | cut -c1-12)
    [ -n "$tag" ] || tag="executor/worker:$digest"
    if have_tag "$tag"; then docker tag "$tag" executor/worker:latest; echo "$tag"; return; fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    python=${PYTHON:-python3}
    (cd "$src" && source_files | tar --null -T - -cf -) | (mkdir "$work/src" && tar -C "$work/src" -xf -)
    base=$(tag="" build_debian)
    markers=$(docker run --rm --network none "$base" python3 -c "$TARGET_MARKERS")
    "$python" "$here/worker/wheels.py" "$work/src" "$work/wheels" "$markers" \
        >"$work/pip.log" 2>&1 || { tail -30 "$work/pip.log" >&2; die "building the wheels failed"; }
    rm -rf "$work/src"
    build_from "$here/worker" "$work" "$tag"
}

case "$kind" in
    busybox) build_busybox ;;
    debian) build_debian ;;
    python) build_python ;;
    redis) build_redis ;;
    s3) build_s3 ;;
    worker) build_worker ;;
    *) die "usage: build-image.sh busybox|debian|python|redis|s3|worker [TAG]" ;;
esac
