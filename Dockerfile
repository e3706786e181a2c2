# rollgate container image for builders with a registry at hand:
#   docker build --build-arg VERSION=$(cat VERSION) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t rollgate:$(cat VERSION) .
# `make image` builds the same image without any registry, reproducibly, from
# Debian packages (scripts/image.sh, docs/image.md). Both give the same
# layout: the binary, exactly the shared libraries it links, a CA bundle, the
# copyright files of their packages and passwd/group entries for 65532; no
# shell, no package manager (scripts/image-rootfs.sh assembles it).

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
COPY scripts/image-rootfs.sh scripts/
# The release build of `make image`: the Makefile's warnings (-Werror) and
# hardening flags, -O2 without -g. Then the Debian packages of the libraries
# it links, for the next stage to install.
RUN make -j"$(nproc)" B=build/release CFLAGS=-O2 build/release/rollgate \
 && sh scripts/image-rootfs.sh packages build/release/rollgate >build/packages

# Installs those packages, then keeps only the files the image needs.
FROM debian:12-slim AS rootfs
COPY --from=build /src/build/packages /src/scripts/image-rootfs.sh /src/build/release/rollgate /tmp/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(cat /tmp/packages) ca-certificates \
 && mkdir /rootfs \
 && sh /tmp/image-rootfs.sh assemble / /tmp/rollgate /rootfs

FROM scratch
COPY --from=rootfs /rootfs/ /
COPY --from=build /src/build/release/rollgate /usr/local/bin/rollgate

ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=NOASSERTION
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="rollgate" \
      org.opencontainers.image.description="Kubernetes admission webhook: config-hash stamping and rollout policy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}"
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# HTTPS webhook (/mutate, /validate) and plain-HTTP metrics and probes.
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/rollgate"]
CMD ["serve"]
