# config.mk: build switches. Override on the command line, e.g. `make ARCHFLAGS=`.

# Code generation for this machine's SIMD units (AVX2/AVX-512 FMA). Set empty
# for a portable binary; the kernels stay correct, only slower.
ARCHFLAGS ?= -march=native

# Optimization for normal builds; `make check` uses its own flags.
OPTFLAGS ?= -O2 -g

# Install layout (`make install DESTDIR=... PREFIX=...`).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share/rwkvcast
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc/rwkvcast
UNITDIR ?= /lib/systemd/system

# Debian packages the build and the tests need (`make deps` installs them).
DEB_PKGS ?= gcc make pkg-config libzmq3-dev libmsgpack-dev libsqlite3-dev \
            libyaml-dev libsystemd-dev sqlite3 python3 python3-pytest \
            python3-zmq python3-msgpack
