#!/bin/sh
# tests/deb_test.sh: the Debian package end to end (issue 20 item 5), as
# root on a Debian system: lintian has nothing to say above info level; the
# package installs; the service starts under systemd when systemd runs, else
# the installed binary runs as the package's user rwkvcast on a copy of the
# installed config (free ports, its state in /var/lib/rwkvcast) and answers
# ping, /healthz and /metrics; then purge leaves none of its files, its
# config dir or its state behind (the system user stays, as Debian does).
#
#   sh tests/deb_test.sh build/rwkvcast_VERSION_ARCH.deb    (`make deb-test`)
#
# Every wait is bounded. Exit 0 when all passed.
#
# SPDX-License-Identifier: MIT
set -eu
deb=${1:?usage: deb_test.sh PACKAGE.deb}
fail() { echo "deb_test: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i / --purge)"
command -v dpkg >/dev/null || fail "needs dpkg"
if dpkg-query -W -f='${Status}' rwkvcast 2>/dev/null | grep -q installed; then
    fail "rwkvcast is already installed here; not touching it"
fi

echo ">>> lintian"
out=$(lintian "$deb" 2>/dev/null || true)
echo "$out" | grep -E '^[EW]: ' && fail "lintian errors or warnings"
echo "lintian: no errors, no warnings"

echo ">>> install"
files=$(dpkg -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$')
dpkg -i "$deb" >/dev/null || fail "dpkg -i"
for f in $files; do [ -e "$f" ] || [ -L "$f" ] || fail "not installed: $f"; done
dpkg-query -W -f='${Conffiles}\n' rwkvcast | grep -q /etc/rwkvcast/rwkvcast.yaml || fail "config is not a conffile"
/usr/sbin/rwkvcastd --version | grep -q '^rwkvcastd ' || fail "rwkvcastd --version"
/usr/bin/rwkvcast --version | grep -q '^rwkvcast ' || fail "rwkvcast --version"
/usr/sbin/rwkvcastd -c /etc/rwkvcast/rwkvcast.yaml --check-config >/dev/null || fail "installed config invalid"
# The unit's static user and its state directory (sysusers.d, tmpfiles.d).
getent passwd rwkvcast >/dev/null || fail "no user rwkvcast after install"
[ -f /usr/lib/sysusers.d/rwkvcast.conf ] && [ -f /usr/lib/tmpfiles.d/rwkvcast.conf ] || fail "no sysusers/tmpfiles file"
[ "$(stat -c '%U:%G %a' /var/lib/rwkvcast)" = "rwkvcast:rwkvcast 700" ] || fail "state dir: $(stat -c '%U:%G %a' /var/lib/rwkvcast)"
grep -q '^User=rwkvcast$' /lib/systemd/system/rwkvcast.service || fail "unit does not run as rwkvcast"
echo "user rwkvcast and /var/lib/rwkvcast (0700) made by the package"

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tmp=$(mktemp -d)
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
if [ -d /run/systemd/system ]; then
    echo ">>> systemd: starting rwkvcast.service"
    systemctl start rwkvcast || fail "systemctl start"
    systemctl is-active --quiet rwkvcast || fail "service not active"
    i=0; until rwkvcast ctl -t 500 ping >/dev/null 2>&1; do i=$((i + 1)); [ $i -lt 40 ] || fail "no ping"; sleep 0.5; done
    systemctl stop rwkvcast
else
    echo ">>> no systemd: running /usr/sbin/rwkvcastd as user rwkvcast on the installed config"
    h=$(port)
    # As the unit would: the user rwkvcast, its state in /var/lib/rwkvcast.
    sed -e "s|tcp://127.0.0.1:7701|tcp://127.0.0.1:$(port)|" -e "s|tcp://127.0.0.1:7702|tcp://127.0.0.1:$(port)|" \
        -e "s|listen: 127.0.0.1:7703|listen: 127.0.0.1:$h|" -e "s|^state_db: .*|state_db: /var/lib/rwkvcast/rwkvcast.db|" \
        /etc/rwkvcast/rwkvcast.yaml > "$tmp/c.yaml"
    chmod 755 "$tmp"; chmod 644 "$tmp/c.yaml"
    (cd /var/lib/rwkvcast && exec setpriv --reuid=rwkvcast --regid=rwkvcast --clear-groups \
        /usr/sbin/rwkvcastd -c "$tmp/c.yaml" > "$tmp/log" 2>&1) &
    pid=$!
    i=0; until rwkvcast ctl -e "ipc:///var/lib/rwkvcast/rwkvcastd.sock" -t 500 ping >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 60 ] || { cat "$tmp/log"; fail "no ping"; }; sleep 0.5; done
    grep -q "Model '/usr/share/rwkvcast/default.rwkv' loaded" "$tmp/log" || { cat "$tmp/log"; fail "installed model not used"; }
    /usr/bin/python3 -c "import urllib.request as u; assert u.urlopen('http://127.0.0.1:$h/healthz', timeout=5).read() == b'ok\n'; \
assert b'rwkvcast_build_info' in u.urlopen('http://127.0.0.1:$h/metrics', timeout=5).read()" || fail "HTTP"
    kill -TERM "$pid"; wait "$pid" || fail "daemon did not stop cleanly"
    pid=
    [ "$(stat -c %U /var/lib/rwkvcast/rwkvcast.db)" = rwkvcast ] || fail "store not owned by rwkvcast"
fi

echo ">>> purge"
dpkg --purge rwkvcast >/dev/null || fail "dpkg --purge"
for f in $files /etc/rwkvcast /var/lib/rwkvcast /var/lib/private/rwkvcast /usr/share/rwkvcast \
         /etc/systemd/system/multi-user.target.wants/rwkvcast.service \
         /var/lib/systemd/deb-systemd-helper-enabled/rwkvcast.service.dsh-also \
         /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/rwkvcast.service; do
    { [ -e "$f" ] || [ -L "$f" ]; } && fail "left behind: $f"
done
dpkg-query -W rwkvcast >/dev/null 2>&1 && fail "still known to dpkg"
# Debian keeps system accounts on purge (files elsewhere may carry the uid).
getent passwd rwkvcast >/dev/null && echo "purge kept the system user rwkvcast (Debian practice), nothing else"
echo "deb_test: install, run and purge passed"
