# Makefile: plain GNU make. Only `make demo` and `make test`, the README's two
# commands for a fresh machine, run `deps` (tools/deps.sh) first, as a soft
# check: it installs missing Debian packages when it can, otherwise says what is
# missing and the build goes on with what pkg-config finds. They then build in a
# sub-make, so pkg-config is asked only after the packages exist. Every other
# target only builds. `make deps` on its own fails when something is missing.
#
# Layout: every .c under common/ model/ connectors/ config/ daemon/ (except
# *_main.c) goes into one static library; daemon/rwkvcastd_main.c is the
# daemon, tools/*.c is the rwkvcast command, bench/*.c and tests/*/*_test.c
# are one program each. New files are picked up without editing this file.

include config.mk

BUILD ?= build

# `make check` (SAN=1): the same tree under ASan + UBSan in its own build dir.
ifeq ($(SAN),1)
BUILD := build-asan
OPTFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif

PKGS_REQUIRED := libzmq msgpack sqlite3 yaml-0.1 libmicrohttpd
PKGS := $(PKGS_REQUIRED)
HAVE_SYSTEMD := $(shell pkg-config --exists libsystemd 2>/dev/null && echo 1)
ifeq ($(HAVE_SYSTEMD),1)
PKGS += libsystemd
SYSTEMD_DEF := -DHAVE_LIBSYSTEMD
endif

# The MQTT connector (connectors/mqtt.c) likewise: without libmosquitto the
# daemon builds and refuses 'type: mqtt' at startup, saying why.
HAVE_MOSQUITTO := $(shell pkg-config --exists libmosquitto 2>/dev/null && echo 1)
ifeq ($(HAVE_MOSQUITTO),1)
PKGS += libmosquitto
MOSQUITTO_DEF := -DHAVE_MOSQUITTO
endif

# And the Kafka connector (connectors/kafka.c) with librdkafka.
HAVE_RDKAFKA := $(shell pkg-config --exists rdkafka 2>/dev/null && echo 1)
ifeq ($(HAVE_RDKAFKA),1)
PKGS += rdkafka
RDKAFKA_DEF := -DHAVE_RDKAFKA
endif

CPPFLAGS += -D_GNU_SOURCE -I. -DRWKVCAST_DATADIR='"$(DATADIR)"' $(SYSTEMD_DEF) $(MOSQUITTO_DEF) $(RDKAFKA_DEF) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# -Werror only when WERROR=1 (config.mk: CI and `make check` set it).
WARN := -std=c11 -Wall -Wextra -pedantic $(if $(filter 1,$(WERROR)),-Werror)
CFLAGS += $(WARN) $(OPTFLAGS) $(ARCHFLAGS) -ffp-contract=fast -fopenmp -MMD -MP
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread
LDFLAGS += -fopenmp

