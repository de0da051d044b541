#!/bin/sh
# tools/deps.sh: `make deps`. Checks that the build and the tests have what they
# need and, on Debian as root, installs what is missing with apt-get.
#
#   DEB_PKGS="..." PC_MODULES="..." sh tools/deps.sh [--soft]
#
# With dpkg (Debian, Ubuntu): DEB_PKGS are checked with dpkg-query. Missing ones
# are installed with apt-get when run as root; otherwise the exact apt-get line
# is printed. Without dpkg: the pkg-config modules PC_MODULES, the commands and
# the Python modules the tests use are checked directly, and what is missing is
# printed for the local package manager.
#
# Exit status: 0 when nothing is missing (or it was installed), 1 otherwise.
# --soft (what `make demo` and `make test` use): the same report, then exit 0,
# so the build goes on with whatever pkg-config finds and fails, if it must,
# where something is really needed.
#
# SPDX-License-Identifier: MIT

soft=0
[ "$1" = "--soft" ] && soft=1

# Reports that something is missing; with --soft that is only a warning.
give_up() {
    if [ "$soft" = 1 ]; then
        echo ">>> Warning: going on without them; the build or the tests may fail." >&2
        exit 0
    fi
    exit 1
}

if command -v dpkg-query >/dev/null 2>&1; then
    missing=""
    for p in $DEB_PKGS; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
    done
    [ -z "$missing" ] && exit 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo ">>> Installing:$missing"
        if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; then
            exit 0
        fi
        echo "Error: apt-get could not install:$missing" >&2
        give_up
    fi
    echo "Missing Debian packages:$missing" >&2
    echo "Install them as root with:" >&2
    echo "  apt-get install -y$missing" >&2
    give_up
fi

# No dpkg: not a Debian system. Check what the Makefile and tests/run.sh use.
missing=""
for c in cc make pkg-config sqlite3; do
    command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
for m in $PC_MODULES; do
    pkg-config --exists "$m" 2>/dev/null || missing="$missing $m (pkg-config module)"
done
if [ -x /usr/bin/python3 ]; then
    for m in pytest zmq msgpack; do
        /usr/bin/python3 -c "import $m" 2>/dev/null || missing="$missing python3-$m"
    done
else
    missing="$missing /usr/bin/python3"
fi
[ -z "$missing" ] && exit 0
echo "No dpkg-query here, so no apt-get install. Missing:$missing" >&2
echo "Install them with this system's package manager (Debian names: $DEB_PKGS)." >&2
give_up
