# rollgate container image: `make image`, or `docker build -t rollgate .`
# Two stages on Debian 12, the distribution rollgate is built and tested on:
# the first compiles with the -dev packages of scripts/deps.sh, the second
# carries only the binary and the shared libraries it links.

FROM debian:12-slim AS build
# The build's share of scripts/deps.sh: the compiler and the libraries of the
# Makefile's PKGS (cmocka, clang and the rest are for tests and fuzzing).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      libmicrohttpd-dev libgnutls28-dev libssl-dev libcjson-dev libyaml-dev \
      libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile VERSION ./
COPY include/ include/
COPY src/ src/
# The Makefile's warnings (-Werror) and hardening flags stay; -O2 replaces
# its default "-O2 -g".
RUN make -j"$(nproc)" CFLAGS=-O2 build/rollgate

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libgnutls30 libssl3 libcjson1 libyaml-0-2 libcurl4 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 rollgate \
 && useradd --system --uid 65532 --gid 65532 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin rollgate
COPY --from=build /src/build/rollgate /usr/local/bin/rollgate
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# HTTPS webhook (/mutate, /validate) and plain-HTTP metrics and probes.
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/rollgate"]
CMD ["serve"]
