#!/usr/bin/env bash
# Builds emnist-draw-base:bookworm, a stand-in for python:3.11-slim where no registry can be
# reached: Debian bookworm from this machine's own Debian mirror (debootstrap), a venv whose
# python and pip come first on PATH (as /usr/local/bin does in the official image), and this
# machine's CA bundle and pip config so pip inside `docker build` reaches the same package index.
#
#   tests/docker/make_base.sh [IMAGE]      (as root, with dockerd running; skipped if IMAGE exists)
set -euo pipefail
IMAGE=${1:-emnist-draw-base:bookworm}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "make_base: $IMAGE exists"
    exit 0
fi

# The mirror apt uses here (deb822 .sources or one-line .list files): the first one serving
# bookworm itself, not bookworm-security. Read, never hard-coded, so this runs behind any mirror.
mirror=$(
    {
        awk '/^URIs:/ {uri=$2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == "bookworm") print uri}' \
            /etc/apt/sources.list.d/*.sources 2>/dev/null
        awk '$1 == "deb" && $3 == "bookworm" {print $2}' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
    } | head -n 1
) || true  # a missing sources file is no error
if [ -z "$mirror" ]; then
    echo "make_base: no bookworm mirror in /etc/apt/sources.list{,.d/*}" >&2
    exit 1
fi

root=$(mktemp -d /var/tmp/emnist-draw-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "make_base: debootstrap bookworm from $mirror (a few minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; exit 1; }
rm -f "$root.log"

# The venv plays the official image's /usr/local: `python` and `pip` first on PATH.
chroot "$root" /usr/bin/python3 -m venv /opt/python
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
# pip here may be pointed at a mirror or given constraints by config files: the build uses them too.
if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$root/etc/pip.conf"; fi
if [ -d /etc/xdg/pip ]; then mkdir -p "$root/etc/xdg" && cp -r /etc/xdg/pip "$root/etc/xdg/pip"; fi
# No package lists or caches in the image (the official slim image ships none either).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb

tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$IMAGE" >/dev/null
echo "make_base: built $IMAGE"
