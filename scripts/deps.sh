#!/bin/sh
# Installs the Debian 12 packages rollgate needs to build, run and test.
# Only packages that are missing are installed; re-running is cheap.
# Usage: scripts/deps.sh [build|bench|image]
#   build  compile and run `make test` (the image tests skip without podman)
#   bench  also the load generators of `make bench`
#   image  also what `make image` uses: podman builds, mmdebstrap extracts
#          the Debian packages, skopeo and uidmap for pushing and inspecting
set -eu

pkgs="build-essential pkg-config clang libclang-rt-14-dev openssl curl
libmicrohttpd-dev libgnutls28-dev libssl-dev libcjson-dev libyaml-dev
libcurl4-openssl-dev libcmocka-dev sslscan prometheus python3 python3-yaml
python3-jsonschema clang-format"
# tests/test_matchconditions.sh evaluates CEL with an npm package; a node
# installed some other way (nvm, NodeSource) is left alone.
command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
case ${1:-build} in
build) ;;
bench) pkgs="$pkgs wrk nginx-light" ;;
image) pkgs="$pkgs podman mmdebstrap skopeo uidmap" ;;
*)
	echo "deps: unknown group \"$1\" (build, bench or image)" >&2
	exit 2
	;;
esac

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
