#!/bin/sh
# Build a stage image locally, without any registry, and print its tag.
#
#   docker/build-image.sh busybox [TAG]   # executor/busybox:<busybox-static version>, ~1 s
#   docker/build-image.sh python  [TAG]   # executor/python:bookworm (debootstrap, ~1 min)
#
# Idempotent: when the tag already exists nothing is built; calls at once (parallel test
# processes) wait for each other, the first builds. Needs root (or a user in the docker group
# for busybox) and an apt mirror; nothing is pulled from a Docker registry.
set -eu

kind=${1:-}
tag=${2:-}

# One build of a kind at a time on this machine: two would race for apt's lock and build twice.
lock="${TMPDIR:-/tmp}/executor-build-image-$(printf '%s' "$kind" | tr -c 'a-z' '_').lock"
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

build_python() {
    release=bookworm
    [ -n "$tag" ] || tag="executor/python:$release"
    if have_tag "$tag"; then echo "$tag"; return; fi
    command -v debootstrap >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 \
            || die "cannot install debootstrap"
    }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    debootstrap --variant=minbase --include=python3,bash "$release" "$work/root" \
        "$(apt_mirror)" >"$work/log" 2>&1 || { tail -20 "$work/log" >&2; die "debootstrap failed"; }
    rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/* \
        "$work"/root/usr/share/doc "$work"/root/usr/share/man "$work"/root/usr/share/locale \
        "$work"/root/usr/share/info
    tar --numeric-owner -C "$work/root" -cf - . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV SHELL=/bin/bash' -c 'CMD ["/bin/bash"]' - "$tag" >/dev/null
    echo "$tag"
}

case "$kind" in
    busybox) build_busybox ;;
    python) build_python ;;
    *) die "usage: build-image.sh busybox|python [TAG]" ;;
esac
