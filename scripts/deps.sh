#!/bin/bash
# deps.sh — install what a fresh Debian 12 machine lacks to build and test
# sandpit. Runs apt-get only when something is missing.
set -euo pipefail
BUILD_PKGS=(gcc clang meson ninja-build pkg-config libseccomp-dev libjansson-dev
            libarchive-dev
            # what the static libarchive links against (the CLI is static)
            libacl1-dev libzstd-dev liblz4-dev nettle-dev liblzma-dev
            libbz2-dev zlib1g-dev libxml2-dev libicu-dev
            scdoc  # the man pages (man/)
            # mkfs.ext4: workspace disk images, as root (docs/disk.md)
            e2fsprogs)
TEST_PKGS=(libcmocka-dev python3 python3-pytest iproute2 procps util-linux
           libclang-rt-14-dev curl openssl git diffutils tmux busybox-static
           zsh fish       # tests/packaging: the shell completions
           python3-venv python3-wheel  # tests/python: pip install ./python
           # tests/compat: real tools inside and on the host
           libpython3.11-testsuite sqlite3 make gcc
           # newuidmap/newgidmap: an ordinary user's /etc/subuid range inside
           # (docs/security.md); a runtime dependency for packaging too
           uidmap
           # the OCI runtime tests and bench/oci: a real containerd, and runc
           # to compare with (tests/integration/test_oci.py)
           containerd runc)

want=("${BUILD_PKGS[@]}")
if [ "${1:-}" = "--test" ]; then
    want+=("${TEST_PKGS[@]}")
    # node and npm for the MCP SDK client tests, from Debian when the
    # machine has none of its own.
    command -v npm >/dev/null || want+=(nodejs npm)
fi
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "sandpit: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The MCP tests' node packages (the official MCP SDK client), pinned by
# tests/mcp/package-lock.json; node and npm from the machine or Debian.
if [ "${1:-}" = "--test" ] && command -v npm >/dev/null; then
    d="$(dirname "$0")/../tests/mcp"
    if [ ! "$d/node_modules/.package-lock.json" -nt "$d/package-lock.json" ]; then
        (cd "$d" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
            echo "sandpit: npm ci in tests/mcp failed" >&2
    fi
fi
