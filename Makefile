# rollgate: one non-recursive Makefile.
#   make          build build/rollgate
#   make run      install deps, make dev certificates, serve with example objects
#   make test     unit + integration tests, then again under ASan+UBSan
#   make bench    load and micro benchmarks (see docs/benchmarks.md)
#   make fuzz     libFuzzer harnesses (clang)
#   make deps     install missing Debian packages
#   make image    container image rollgate:VERSION and its archive (podman)

CC      ?= cc
PKGS    := libmicrohttpd gnutls openssl libcjson yaml-0.1 libcurl
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN    := -Wall -Wextra -Wstrict-prototypes -Wshadow -Wformat=2 -Wno-unused-parameter -Werror
HARDEN  := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS  ?= -O2 -g
# The layers, from the ground up (docs/architecture.md); a module may include
# headers of its own layer and the layers below it (scripts/check-layers.sh).
LAYERS  := base core engine kube server cli
INC     := $(addprefix -Iinclude/,$(LAYERS))
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(INC) \
	-DROLLGATE_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now $(LDFLAGS)

SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

SRCS    := $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c))
LIBSRCS := $(filter-out src/cli/main.c,$(SRCS))
TESTS   := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))

# Two build flavours share the rules below: build/ (release-ish) and build/asan/.
B ?= build

.PHONY: all run test check-tests check-layers check-style bench fuzz deps certs clean image
all: $(B)/rollgate

# Header dependencies are generated (-MMD): touching a header rebuilds what
# includes it, and only that.
DEPFLAGS = -MMD -MP -MF $@.d
$(B)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(HARDEN) $(DEPFLAGS) -c -o $@ $<

$(B)/librollgate.a: $(patsubst src/%.c,$(B)/obj/%.o,$(LIBSRCS))
	rm -f $@ && ar rcs $@ $^

$(B)/rollgate: $(B)/obj/cli/main.o $(B)/librollgate.a
	$(CC) $(ALL_CFLAGS) $(HARDEN) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# Each test links the shared helpers (tests/*.c other than test_*.c: the API
# double, testutil).
$(B)/tests/%: tests/%.c $(filter-out tests/test_%.c,$(wildcard tests/*.c)) $(B)/librollgate.a | $(B)/tests
	$(CC) $(ALL_CFLAGS) $(HARDEN) $(ALL_LDFLAGS) $(DEPFLAGS) -Itests -o $@ $< $(filter-out tests/test_%.c,$(wildcard tests/*.c)) $(B)/librollgate.a $(LDLIBS) -lcmocka

# These unit tests watch every allocation of the code they drive
# (tests/allocwrap.h).
WRAP_ALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free
$(B)/tests/test_array $(B)/tests/test_dynbuf $(B)/tests/test_htable: ALL_LDFLAGS += $(WRAP_ALLOC)

$(B)/tests:
	mkdir -p $@

-include $(wildcard $(B)/obj/*/*.d $(B)/tests/*.d)

deps:
	@scripts/deps.sh

certs: deps
	@certs/make-dev-certs.sh certs/dev

run: deps all certs
	$(B)/rollgate serve --listen 127.0.0.1:8443 --metrics-listen 127.0.0.1:9090 \
		--tls-cert certs/dev/tls.crt --tls-key certs/dev/tls.key \
		--config examples/rollgate.yaml --objects examples/objects --log-format text

# The layer rule first (scripts/check-layers.py), then the whole suite, then
# the whole suite again under ASan+UBSan.
test: deps check-layers
	$(MAKE) B=build check-tests
	$(MAKE) B=build/asan CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" check-tests

check-tests: $(B)/rollgate $(addprefix $(B)/tests/,$(TESTS))
	@scripts/run-tests.sh $(B)

check-layers:
	@python3 scripts/check-layers.py

# Banned functions (scripts/banned-functions.txt) and the clang-format
# layout of the files scripts/style-formatted.txt names (all after
# scripts/format.sh).
check-style: deps
	@scripts/check-style.sh

bench:
	@scripts/deps.sh bench
	@scripts/bench.sh

# Fuzzing (libFuzzer, clang). Every harness links one instrumented copy of
# the library (build/fuzz/obj/*.o in build/fuzz/librollgate.a), compiled with
# the main build's warnings. Seeds and dictionaries live in the tree
# (fuzz/seeds/<harness>/, fuzz/<harness>.dict); what a run finds goes to
# build/fuzz/corpus/<harness>/, crashes to build/fuzz/artifacts/. Any finding
# fails the target.
FUZZ_SECONDS ?= 30
FUZZ_B      := build/fuzz
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -g -O1 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all $(INC) \
	-DROLLGATE_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZERS     := $(patsubst fuzz/%.c,$(FUZZ_B)/%,$(wildcard fuzz/fuzz_*.c))

fuzz: deps $(FUZZERS)
	@mkdir -p $(FUZZ_B)/artifacts; passed=0; \
	for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p $(FUZZ_B)/corpus/$$n; \
		echo "== $$n: $(FUZZ_SECONDS) s"; \
		if ! $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
			-dict=fuzz/$$n.dict -artifact_prefix=$(FUZZ_B)/artifacts/$$n- \
			$(FUZZ_B)/corpus/$$n fuzz/seeds/$$n >$(FUZZ_B)/$$n.log 2>&1; then \
			tail -n 60 $(FUZZ_B)/$$n.log; \
			echo "$$n failed: log $(FUZZ_B)/$$n.log, failing input in $(FUZZ_B)/artifacts/"; \
			echo "fuzz: $$passed passed, 1 failed"; exit 1; fi; \
		sed -n 's/^stat::number_of_executed_units: */   executions: /p' $(FUZZ_B)/$$n.log; \
		passed=$$((passed + 1)); done; \
	echo "fuzz: $$passed passed, 0 failed"

$(FUZZ_B)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(DEPFLAGS) -c -o $@ $<

$(FUZZ_B)/librollgate.a: $(patsubst src/%.c,$(FUZZ_B)/obj/%.o,$(LIBSRCS))
	rm -f $@ && ar rcs $@ $^

$(FUZZ_B)/%: fuzz/%.c $(FUZZ_B)/librollgate.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_B)/librollgate.a $(LDLIBS)

-include $(wildcard $(FUZZ_B)/obj/*/*.d)

# The container image from Debian packages alone, no registry (docs/image.md):
# local image rollgate:$(VERSION) and build/rollgate-$(VERSION).oci.tar. The
# binary is a release build (-O2, no -g) in its own flavour directory.
image:
	@scripts/deps.sh image
	$(MAKE) B=build/release CFLAGS=-O2 build/release/rollgate
	@scripts/image.sh build/release/rollgate

clean:
	rm -rf build
