#!/bin/bash
# build.sh [BUILDDIR [MESON OPTIONS...]] — configure (once) and build.
# A build dir configured before an optional dependency was installed (the
# unit tests need cmocka, the man pages scdoc) is configured again once it
# appears: meson looks dependencies up only at setup, so a build dir made
# by ./scripts/demo before ./scripts/test installed cmocka would otherwise
# have no unit tests at all.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
# What the configure step found; compared with what it would find now.
optdeps() {
    printf 'cmocka=%s scdoc=%s\n' \
        "$(pkg-config --modversion cmocka 2>/dev/null || echo none)" \
        "$(command -v scdoc || echo none)"
}
stamp="$dir/sandpit-optdeps"
if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null
    optdeps >"$stamp"
elif [ "$(cat "$stamp" 2>/dev/null)" != "$(optdeps)" ]; then
    echo "sandpit: $dir: optional dependencies changed ($(optdeps)), reconfiguring" >&2
    meson setup --reconfigure "$dir" "$@" >/dev/null
    optdeps >"$stamp"
fi
ninja -C "$dir" >/dev/null
