# config.mk: build switches. Override on the command line, e.g. `make ARCHFLAGS=`.

# Code generation for this machine's SIMD units (AVX2/AVX-512 FMA). Set empty
# for a portable binary; the kernels stay correct, only slower.
ARCHFLAGS ?= -march=native

# Optimization for normal builds; `make check` uses its own flags.
OPTFLAGS ?= -O2 -g

# Warnings as errors: off by default, so a compiler newer than ours that warns
# about something new does not stop a build. On in CI (CI=true, which CI
# services set; .ci/run sets WERROR=1 too) and in `make check`; `make WERROR=1`
# turns it on by hand.
WERROR ?= $(if $(filter true 1,$(CI)),1,0)

# Install layout (`make install DESTDIR=... PREFIX=...`).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share/rwkvcast
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc/rwkvcast
UNITDIR ?= /lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
COMPLDIR ?= $(PREFIX)/share/bash-completion/completions

# Debian packages the build and the tests need (`make deps` installs them;
# `make demo` and `make test` run it and go on without them if it cannot).
# prometheus: promtool and the server for the /metrics tests.
DEB_PKGS ?= gcc make pkg-config libzmq3-dev libmsgpack-dev libsqlite3-dev \
            libyaml-dev libsystemd-dev libmicrohttpd-dev libcairo2-dev sqlite3 python3 python3-pytest \
            python3-zmq python3-msgpack libmosquitto-dev mosquitto mosquitto-clients prometheus \
            librdkafka-dev debhelper lintian
