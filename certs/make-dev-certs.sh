#!/bin/sh
# Makes a development CA and a serving certificate for rollgate with the
# openssl CLI. Output (git-ignored): DIR/ca.crt, DIR/ca.key, DIR/tls.crt,
# DIR/tls.key. Existing files are kept unless they expire within a day or
# --force is given.
#
# Usage: certs/make-dev-certs.sh [DIR] [--force]
# SANs: localhost, 127.0.0.1, rollgate.rollgate.svc, rollgate.rollgate.svc.cluster.local
set -eu

dir=${1:-certs/dev}
force=${2:-}
days=${ROLLGATE_CERT_DAYS:-365}

if [ -z "$force" ] && [ -f "$dir/tls.crt" ] && [ -f "$dir/tls.key" ] && [ -f "$dir/ca.crt" ] &&
	openssl x509 -in "$dir/tls.crt" -noout -checkend 86400 >/dev/null 2>&1; then
	exit 0
fi

mkdir -p "$dir"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key" 2>/dev/null
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days "$days" \
	-subj "/CN=rollgate development CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$tmp/ca.crt" 2>/dev/null

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/tls.key" 2>/dev/null
openssl req -new -key "$tmp/tls.key" -subj "/CN=rollgate.rollgate.svc" -out "$tmp/tls.csr" 2>/dev/null
cat >"$tmp/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:rollgate.rollgate.svc,DNS:rollgate.rollgate.svc.cluster.local
EXT
openssl x509 -req -in "$tmp/tls.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
	-sha256 -days "$days" -extfile "$tmp/ext.cnf" -out "$tmp/tls.crt" 2>/dev/null

chmod 644 "$tmp/ca.crt" "$tmp/tls.crt"
chmod 600 "$tmp/ca.key" "$tmp/tls.key"
for f in ca.key ca.crt tls.key tls.crt; do
	mv "$tmp/$f" "$dir/$f"
done
echo "certs: wrote $dir/ca.crt, $dir/tls.crt, $dir/tls.key" >&2
