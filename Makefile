# phaul: live migration of Linux processes and containers, built on CRIU.
#
#   make            build build/phaul
#   make demo       install what is missing, build, show a live migration
#   make check      install what is missing, build, run every test
#   make asan-e2e   end-to-end tests with phaul under ASan+UBSan
#   make bench      benchmarks (prints a table, writes docs/BENCHMARKS.md)
#   make apps       real applications in every mode (writes docs/APPS.md)
#   make compat     CRIU's zdtm tests moved by CRIU alone and by phaul in
#                   each mode (writes docs/COMPAT.md)
#   make install    install to $(DESTDIR)$(PREFIX), the systemd unit to $(UNITDIR),
#                   the man page phaul(1) to $(MANDIR)/man1
#                   (a release build, FAULTS=0: no fault injection)

PREFIX ?= /usr/local
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR ?= $(PREFIX)/share/man
BUILD ?= build
CC ?= cc
SAN ?=
CRIU_RPC_PROTO ?= $(firstword $(wildcard /usr/local/include/criu/rpc.proto /usr/include/criu/rpc.proto))

PKGS := gnutls libprotobuf-c json-c libxxhash libzstd
WARN := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wformat=2 -Wvla
OPT ?= -O2 -g
# CFLAGS / LDFLAGS from the command line are added, never replace these.
XCFLAGS := $(OPT) -std=gnu11 $(WARN) -D_GNU_SOURCE -fno-strict-aliasing \
	  $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
	  -I src -I $(BUILD)/gen
XLDFLAGS :=
ifneq ($(SAN),)
XCFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
XLDFLAGS += -fsanitize=$(SAN)
endif
ifneq ($(WERROR),)
XCFLAGS += -Werror
endif
ifneq ($(FAULTS),0)
XCFLAGS += -DPHAUL_FAULT_INJECTION
endif
XCFLAGS += $(CFLAGS)
XLDFLAGS += $(LDFLAGS)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

