# rollgate: one non-recursive Makefile.
#   make          build build/rollgate
#   make run      install deps, make dev certificates, serve with example objects
#   make test     unit + integration tests, then again under ASan+UBSan
#   make bench    load and micro benchmarks (see docs/benchmarks.md)
#   make fuzz     libFuzzer harnesses (clang)
#   make deps     install missing Debian packages

CC      ?= cc
PKGS    := libmicrohttpd gnutls openssl libcjson yaml-0.1 libcurl
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN    := -Wall -Wextra -Wstrict-prototypes -Wshadow -Wformat=2 -Wno-unused-parameter -Werror
HARDEN  := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Iinclude \
	-DROLLGATE_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now $(LDFLAGS)

SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

SRCS    := $(wildcard src/*.c)
LIBSRCS := $(filter-out src/main.c,$(SRCS))
TESTS   := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))

# Two build flavours share the rules below: build/ (release-ish) and build/asan/.
B ?= build

.PHONY: all run test check-tests bench fuzz deps certs clean image
all: $(B)/rollgate

$(B)/obj/%.o: src/%.c $(wildcard include/*.h) | $(B)/obj
	$(CC) $(ALL_CFLAGS) $(HARDEN) -c -o $@ $<

$(B)/librollgate.a: $(patsubst src/%.c,$(B)/obj/%.o,$(LIBSRCS))
	ar rcs $@ $^

$(B)/rollgate: $(B)/obj/main.o $(B)/librollgate.a
	$(CC) $(ALL_CFLAGS) $(HARDEN) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/%.c $(wildcard tests/*.h) $(B)/librollgate.a | $(B)/tests
	$(CC) $(ALL_CFLAGS) $(HARDEN) $(ALL_LDFLAGS) -Itests -o $@ $< $(B)/librollgate.a $(LDLIBS) -lcmocka

# These unit tests watch every allocation of the code they drive
# (tests/allocwrap.h).
WRAP_ALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free
$(B)/tests/test_array $(B)/tests/test_dynbuf $(B)/tests/test_htable: ALL_LDFLAGS += $(WRAP_ALLOC)

$(B)/obj $(B)/tests:
	mkdir -p $@

deps:
	@scripts/deps.sh

certs: deps
	@certs/make-dev-certs.sh certs/dev

run: deps all certs
	$(B)/rollgate serve --listen 127.0.0.1:8443 --metrics-listen 127.0.0.1:9090 \
		--tls-cert certs/dev/tls.crt --tls-key certs/dev/tls.key \
		--config examples/rollgate.yaml --objects examples/objects --log-format text

# The whole suite, then the whole suite again under ASan+UBSan.
test: deps
	$(MAKE) B=build check-tests
	$(MAKE) B=build/asan CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" check-tests

check-tests: $(B)/rollgate $(addprefix $(B)/tests/,$(TESTS))
	@scripts/run-tests.sh $(B)

bench: 
	@scripts/deps.sh bench
	@scripts/bench.sh

FUZZERS := $(patsubst fuzz/%.c,build/fuzz/%,$(wildcard fuzz/fuzz_*.c))
fuzz: deps $(FUZZERS)
	@for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p fuzz/seeds/$$n; echo "== $$n"; \
		$$f -max_total_time=$${FUZZ_SECONDS:-30} fuzz/corpus/$$n fuzz/seeds/$$n || exit 1; done

build/fuzz/%: fuzz/%.c $(LIBSRCS)
	@mkdir -p build/fuzz fuzz/corpus/$*
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
		-DROLLGATE_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS)) -o $@ $< $(LIBSRCS) $(LDLIBS)

image:
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then \
		docker build -t rollgate:$(VERSION) . ; \
	elif command -v podman >/dev/null; then podman build -t rollgate:$(VERSION) . ; \
	else echo "image: no container engine (docker or podman) is running" >&2; exit 1; fi

clean:
	rm -rf build
