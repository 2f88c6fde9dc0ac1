# mulefarm - one plain GNU Makefile. `make help` lists the targets.

BUILD    ?= build
CC       ?= gcc
PYTHON   ?= /usr/bin/python3
PKGS     := python3-embed libpq yaml-0.1 uuid

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Wno-unused-parameter
ifneq ($(CI),)
WERROR   ?= 1
endif
ifeq ($(WERROR),1)
WARN     += -Werror
endif
OPT      ?= -O2 -g
SAN      ?=
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Position-independent, symbols hidden: the same objects link the binaries
# and the wheel's extension module (which then exports only PyInit__server).
PIC      := -fPIC -fvisibility=hidden
CFLAGS   += -std=c11 -D_GNU_SOURCE -pthread $(OPT) $(WARN) $(SAN) $(PIC) -Iinclude $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -pthread -lm

SERVER_SRC := $(sort $(wildcard server/*.c server/config/*.c))
CORE_SRC   := $(filter-out server/main.c,$(SERVER_SRC))
CORE_OBJ   := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC   := $(sort $(wildcard tests/unit/*/*.c tests/unit/*/*/*.c))
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
# dbqueue/: the PostgreSQL queue library; sql/NNN_*.sql is compiled into it.
DBQ_SRC    := $(sort $(wildcard dbqueue/*.c))
DBQ_SQL    := $(sort $(wildcard sql/[0-9]*.sql))
DBQ_OBJ    := $(DBQ_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/dbqueue_sql.o
DBQ_LIB    := $(BUILD)/libmulefarm-dbqueue.a

.PHONY: FORCE pyext wheel wheel-test systemd-check docker-check all run test unit integration fuzz fuzz-replay check format format-check help deps clean bench docs docs-check

all: $(BUILD)/mulefarm $(BUILD)/mulefarm-handler $(DBQ_LIB) ## build build/mulefarm, build/mulefarm-handler and the dbqueue library

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

deps: ## install (root) or name the Debian packages for build and test
	@scripts/deps.sh test

# Objects are rebuilt when the compile flags change (kept in a stamp).
$(BUILD)/cflags: FORCE
	@mkdir -p $(dir $@) && echo '$(CFLAGS)' | cmp -s - $@ || echo '$(CFLAGS)' > $@
FORCE:

$(BUILD)/obj/%.o: %.c $(wildcard include/mulefarm/*.h) $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libmfcore.a: $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(DBQ_OBJ): dbqueue/internal.h
$(BUILD)/gen/dbqueue_sql.c: dbqueue/embed_sql.sh $(DBQ_SQL)
	@mkdir -p $(dir $@)
	dbqueue/embed_sql.sh $(DBQ_SQL) > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/gen/dbqueue_sql.o: $(BUILD)/gen/dbqueue_sql.c $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Idbqueue -c $< -o $@
$(DBQ_LIB): $(DBQ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/mulefarm: $(BUILD)/obj/server/main.o $(BUILD)/libmfcore.a $(DBQ_LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# The webless handler: the same server objects, its own main.
$(BUILD)/mulefarm-handler: $(BUILD)/obj/handlers/main.o $(BUILD)/libmfcore.a $(DBQ_LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# The wheel (issue 10): the same objects linked into the extension module
# mulefarm._server, not with libpython (the interpreter that imports it has
# those symbols; python3-embed's compile flags are python3's). The two mains
# are compiled again without main() (main.h). setup.py runs `make pyext`.
PYEXT      := $(BUILD)/pyext/_server.so
PYEXT_MAIN := $(BUILD)/pyext/server_main.o $(BUILD)/pyext/handlers_main.o
PYEXT_LIBS  = $(shell pkg-config --libs libpq yaml-0.1 uuid 2>/dev/null) -pthread -lm
$(BUILD)/pyext/server_main.o: server/main.c $(wildcard include/mulefarm/*.h) $(BUILD)/cflags
$(BUILD)/pyext/handlers_main.o: handlers/main.c $(wildcard include/mulefarm/*.h) $(BUILD)/cflags
$(PYEXT_MAIN):
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DMULEFARM_NO_MAIN -c $< -o $@
$(PYEXT): $(BUILD)/obj/python/_server.o $(PYEXT_MAIN) $(CORE_OBJ) $(DBQ_OBJ)
	$(CC) $(CFLAGS) -shared -Wl,--strip-debug -o $@ $^ $(LDFLAGS) $(PYEXT_LIBS)
pyext: $(PYEXT) ## build the wheel's extension module (setup.py runs this)

wheel: $(PYEXT) ## build the Python wheel (pip install it: mulefarm, mulefarm-handler) into build/wheel/
	@rm -rf $(BUILD)/wheel
	MULEFARM_BUILD=$(BUILD) $(PYTHON) -m pip wheel --no-build-isolation --no-deps --no-index \
		--disable-pip-version-check -q -w $(BUILD)/wheel .

# A fresh venv gets the wheel; the smoke tests run against its scripts.
wheel-test: wheel ## install the wheel into a fresh venv, run the smoke tests against its scripts
	@scripts/wheel-test.sh $(BUILD) $(PYTHON)

# systemd-analyze verify on the handler's unit (with the binary where the
# unit expects it: a copy in a scratch root). Skipped, saying so, only when
# systemd-analyze is not installed.
systemd-check: $(BUILD)/mulefarm-handler ## systemd-analyze verify handlers/systemd/*.service
	@scripts/systemd-check.sh $(BUILD)/mulefarm-handler handlers/systemd/mulefarm-handler@.service

# docker/ cannot be built here (no Docker engine): check the compose file
# with docker-compose itself and lint the Dockerfile (scripts/dockerlint.py:
# RUN steps through sh -n and shellcheck, apt packages, COPY sources, the
# runtime libraries of both binaries, a non-root USER).
docker-check: $(BUILD)/mulefarm $(BUILD)/mulefarm-handler ## validate docker/ without a Docker engine
	@docker-compose -f docker/docker-compose.yml config -q && echo "docker-compose config: docker/docker-compose.yml ok"
	@$(PYTHON) scripts/dockerlint.py --binary $(BUILD)/mulefarm --binary $(BUILD)/mulefarm-handler docker/Dockerfile

run: ## start the demo: examples/hello, 2 workers x 2 threads on 127.0.0.1:8080
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory all
	@echo "mulefarm demo: curl http://127.0.0.1:8080/  (Ctrl-C stops it)"
	$(BUILD)/mulefarm --master --http-socket 127.0.0.1:8080 --processes 2 --threads 2 \
		--chdir examples/hello --wsgi-file app.py

# A unit test may #include the .c it tests (to reach static helpers); the
# archive then supplies only what it does not define itself.
$(BUILD)/unit/%: tests/unit/%.c $(BUILD)/libmfcore.a $(DBQ_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iserver -o $@ $< $(BUILD)/libmfcore.a $(DBQ_LIB) $(LDFLAGS) $(LDLIBS) -lcmocka

unit: $(UNIT_BIN) ## run the cmocka unit tests
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# The multi-host cluster in network namespaces (issue 8): needs root.
.PHONY: cluster
cluster: all ## run tests/cluster/cluster.sh (network namespaces; root), else say SKIPPED loudly
	@if [ "$$(id -u)" -eq 0 ] && ip netns add mf-probe-$$$$ 2>/dev/null && ip netns del mf-probe-$$$$; then \
		tests/cluster/cluster.sh; \
	else \
		echo "*** SKIPPED: cannot create network namespaces (need root) -- tests/cluster not run ***"; \
	fi

integration: all $(BUILD)/bench/httplat ## run the pytest integration suite against $(BUILD)/mulefarm
	MULEFARM_BIN=$(abspath $(BUILD)/mulefarm) MULEFARM_HANDLER_BIN=$(abspath $(BUILD)/mulefarm-handler) \
		HTTPLAT_BIN=$(abspath $(BUILD)/bench/httplat) \
		$(PYTHON) -m pytest -q tests/integration

# libFuzzer targets (ASan+UBSan), one per pure parser. `make test` replays
# the seed corpora; `make fuzz FUZZ_SECONDS=N` fuzzes each target for N
# seconds (CI: 60), new inputs going to $(BUILD)/corpus/, crashes to
# $(BUILD)/fuzz-artifacts/ (make each one a unit-test regression).
FUZZ_SECONDS ?= 60
FUZZ_LINK := $(wildcard server/http.c server/uwsgi_proto.c server/static_resolve.c server/config/spec.c)
FUZZ_LIBS := $(shell pkg-config --libs yaml-0.1 2>/dev/null)
# The loader's target links the rest of the config code (the reader
# targets #include the file they test instead).
FUZZ_LOAD := $(filter-out server/config/config.c server/config/spec.c,$(wildcard server/config/*.c))
$(BUILD)/fuzz/fuzz_config_load: FUZZ_EXTRA = $(FUZZ_LOAD)
$(BUILD)/fuzz/fuzz_config_load: $(FUZZ_LOAD)
$(BUILD)/fuzz/fuzz_jsonval: FUZZ_EXTRA = server/jsonval.c
$(BUILD)/fuzz/fuzz_jsonval: server/jsonval.c
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LINK) $(wildcard include/mulefarm/*.h)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -o $@ $< $(FUZZ_LINK) $(FUZZ_EXTRA) $(FUZZ_LIBS)

fuzz-replay: $(FUZZ_BIN) ## replay every fuzz target's seed corpus (part of make test)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); \
		$$f -runs=0 tests/fuzz/corpus/$$n >/dev/null 2>&1 || { $$f -runs=0 tests/fuzz/corpus/$$n; exit 1; }; \
		echo "$$n: corpus replay ok"; done

fuzz: $(FUZZ_BIN) ## fuzz every target for FUZZ_SECONDS (default 60) each, under ASan+UBSan
	@set -e; mkdir -p $(BUILD)/fuzz-artifacts; for f in $(FUZZ_BIN); do n=$$(basename $$f); \
		mkdir -p $(BUILD)/corpus/$$n; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/fuzz-artifacts/$$n- $(BUILD)/corpus/$$n tests/fuzz/corpus/$$n \
			> $(BUILD)/fuzz/$$n.log 2>&1 || { tail -40 $(BUILD)/fuzz/$$n.log; exit 1; }; \
		echo "$$n: $$(grep -h 'stat::number_of_executed_units' $(BUILD)/fuzz/$$n.log | awk '{print $$2}') runs in $(FUZZ_SECONDS) s, no crash"; done

docs: $(BUILD)/mulefarm ## regenerate docs/options.md from the options table
	$(BUILD)/mulefarm --options-md > docs/options.md

docs-check: $(BUILD)/mulefarm ## fail if docs/options.md is stale
	@$(BUILD)/mulefarm --options-md | diff -u docs/options.md - \
		|| { echo "docs/options.md is stale: run 'make docs'"; exit 1; }

test: ## unit, integration, fuzz-corpus, wheel smoke and cluster tests (installs test packages as root)
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory docs-check
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory systemd-check
	@$(MAKE) --no-print-directory docker-check
	@$(MAKE) --no-print-directory fuzz-replay
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory wheel-test
	@$(MAKE) --no-print-directory cluster

check: ## the unit and integration suites under ASan+UBSan (build-asan/)
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		unit integration

# The dbqueue load driver (tests/bench/dbqueue.sh), built for `bench` only.
$(BUILD)/bench/dbqueue_bench: tests/bench/dbqueue_bench.c $(DBQ_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(DBQ_LIB) $(LDFLAGS) $(LDLIBS)

# The open-loop HTTP latency client of tests/bench/http.sh (its own
# integration test checks what it counts).
$(BUILD)/bench/httplat: tests/bench/httplat.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<

bench: all $(BUILD)/bench/dbqueue_bench $(BUILD)/bench/httplat ## side-by-side benchmarks against uWSGI, gunicorn, nginx, pgbench (BENCH=http,uwsgi,static,reload,restart,farm,dbqueue)
	@scripts/deps.sh bench
	@set -e; for b in $(subst $(comma), ,$(BENCH)); do tests/bench/$$b.sh; done

comma := ,
BENCH ?= http,uwsgi,static,reload,restart,farm,dbqueue

FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format: ## reformat the C sources with clang-format
	clang-format -i $(FORMAT_SRC)

format-check: ## fail if any C source is not clang-formatted
	@clang-format --dry-run --Werror $(FORMAT_SRC)

clean: ## remove build outputs
	rm -rf build build-asan