LIB_SRC := $(filter-out %_main.c,$(wildcard common/*.c model/*.c connectors/*.c config/*.c daemon/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/librwkvcast.a

TOOL_SRC := $(wildcard tools/*.c)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TEST_SRC := $(wildcard tests/unit/*_test.c tests/grad/*_test.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(filter-out %_test.c,$(wildcard tests/unit/*.c tests/grad/*.c))

DAEMON := $(BUILD)/rwkvcastd
CLI := $(BUILD)/rwkvcast
PROGS := $(DAEMON) $(CLI)

.PHONY: all test check check-tsan bench demo model deps install uninstall clean reallyclean \
        build-all build-tests run-tests run-bench bench-anomaly fuzz fuzz-run help

all: build-all

# The README's test command: soft deps check, then build and run everything.
test:
	@$(MAKE) --no-print-directory deps DEPS_SOFT=1
	@$(MAKE) --no-print-directory build-all build-tests
	@$(MAKE) --no-print-directory run-tests

# The tests under AddressSanitizer and UndefinedBehaviorSanitizer, in their own
# build dir, with warnings as errors.
check:
	@$(MAKE) --no-print-directory SAN=1 WERROR=1 build-all build-tests
	@$(MAKE) --no-print-directory SAN=1 WERROR=1 run-tests

# The engine's worker threads, the checkpoint writer and the event loop under
# ThreadSanitizer: the engine unit tests and the daemon's e2e tests. libzmq is
# not instrumented, so its internal hand-offs are suppressed (tests/tsan.supp);
# setarch -R because TSan needs a fixed memory layout.
TSAN_TESTS := tests/e2e/test_threads.py tests/e2e/test_lifecycle.py tests/e2e/test_daemon.py
check-tsan:
	@$(MAKE) --no-print-directory BUILD=build-tsan OPTFLAGS="-O1 -g -fsanitize=thread -Wno-tsan" \
	  LDFLAGS="-fopenmp -fsanitize=thread" build-all build-tests
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp" setarch -R build-tsan/tests/unit/engine_test
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp" RWKVCAST_SANITIZED=1 \
	  RWKVCASTD=$(CURDIR)/build-tsan/rwkvcastd RWKVCAST=$(CURDIR)/build-tsan/rwkvcast \
	  setarch -R /usr/bin/python3 -m pytest -q $(TSAN_TESTS)

# The recipe waits for build-all, so nothing compiles while it measures.
bench: build-all
	$(BUILD)/bench/rwkv_bench

# End-to-end: rwkvcastd driven by bench/loadgen (bench/bench_e2e.py), with the
# model-only number of rwkv_bench in the same run. E2E_ARGS=--quick: N <= 100k.
.PHONY: bench-e2e
bench-e2e: build-all
	/usr/bin/python3 bench/bench_e2e.py --build $(BUILD) $(E2E_ARGS)

# kill -9 under load, TORTURE_ROUNDS times (tests/torture.py): 1000 series at
# 10k samples/s, checkpoints every second; prints a line per restart and the
# tally (intact store, every series restored, at most one interval lost).
# About 3 s a round. tests/e2e/test_lifecycle.py runs a 3-round variant.
TORTURE_ROUNDS ?= 100
.PHONY: torture
torture: build-all
	/usr/bin/python3 tests/torture.py --daemon $(DAEMON) --rounds $(TORTURE_ROUNDS)

# /metrics with 10,000 exported series (bench/bench_http.py; bench/RESULTS.md
# "HTTP endpoint"): one horizon per series, then four.
.PHONY: bench-http
bench-http: build-all
	/usr/bin/python3 bench/bench_http.py --build $(BUILD)
	/usr/bin/python3 bench/bench_http.py --build $(BUILD) --steps 1,6,24,48

# Anomaly benchmark (bench/RESULTS.md "Anomaly detection"): SKAB + generated set,
# then anomalies injected into real backgrounds (live-metrics, SKAB anomaly-free);
# NAB-style scores for rwkvcast and two baselines in each.
bench-anomaly: build-all
	$(BUILD)/bench/anomaly_bench --skab ../shared/data/skab
	$(BUILD)/bench/anomaly_real --live ../shared/data/live-metrics \
	    --skab-free ../shared/data/skab/anomaly-free/anomaly-free.csv

# Live-metrics benchmark (rwkvcast eval --live, tools/eval_live.c): the engine's
# forecasts on the 16 real cluster metrics against naive, seasonal naive and
# simple exponential smoothing, in one run.
.PHONY: bench-live
bench-live: build-all
	$(BUILD)/rwkvcast eval --live ../shared/data/live-metrics

# Rebuilds model/default.rwkv from scratch: M4 Hourly train, the first half of
# the live-metrics files but google_*, and generated series; deterministic for
# the seed (docs/TRAINING.md). About 10-15 min on 2 cores.
MODEL_TRAIN_ARGS ?= --seed 1 --steps 16000 --threads 2 --live ../shared/data/live-metrics
model: build-all
	$(CLI) train $(MODEL_TRAIN_ARGS) -o model/default.rwkv

# `make demo`: about DEMO_SECONDS of live forecasts and alerts from simulated
# sensors on the terminal (tools/demo.sh), then every process it started is
# stopped (also on Ctrl-C) and the daemon's stats are printed.
DEMO_SECONDS ?= 30
demo:
	@$(MAKE) --no-print-directory deps DEPS_SOFT=1
	@$(MAKE) --no-print-directory build-all
	@BUILD=$(BUILD) DEMO_SECONDS=$(DEMO_SECONDS) sh tools/demo.sh

# `make install DESTDIR=... PREFIX=...`: binaries, the default model if built,
# the example config (as rwkvcast.yaml only when none exists), the unit file
# (its paths rewritten for SBINDIR/DATADIR/SYSCONFDIR), its sysusers.d and
# tmpfiles.d files and the man pages. Without DESTDIR, as root, the unit's
# user and state directory are made at once (systemd-sysusers,
# systemd-tmpfiles), as the Debian package's postinst does.
install: build-all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(DATADIR) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	  $(DESTDIR)$(SYSCONFDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(COMPLDIR)
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/rwkvcast
	install -m 755 $(DAEMON) $(DESTDIR)$(SBINDIR)/rwkvcastd
	if [ -f model/default.rwkv ]; then install -m 644 model/default.rwkv $(DESTDIR)$(DATADIR)/default.rwkv; fi
	install -m 644 config/rwkvcast.example.yaml $(DESTDIR)$(DATADIR)/rwkvcast.example.yaml
	[ -e $(DESTDIR)$(SYSCONFDIR)/rwkvcast.yaml ] || \
	  install -m 644 config/rwkvcast.example.yaml $(DESTDIR)$(SYSCONFDIR)/rwkvcast.yaml
	sed -e 's|/usr/local/sbin|$(SBINDIR)|g' -e 's|/usr/local/share/rwkvcast|$(DATADIR)|g' \
	  -e 's|/etc/rwkvcast|$(SYSCONFDIR)|g' systemd/rwkvcast.service > $(DESTDIR)$(UNITDIR)/rwkvcast.service
	chmod 644 $(DESTDIR)$(UNITDIR)/rwkvcast.service
	install -m 644 systemd/rwkvcast.sysusers $(DESTDIR)$(SYSUSERSDIR)/rwkvcast.conf
	install -m 644 systemd/rwkvcast.tmpfiles $(DESTDIR)$(TMPFILESDIR)/rwkvcast.conf
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then \
	  systemd-sysusers $(SYSUSERSDIR)/rwkvcast.conf && systemd-tmpfiles --create $(TMPFILESDIR)/rwkvcast.conf; fi
	install -m 644 man/rwkvcast.1 $(DESTDIR)$(MANDIR)/man1/rwkvcast.1
	install -m 644 man/rwkvcast.yaml.5 $(DESTDIR)$(MANDIR)/man5/rwkvcast.yaml.5
	install -m 644 man/rwkvcastd.8 $(DESTDIR)$(MANDIR)/man8/rwkvcastd.8
	install -m 644 tools/rwkvcast.bash $(DESTDIR)$(COMPLDIR)/rwkvcast
	ln -sf rwkvcast $(DESTDIR)$(COMPLDIR)/rwkvcastd
	@echo ">>> Installed. As root: systemctl daemon-reload && systemctl enable --now rwkvcast"

# Removes what `install` put there except the config in SYSCONFDIR and the
# state in /var/lib/rwkvcast, which hold the operator's data.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/rwkvcast $(DESTDIR)$(SBINDIR)/rwkvcastd \
	  $(DESTDIR)$(DATADIR)/default.rwkv $(DESTDIR)$(DATADIR)/rwkvcast.example.yaml \
	  $(DESTDIR)$(UNITDIR)/rwkvcast.service $(DESTDIR)$(MANDIR)/man1/rwkvcast.1 \
	  $(DESTDIR)$(SYSUSERSDIR)/rwkvcast.conf $(DESTDIR)$(TMPFILESDIR)/rwkvcast.conf \
	  $(DESTDIR)$(MANDIR)/man5/rwkvcast.yaml.5 $(DESTDIR)$(MANDIR)/man8/rwkvcastd.8 \
	  $(DESTDIR)$(COMPLDIR)/rwkvcast $(DESTDIR)$(COMPLDIR)/rwkvcastd
	-rmdir $(DESTDIR)$(DATADIR) 2>/dev/null
	@echo ">>> Kept $(DESTDIR)$(SYSCONFDIR)/rwkvcast.yaml, /var/lib/rwkvcast and the user rwkvcast (remove them by hand)."

# `make deb`: a Debian package (debhelper, packaging/debian/ as debian/) of a
# copy of this tree, built portable (ARCHFLAGS=) for /usr, into $(BUILD)/.
# Check it with `lintian $(BUILD)/*.deb`; tests/deb_test.sh installs, runs
# and purges it (as root).
DEB_VERSION := $(shell sed -n 's/^\#define DM_VERSION "\(.*\)"/\1/p' daemon/server.h)
.PHONY: deb
deb:
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/rwkvcast-$(DEB_VERSION)
	tar -c --exclude='./build*' --exclude=./.git --exclude='__pycache__' . | tar -x -C $(BUILD)/deb/rwkvcast-$(DEB_VERSION)
	cp -r packaging/debian $(BUILD)/deb/rwkvcast-$(DEB_VERSION)/debian
	cd $(BUILD)/deb/rwkvcast-$(DEB_VERSION) && DEB_BUILD_OPTIONS="parallel=2 $(DEB_BUILD_OPTIONS)" \
	  dpkg-buildpackage -b -us -uc
	rm -f $(BUILD)/rwkvcast_*.deb && cp $(BUILD)/deb/rwkvcast_*.deb $(BUILD)/
	@ls $(BUILD)/rwkvcast_*.deb

# As root: lintian, install, run (systemd or not), purge (tests/deb_test.sh).
.PHONY: deb-test
deb-test: deb
	sh tests/deb_test.sh $(BUILD)/rwkvcast_$(DEB_VERSION)_*.deb

build-all: $(PROGS) $(BENCH_BIN)
build-tests: $(TEST_BIN) $(if $(filter 1,$(HAVE_RDKAFKA)),$(BUILD)/tests/kafka_mock)

# The Kafka cluster of the e2e tests (librdkafka's mock cluster in a
# helper process); links librdkafka only.
$(BUILD)/tests/kafka_mock: tests/helpers/kafka_mock.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(shell pkg-config --libs rdkafka)

# The model's golden-file tests read shared/golden, which sits beside the
# project (../shared/golden). A clone made elsewhere, e.g. in a temp dir
# (`git clone /path/to/project $tmp/p`), finds it beside the repository it was
# cloned from; without either, those tests fail and say where they looked.
ORIGIN_DIR := $(shell git config --get remote.origin.url 2>/dev/null)
RWKVCAST_GOLDEN ?= $(abspath $(firstword $(wildcard ../shared/golden) $(if $(ORIGIN_DIR),$(wildcard $(ORIGIN_DIR)/../shared/golden))))

# The e2e suites find the binaries under test through these variables;
# under `make check` RWKVCAST_SANITIZED stretches their time bounds (ASan is
# several times slower), as check-tsan already does.
run-tests: build-all build-tests
	@BUILD=$(BUILD) RWKVCASTD=$(abspath $(DAEMON)) RWKVCAST=$(abspath $(CLI)) \
	  $(if $(filter 1,$(SAN)),RWKVCAST_SANITIZED=1) \
	  $(if $(RWKVCAST_GOLDEN),RWKVCAST_GOLDEN=$(RWKVCAST_GOLDEN)) sh tests/run.sh

run-bench: $(BENCH_BIN)
	$(BUILD)/bench/rwkv_bench

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(DAEMON): $(BUILD)/daemon/rwkvcastd_main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Only `rwkvcast plot` draws (cairo): the daemon does not link it.
$(BUILD)/tools/cmd_plot.o: CPPFLAGS += $(shell pkg-config --cflags cairo fontconfig 2>/dev/null)
$(CLI): $(TOOL_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs cairo fontconfig 2>/dev/null)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_HELPERS:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Installs missing Debian packages as root (apt-get), else prints what is
# missing and fails; with DEPS_SOFT=1 (demo, test) it warns and succeeds.
deps:
	@DEB_PKGS="$(DEB_PKGS)" PC_MODULES="$(PKGS_REQUIRED) cairo fontconfig" sh tools/deps.sh $(if $(filter 1,$(DEPS_SOFT)),--soft)

clean:
	rm -rf build build-asan build-tsan build-cov build-fuzz

reallyclean: clean
	rm -rf tests/e2e/__pycache__ .pytest_cache

# Fuzz targets (libFuzzer via clang, with ASan + UBSan): every
# tests/fuzz/<name>_fuzz.c runs FUZZ_SECONDS on a scratch copy of its seed
# corpus tests/fuzz/corpus/<name>/, so new inputs never land in the tree.
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard tests/fuzz/*_fuzz.c)
fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang ARCHFLAGS= \
	  WARN="-std=c11 -Wall -Wextra" \
	  OPTFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
	  LDFLAGS="-fopenmp -fsanitize=fuzzer,address,undefined" fuzz-run

# A target that finds a crash, a leak or a timeout fails the run (its log
# and the crashing input are kept in the printed dir); .ci/run runs this.
fuzz-run: $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
	@set -e; for f in $^; do \
	  name=$$(basename $$f _fuzz); work=$$(mktemp -d); \
	  cp tests/fuzz/corpus/$$name/* $$work/ 2>/dev/null || true; \
	  echo ">>> $$f for $(FUZZ_SECONDS) s"; \
	  rc=0; $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=$$work/ $$work > $$work.log 2>&1 || rc=$$?; \
	  grep -E '^stat::number_of_executed_units|^Done|ERROR|SUMMARY' $$work.log | tail -n 4; \
	  if [ $$rc -ne 0 ]; then echo ">>> $$f FAILED (exit $$rc): see $$work.log and $$work/"; exit 1; fi; \
	  rm -rf $$work $$work.log; \
	done

# The CLI's file readers live in tools/, outside the library: their fuzz
# targets link those objects (before the library, for the static link).
$(BUILD)/fuzz/csvfile_fuzz: $(BUILD)/tools/series_csv.o $(BUILD)/tools/wide_csv.o $(BUILD)/tools/cli_util.o
$(BUILD)/fuzz/clicsv_fuzz: $(BUILD)/tools/cmd_send.o $(BUILD)/tools/cmd_replay.o $(BUILD)/tools/cli_util.o

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)

help:
	@echo "make demo          soft deps check, build, ~30 s live demo (DEMO_SECONDS, DEMO_SENSORS, ...)"
	@echo "make test          soft deps check, build, unit + gradient + e2e tests (the CI command)"
	@echo "make deps          check packages; as root on Debian install them (apt-get); fails if missing"
	@echo "make all           build the daemon, the rwkvcast command and the benchmarks (= build-all)"
	@echo "make build-tests   build the C test programs"
	@echo "make run-tests     build if needed and run every test (tests/run.sh)"
	@echo "make check         the tests under ASan + UBSan in build-asan/, with -Werror"
	@echo "make check-tsan    engine and daemon tests under ThreadSanitizer in build-tsan/"
	@echo "make bench         model speed (build/bench/rwkv_bench)"
	@echo "make run-bench     the same without building the daemon and the command"
	@echo "make bench-e2e     whole-daemon throughput, latency, checkpoint, restore (E2E_ARGS=--quick)"
	@echo "make bench-http    GET /metrics with 10,000 exported series: p50/p99/max, render time, loop stall"
	@echo "make torture       kill -9 under load TORTURE_ROUNDS (100) times, prints the tally"
	@echo "make bench-anomaly NAB-style anomaly scores: SKAB, a generated set, injected anomalies on real series"
	@echo "make bench-live    forecast accuracy on the live-metrics CSVs vs naive, seasonal naive, SES (../shared/data)"
	@echo "make model         retrain model/default.rwkv (../shared/data; 15-30 min)"
	@echo "make fuzz          libFuzzer targets (clang, ASan + UBSan), FUZZ_SECONDS each (fuzz-run: its inner step)"
	@echo "make install       install binaries, model, config, unit file, man pages (DESTDIR, PREFIX)"
	@echo "make uninstall     remove them again (keeps the config and the state)"
	@echo "make deb           Debian package in build/ (debhelper; lintian build/*.deb)"
	@echo "make deb-test      as root: lintian, install, run, purge the package (tests/deb_test.sh)"
	@echo "make clean         remove the build dirs (reallyclean: also Python caches)"
	@echo "Switches (config.mk): ARCHFLAGS= (portable), OPTFLAGS, WERROR=1 (on when CI=true), BUILD"

-include $(shell find $(BUILD) -name '*.d' -type f -not -path '$(BUILD)/deb/*' 2>/dev/null)

# The numeric kernels need -O3 for GCC to vectorize the elementwise loops, and
# -fno-trapping-math to let it turn their selects (max, the WKV running max,
# the exp clamps) into blends: without AVX-512 masks GCC keeps a possibly
# trapping compare behind a branch and leaves the loop scalar (2.3x slower
# batched step on AMD Zen 3). The kernels never rely on FP exception traps.
# -Wno-psabi: with ARCHFLAGS= (no AVX) the compilers note that passing 8-float
# vectors would change the ABI; these are static inline helpers that never
# cross a call boundary, so the note does not apply.
$(BUILD)/model/rwkv_step.o: CFLAGS += -O3 -fno-trapping-math -Wno-psabi
