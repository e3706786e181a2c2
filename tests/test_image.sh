#!/bin/sh
# Tests the container image (docs/image.md):
#  1. `make image` builds it; a second build from a fresh compile gives the
#     same config and layer digests (and the same archive, byte for byte);
#  2. it is at most 40 MB uncompressed; `podman image inspect` shows user
#     65532:65532, the OCI labels, entrypoint rollgate and command serve;
#  3. its file system holds exactly the shared libraries the binary links, a
#     CA bundle and passwd/group entries for 65532, and no shell or package
#     manager;
#  4. the archive loads back with podman, reads with skopeo, and its Docker
#     manifest.json names the same blobs (what `docker load` reads);
#  5. smoke test: the image's file system, exported, runs its entrypoint as
#     65532:65532 under chroot and serves /healthz, /validate and /mutate
#     over TLS (podman run cannot start containers in every sandbox: crun's
#     setrlimit may be refused);
#  6. where debian:12-slim is at hand, the Dockerfile builds the same file
#     list.
# Needs root, podman, mmdebstrap and skopeo (`scripts/deps.sh image`, which
# `make image` runs); skipped with a message without them. Slow (two image
# builds), so it runs in the release pass of `make test` only.
# Env: ROLLGATE_BIN, ROLLGATE_ROOT.
set -u

BIN=${ROLLGATE_BIN:?set ROLLGATE_BIN to the rollgate binary}
ROOT=${ROLLGATE_ROOT:?set ROLLGATE_ROOT to the repository root}
cd "$ROOT" || exit 1
. tests/shtest.shlib