GEN_C := $(BUILD)/gen/phaul.pb-c.c $(BUILD)/gen/criu-rpc.pb-c.c $(BUILD)/gen/criu-image.pb-c.c
GEN_H := $(GEN_C:.c=.h)
LIB_SRC := $(wildcard src/common/*.c src/proto/*.c src/criu/*.c src/engine/*.c src/source/*.c src/target/*.c src/pages/*.c \
	    src/drivers/*.c src/drivers/htype/*.c src/drivers/fs/*.c src/track/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(GEN_C:.c=.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
WORKLOAD_SRC := $(wildcard tests/workloads/*.c)
WORKLOAD_BIN := $(WORKLOAD_SRC:tests/workloads/%.c=$(BUILD)/workloads/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

all: $(BUILD)/phaul $(BUILD)/phaul.1

$(BUILD)/gen/phaul.pb-c.c: src/proto/phaul.proto
	@mkdir -p $(@D)
	protoc-c --proto_path=src/proto --c_out=$(@D) $<

$(BUILD)/gen/criu-image.pb-c.c: src/criu/criu-image.proto
	@mkdir -p $(@D)
	protoc-c --proto_path=src/criu --c_out=$(@D) $<

$(BUILD)/gen/criu-rpc.proto: $(CRIU_RPC_PROTO)
	@test -n "$<" || { echo "CRIU's rpc.proto not found: run scripts/setup" >&2; exit 1; }
	@mkdir -p $(@D)
	cp $< $@

$(BUILD)/gen/criu-rpc.pb-c.c: $(BUILD)/gen/criu-rpc.proto
	protoc-c --proto_path=$(@D) --c_out=$(@D) $<

$(GEN_H): %.h: %.c

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(filter-out $(WARN),$(XCFLAGS)) -w -c -o $@ $<

$(BUILD)/%.o: %.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libphaul.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/phaul: $(CLI_OBJ) $(BUILD)/libphaul.a
	$(CC) $(XLDFLAGS) -o $@ $^ $(LDLIBS)

# phaul(1) is made from the binary's --help texts (one source for both).
$(BUILD)/phaul.1: $(BUILD)/phaul scripts/manpage
	bash scripts/manpage $< >$@.tmp && mv $@.tmp $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libphaul.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -o $@ $^ $(XLDFLAGS) $(LDLIBS) -lcmocka

# phaul report's model and page live in src/cli, outside libphaul.a: its
# unit test and fuzz target link them (they need libc, libm, json-c only).
REPORT_OBJ := src/cli/report_model.o src/cli/report_html.o
$(BUILD)/tests/test_report: tests/unit/test_report.c $(REPORT_OBJ:%=$(BUILD)/%)
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -o $@ $^ $(XLDFLAGS) $(LDLIBS) -lcmocka

# test clients built on phaul's own code (a hostile source: 70-policy.bats)
$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libphaul.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -o $@ $^ $(XLDFLAGS) $(LDLIBS)

$(BUILD)/workloads/%: tests/workloads/%.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -D_GNU_SOURCE -o $@ $< $(shell pkg-config --cflags --libs libxxhash) -lpthread

# Drivers without the engine: test_driver_* link the objects of drivers/
# and of what drivers may use (common/, proto/, criu/), nothing of engine/,
# source/, target/ or pages/; a driver reaching into those fails the link.
DRV_SRC := $(wildcard src/common/*.c src/proto/*.c src/criu/*.c src/drivers/*.c \
	    src/drivers/htype/*.c src/drivers/fs/*.c)
DRV_OBJ := $(DRV_SRC:%.c=$(BUILD)/%.o) $(GEN_C:.c=.o)

$(BUILD)/tests/test_driver_%: tests/unit/test_driver_%.c $(DRV_OBJ)
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -o $@ $^ $(XLDFLAGS) $(LDLIBS) -lcmocka

# libFuzzer targets: clang, ASan+UBSan, the library built alongside.
FUZZ_BUILD := $(BUILD)/fuzz
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_SECONDS ?= 60

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD)/lib CC=clang SAN=address,undefined \
		OPT="-O1 -g" CFLAGS="-fsanitize=fuzzer-no-link" $(FUZZ_BUILD)/lib/libphaul.a \
		$(REPORT_OBJ:%=$(FUZZ_BUILD)/lib/%)
	$(MAKE) $(FUZZ_BIN)

$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_BUILD)/lib/libphaul.a
	@mkdir -p $(@D)
	clang -O1 -g -std=gnu11 -D_GNU_SOURCE -I src -I $(FUZZ_BUILD)/lib/gen \
		$(shell pkg-config --cflags $(PKGS)) \
		-fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

$(FUZZ_BUILD)/fuzz_report: $(REPORT_OBJ:%=$(FUZZ_BUILD)/lib/%)

fuzz: fuzz-build
	@bash tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_BIN)

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan-unit:
	$(MAKE) BUILD=$(BUILD)/asan SAN=address,undefined OPT="-O1 -g" units
	@bash tests/run-unit $(UNIT_SRC:tests/unit/%.c=$(BUILD)/asan/tests/%)

# End-to-end migrations with phaul under ASan (leaks included) + UBSan
# (clang: gcc 12's UBSan ignores log_path, and its reports must not mix
# with the stderr lines the tests check):
# stop and live, the fault matrix (every fault point in every mode),
# post-copy (its reconnection and relay), a forked tree's shared pages
# (15-cow, 12 s), stop mode streaming its memory (16-stopstream, 20 s
# under ASan), the daemon's concurrency and
# shutdown, the policy against a hostile source, the events and the
# control socket's threads (status, cancel). Any sanitizer report
# fails. Measured here (2 cores, shared): 30-faults 7.2 min, 60-postcopy
# 4 min, 70-policy under 1 min, 61-events under 1 min on top of the four
# files before.
ASAN_E2E_FILES ?= tests/e2e/10-stop.bats tests/e2e/11-live-fixtures.bats \
	tests/e2e/15-cow.bats tests/e2e/16-stopstream.bats \
	tests/e2e/20-live.bats tests/e2e/30-faults.bats tests/e2e/60-ops.bats \
	tests/e2e/60-postcopy.bats tests/e2e/61-events.bats tests/e2e/70-policy.bats
asan-e2e: workloads
	$(MAKE) BUILD=$(BUILD)/asan-e2e CC=clang SAN=address,undefined OPT="-O1 -g" \
		$(BUILD)/asan-e2e/phaul
	bash tests/e2e/asan-run $(BUILD)/asan-e2e/phaul $(ASAN_E2E_FILES)

setup:
	@bash scripts/setup

units: $(UNIT_BIN)
workloads: $(WORKLOAD_BIN) $(TOOL_BIN)

unit: units
	@bash tests/run-unit $(UNIT_BIN)

e2e: all workloads
	bats --timing tests/e2e

check: setup
	$(MAKE) all units workloads
	$(MAKE) unit
	$(MAKE) asan-unit
	$(MAKE) e2e
	$(MAKE) asan-e2e

demo: setup
	$(MAKE) all workloads
	bash scripts/demo

bench: setup
	$(MAKE) all workloads
	bash scripts/bench

# Installed (and packaged) binaries never honour PHAUL_FAULT: a release
# build of their own, FAULTS=0, apart from the test build in $(BUILD).
RELEASE_BUILD ?= $(BUILD)/release
release:
	$(MAKE) BUILD=$(RELEASE_BUILD) FAULTS=0 $(RELEASE_BUILD)/phaul $(RELEASE_BUILD)/phaul.1

# The unit tests against a FAULTS=0 build too (CI): fault points compiled out.
release-unit:
	$(MAKE) BUILD=$(RELEASE_BUILD) FAULTS=0 units
	@bash tests/run-unit $(UNIT_SRC:tests/unit/%.c=$(RELEASE_BUILD)/tests/%)

# tests/e2e/70-apps.bats in live, stop, lazy and hybrid modes (APPS_MODES=)
apps: all workloads
	bash scripts/apps

compat: setup
	$(MAKE) all workloads
	bash tests/compat/all

install: release
	install -D -m 755 $(RELEASE_BUILD)/phaul $(DESTDIR)$(PREFIX)/bin/phaul
	@mkdir -p $(DESTDIR)$(UNITDIR)
	sed 's|@BINDIR@|$(PREFIX)/bin|g' contrib/systemd/phaul.service \
		>$(DESTDIR)$(UNITDIR)/phaul.service
	chmod 644 $(DESTDIR)$(UNITDIR)/phaul.service
	install -D -m 644 $(RELEASE_BUILD)/phaul.1 $(DESTDIR)$(MANDIR)/man1/phaul.1

clean:
	rm -rf $(BUILD)

# clang-format on every C file (CI runs it)
check-format:
	@bash scripts/check-format

.PHONY: all setup units workloads unit e2e check demo bench apps compat install release \
	release-unit clean fuzz fuzz-build check-format \
	asan-unit asan-e2e
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