skip() {
	echo "test_image: SKIP: $*"
	exit 0
}
case $BIN in
*/asan/*) skip "the image holds the release build; its tests run in the release pass of make test" ;;
esac
command -v podman >/dev/null 2>&1 ||
	skip "podman not installed (scripts/deps.sh image installs podman, mmdebstrap and skopeo)"
for t in mmdebstrap skopeo python3 curl openssl chroot git; do
	command -v $t >/dev/null 2>&1 || skip "$t not installed (scripts/deps.sh image)"
done
[ "$(id -u)" -eq 0 ] || skip "not root (mmdebstrap --mode=root, podman's root storage and chroot need it)"

version=$(cat VERSION)
name=rollgate-test
tag=localhost/$name:$version
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rollgate-image.XXXXXX") || exit 1
cleanup() {
	srv_stop >/dev/null 2>&1
	[ -n "${cid:-}" ] && podman rm -f "$cid" >/dev/null 2>&1
	podman rmi "$tag" "docker.io/library/$name:$version" >/dev/null 2>&1
	podman rmi "localhost/rollgate-dockerfile-test:$version" >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# describe ARCHIVE KEY: one field of image-archive.py describe --json.
describe() {
	python3 scripts/image-archive.py describe "$1" --json |
		python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; print(v if isinstance(v, (str, int)) else json.dumps(v))' "$2"
}

# ---- 1. two builds, one result ----

echo "-- building the image twice (make image, then a fresh compile); this takes minutes"
if IMAGE_NAME=$name IMAGE_ARCHIVE=$TMP/one.oci.tar IMAGE_WORKDIR=$TMP/work1 \
	make -s image >"$TMP/build1.log" 2>&1; then
	ok "make image: $tag and its archive"
else
	bad "make image failed: $(tail -n 30 "$TMP/build1.log")"
	exit 1
fi
if make -s B="$TMP/release" CFLAGS=-O2 "$TMP/release/rollgate" >"$TMP/build2.log" 2>&1 &&
	IMAGE_NAME=$name IMAGE_ARCHIVE=$TMP/two.oci.tar IMAGE_WORKDIR=$TMP/work2 \
		scripts/image.sh "$TMP/release/rollgate" >>"$TMP/build2.log" 2>&1; then
	ok "second build from a fresh compile in $TMP/release"
else
	bad "second build failed: $(tail -n 30 "$TMP/build2.log")"
	exit 1
fi
for k in config diff_ids manifest; do
	a=$(describe "$TMP/one.oci.tar" $k)
	b=$(describe "$TMP/two.oci.tar" $k)
	if [ "$a" = "$b" ]; then
		ok "reproducible $k: $a"
	else
		bad "the two builds differ in $k: $a vs $b"
	fi
done
if cmp -s "$TMP/one.oci.tar" "$TMP/two.oci.tar"; then
	ok "the two archives are identical, byte for byte"
else
	bad "the two archives differ"
fi

# ---- 2. size, user, labels, entrypoint ----

size=$(describe "$TMP/one.oci.tar" size)
if [ "$size" -le 40000000 ]; then
	ok "size: $size bytes uncompressed (the budget is 40 MB)"
else
	bad "size: $size bytes uncompressed, over the 40 MB budget"
fi
revision=$(git rev-parse HEAD)
if podman image inspect "$tag" >"$TMP/inspect.json" 2>"$TMP/err" &&
	python3 - "$TMP/inspect.json" "$version" "$revision" "$(describe "$TMP/one.oci.tar" config)" <<'EOF'; then
import json, sys
img = json.load(open(sys.argv[1]))[0]
cfg, version, revision, config_digest = img["Config"], sys.argv[2], sys.argv[3], sys.argv[4]
labels = cfg.get("Labels") or {}
want = {
    "User": (cfg.get("User"), "65532:65532"),
    "Entrypoint": (cfg.get("Entrypoint"), ["/usr/local/bin/rollgate"]),
    "Cmd": (cfg.get("Cmd"), ["serve"]),
    "image ID": ("sha256:" + img["Id"], config_digest),
    "title": (labels.get("org.opencontainers.image.title"), "rollgate"),
    "version": (labels.get("org.opencontainers.image.version"), version),
    "revision": (labels.get("org.opencontainers.image.revision", "").replace("-dirty", ""), revision),
    "ports": (sorted(cfg.get("ExposedPorts") or {}), ["8443/tcp", "9090/tcp"]),
}
errors = ["%s is %r, expected %r" % (k, got, exp) for k, (got, exp) in want.items() if got != exp]
for k in ("source", "licenses"):
    if not labels.get("org.opencontainers.image." + k):
        errors.append("no org.opencontainers.image.%s label" % k)
for e in errors:
    print("FAIL podman image inspect: " + e)
sys.exit(1 if errors else 0)
EOF
	ok "podman image inspect: user 65532:65532, entrypoint /usr/local/bin/rollgate serve, OCI labels"
else
	bad "podman image inspect $tag $(cat "$TMP/err")"
fi

# ---- 3. the file system ----

python3 scripts/image-archive.py files "$TMP/one.oci.tar" >"$TMP/files" || bad "cannot list the image's files"
ldd build/release/rollgate | awk '$2 == "=>" { print $1 } $1 ~ /^\// { n = split($1, p, "/"); print p[n] }' |
	sort >"$TMP/libs.want"
sed -n 's,^[fl] [0-7]* [0-9:]* /usr/lib/[^/]*-linux-gnu/\([^/ ]*\).*,\1,p' "$TMP/files" | sort >"$TMP/libs.got"
if cmp -s "$TMP/libs.want" "$TMP/libs.got"; then
	ok "exactly the $(wc -l <"$TMP/libs.got") shared libraries ldd lists for the binary"
else
	bad "libraries differ from ldd's (< ldd, > image): $(diff "$TMP/libs.want" "$TMP/libs.got" | grep '^[<>]' | tr '\n' ' ')"
fi
if grep -Eq ' /(usr/)?s?bin/(sh|bash|dash|busybox|dpkg|apt|apt-get)( |$)|/var/lib/dpkg' "$TMP/files"; then
	bad "a shell or package manager is in the image: $(grep -E '/(s?bin)/(sh|bash|dash|busybox|dpkg|apt)|/var/lib/dpkg' "$TMP/files" | tr '\n' ' ')"
else
	ok "no shell, no dpkg or apt in the image"
fi
if grep -Ev '^[dfl] [0-7]+ 0:0 ' "$TMP/files" | grep -q . || grep -Eq '^[fd] [4-7][0-7]{3} ' "$TMP/files"; then
	bad "files not owned by root or with setuid/setgid bits: $(grep -Ev '^[dfl] 0[0-7]{3} 0:0 ' "$TMP/files" | tr '\n' ' ')"
else
	ok "every file is owned by root, none setuid or setgid"
fi
for f in /usr/local/bin/rollgate /etc/ssl/certs/ca-certificates.crt /etc/passwd /etc/group; do
	grep -q "^f [0-7]* 0:0 $f\$" "$TMP/files" || bad "$f is not a regular file of the image"
done

# ---- 4. the archive: podman load, skopeo, docker load's manifest.json ----

# podman load reads manifest.json when there is one, as docker does: the
# image is named as Docker names rollgate:VERSION (docker.io/library/...), and
# the short name finds it in both.
image_id=$(describe "$TMP/one.oci.tar" config)
podman rmi "$tag" >/dev/null 2>&1
if podman load -q -i "$TMP/one.oci.tar" >"$TMP/load.out" 2>&1 &&
	grep -qx "Loaded image: docker.io/library/$name:$version" "$TMP/load.out" &&
	[ "sha256:$(podman image inspect --format '{{.Id}}' "$name:$version" 2>/dev/null)" = "$image_id" ]; then
	ok "podman load: $(cat "$TMP/load.out"), the built image's ID, found as $name:$version"
else
	bad "podman load of the archive: $(cat "$TMP/load.out")"
fi
if skopeo inspect "oci-archive:$TMP/one.oci.tar" >"$TMP/skopeo.json" 2>"$TMP/err" &&
	python3 - "$TMP/skopeo.json" "$(describe "$TMP/one.oci.tar" diff_ids)" <<'EOF'; then
import json, sys
s = json.load(open(sys.argv[1]))
assert s["Layers"] == json.loads(sys.argv[2]), "layers %s" % s["Layers"]
assert s["Labels"]["org.opencontainers.image.title"] == "rollgate", "labels"
EOF
	ok "skopeo inspect oci-archive: the same layers and labels"
else
	bad "skopeo inspect oci-archive: $(cat "$TMP/err")"
fi
if python3 - "$TMP/one.oci.tar" "$name:$version" <<'EOF'; then
import hashlib, json, sys, tarfile
# What docker load reads without the containerd image store (manifest.json),
# and what it checks: each layer's digest is the config's diff_id.
t = tarfile.open(sys.argv[1])
m = json.load(t.extractfile("manifest.json"))
assert len(m) == 1 and m[0]["RepoTags"] == [sys.argv[2]], "RepoTags %s" % m
cfg = json.load(t.extractfile(m[0]["Config"]))
got = ["sha256:" + hashlib.sha256(t.extractfile(l).read()).hexdigest() for l in m[0]["Layers"]]
assert got == cfg["rootfs"]["diff_ids"], "layers %s vs diff_ids %s" % (got, cfg["rootfs"]["diff_ids"])
idx = json.load(t.extractfile("index.json"))
ann = idx["manifests"][0]["annotations"]
assert ann["io.containerd.image.name"] == "docker.io/library/" + sys.argv[2], ann
EOF
	ok "docker load's manifest.json: tag $name:$version, layers matching the config's diff_ids"
else
	bad "the archive's Docker manifest.json is not what docker load reads"
fi

# ---- 5. smoke test: the image's own file system, as 65532 ----

fs=$TMP/fs
mkdir "$fs"
if cid=$(podman create "${image_id#sha256:}" 2>"$TMP/err") && podman export "$cid" | tar -C "$fs" -xf -; then
	podman rm "$cid" >/dev/null 2>&1
	cid=""
	ok "podman create + export: the image's file system in $fs"
else
	bad "cannot export the image: $(cat "$TMP/err")"
	exit 1
fi
entrypoint=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["Config"]["Entrypoint"][0])' "$TMP/inspect.json")
if chroot "$fs" /bin/sh -c true 2>/dev/null; then
	bad "/bin/sh runs in the image"
else
	ok "/bin/sh is absent"
fi
# What the Deployment mounts: the TLS Secret, the config, here object files.
certs/make-dev-certs.sh "$TMP/certs" >/dev/null 2>&1 || bad "certs/make-dev-certs.sh failed"
mkdir -p "$fs/etc/rollgate/tls" "$fs/etc/rollgate/config" "$fs/etc/rollgate/objects"
cp "$TMP/certs/tls.crt" "$TMP/certs/tls.key" "$fs/etc/rollgate/tls/"
chown 65532:65532 "$fs/etc/rollgate/tls/tls.key"
chmod 0400 "$fs/etc/rollgate/tls/tls.key"
cp examples/rollgate.yaml "$fs/etc/rollgate/config/"
cp examples/objects/* "$fs/etc/rollgate/objects/"
if srv_start "$TMP/serve.log" chroot --userspec=65532:65532 "$fs" "$entrypoint" serve \
	--tls-cert /etc/rollgate/tls/tls.crt --tls-key /etc/rollgate/tls/tls.key \
	--config /etc/rollgate/config/rollgate.yaml --objects /etc/rollgate/objects; then
	ok "the entrypoint serves under chroot (port $SRV_PORT)"
else
	bad "the entrypoint did not start under chroot: $(cat "$TMP/serve.log")"
	exit 1
fi
if grep -q '^Uid:[[:space:]]*65532[[:space:]]' "/proc/$SRV_PID/status"; then
	ok "the server runs as uid 65532"
else
	bad "the server does not run as uid 65532: $(grep '^Uid' "/proc/$SRV_PID/status")"
fi
https() { # PATH [FILE]: GET, or POST FILE; body to $TMP/resp, status printed
	if [ $# -eq 2 ]; then
		curl -s -o "$TMP/resp" -w '%{http_code}' --max-time 20 --cacert "$TMP/certs/ca.crt" \
			-H 'Content-Type: application/json' --data-binary "@$2" "https://127.0.0.1:$SRV_PORT$1"
	else
		curl -s -o "$TMP/resp" -w '%{http_code}' --max-time 20 --cacert "$TMP/certs/ca.crt" \
			"https://127.0.0.1:$SRV_PORT$1"
	fi
}
st=$(https /healthz)
[ "$st" = 200 ] && ok "GET /healthz over TLS: 200" || bad "GET /healthz: status $st"
st=$(https /validate examples/review-replicaset-edit.json)
if [ "$st" = 200 ] && python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["response"]
assert r["allowed"] is False and "replicaset-direct-edit" in r["status"]["message"], r' "$TMP/resp"; then
	ok "POST /validate: the ReplicaSet hand edit is denied (replicaset-direct-edit)"
else
	bad "POST /validate: status $st, $(head -c 2000 "$TMP/resp")"
fi
st=$(https /mutate examples/review-deployment.json)
cp "$TMP/resp" "$TMP/mutate.json"
# The same review through the image's binary, outside the image.
build/release/rollgate review --mutate --config examples/rollgate.yaml --objects examples/objects \
	examples/review-deployment.json >"$TMP/review.json" 2>"$TMP/err"
if [ "$st" = 200 ] && python3 -c '
import base64, json, sys
got = json.load(open(sys.argv[1]))["response"]
want = json.load(open(sys.argv[2]))["response"]
patch = json.loads(base64.b64decode(got["patch"]))
assert got["allowed"] and got["patchType"] == "JSONPatch", got
assert any(str(op.get("value", "")).startswith("sha256:") or "sha256:" in json.dumps(op) for op in patch), patch
assert got["patch"] == want["patch"], "the image and rollgate review disagree"' "$TMP/mutate.json" "$TMP/review.json"; then
	ok "POST /mutate: stamped with a config hash, the patch rollgate review gives"
else
	bad "POST /mutate: status $st, $(head -c 2000 "$TMP/mutate.json") $(cat "$TMP/err")"
fi
srv_stop || bad "the server exited with status $? on SIGTERM"
if grep -q '"level":"error"' "$TMP/serve.log"; then
	bad "errors in the server log: $(grep '"level":"error"' "$TMP/serve.log")"
fi

# ---- 6. the Dockerfile builds the same layout ----

base=docker.io/library/debian:12-slim
if ! podman image exists "$base"; then
	echo "test_image: SKIP Dockerfile comparison: its base image $base is not in podman's" \
		"local storage, and this test does not pull it (the Dockerfile needs a registry;" \
		"run 'podman pull $base' where one is reachable, then make test again)"
else
	echo "-- building the Dockerfile with podman (FROM $base)"
	if podman build -q --isolation chroot --pull=never --layers=false --build-arg VERSION="$version" \
		-t "localhost/rollgate-dockerfile-test:$version" . >"$TMP/docker-build.log" 2>&1 &&
		podman save --uncompressed --format oci-archive -o "$TMP/docker.saved.tar" \
			"localhost/rollgate-dockerfile-test:$version" >/dev/null 2>&1 &&
		python3 scripts/image-archive.py files "$TMP/docker.saved.tar" >"$TMP/docker.files"; then
		if diff "$TMP/files" "$TMP/docker.files" >"$TMP/files.diff"; then
			ok "the Dockerfile gives the same file list ($(wc -l <"$TMP/files") entries)"
		else
			bad "file lists differ (< make image, > Dockerfile): $(grep '^[<>]' "$TMP/files.diff" | tr '\n' ' ')"
		fi
		podman image inspect "localhost/rollgate-dockerfile-test:$version" >"$TMP/docker-inspect.json"
		if python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))[0]["Config"]
b = json.load(open(sys.argv[2]))[0]["Config"]
for k in ("User", "Entrypoint", "Cmd", "ExposedPorts"):
    assert a.get(k) == b.get(k), (k, a.get(k), b.get(k))
assert set(a["Labels"]) <= set(b.get("Labels") or {}), "labels"' "$TMP/inspect.json" "$TMP/docker-inspect.json"; then
			ok "the Dockerfile gives the same user, entrypoint, command, ports and label names"
		else
			bad "the Dockerfile's image config differs from make image's"
		fi
	else
		bad "podman build of the Dockerfile failed: $(tail -n 30 "$TMP/docker-build.log")"
	fi
fi

[ $fail -eq 0 ] && echo "test_image: all checks passed"
exit $fail
