#!/bin/sh
# Builds the rollgate container image from Debian 12 packages alone, with no
# registry (docs/image.md): `make image` runs it after building the release
# binary.
#
#  1. mmdebstrap extracts the Debian packages of the libraries BIN links
#     (scripts/image-rootfs.sh packages) and ca-certificates, from the
#     Debian 12 suites of this machine's own apt sources;
#  2. scripts/image-rootfs.sh assemble keeps exactly the files the image
#     needs, and they are packed into a normalised tar;
#  3. podman builds scripts/image.Containerfile from it (local image
#     rollgate:VERSION) and saves an archive that podman load, docker load
#     and skopeo (oci-archive:) all read.
#
# Reproducible: SOURCE_DATE_EPOCH (default: the last commit's time) fixes
# every timestamp, so two builds of one commit give the same digests.
#
# Usage: scripts/image.sh BIN
# Env:   IMAGE_NAME (default rollgate), IMAGE_ARCHIVE (default
#        build/rollgate-VERSION.oci.tar), IMAGE_WORKDIR (default build/image),
#        IMAGE_SOURCE (default: the origin remote's URL), IMAGE_LICENSES
#        (SPDX expression; default NOASSERTION), SOURCE_DATE_EPOCH.
set -eu

die() {
	echo "image: $*" >&2
	exit 1
}

bin=${1:-}
[ -x "$bin" ] || die "usage: scripts/image.sh BIN (an executable rollgate binary)"
cd "$(dirname "$0")/.."
for t in podman mmdebstrap python3 tar; do
	command -v $t >/dev/null 2>&1 || die "$t not found; scripts/deps.sh image installs what the image build needs"
done
[ "$(id -u)" -eq 0 ] || die "run as root: mmdebstrap --mode=root and podman's root storage"

version=$(cat VERSION)
name=${IMAGE_NAME:-rollgate}
archive=${IMAGE_ARCHIVE:-build/rollgate-$version.oci.tar}
work=${IMAGE_WORKDIR:-build/image}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) ||
		die "not a git checkout: set SOURCE_DATE_EPOCH"
fi
export SOURCE_DATE_EPOCH
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# A tree with uncommitted changes to what the image is built from is not
# that revision.
if [ "$revision" != unknown ] &&
	[ -n "$(git status --porcelain -- src include Makefile VERSION scripts/image* 2>/dev/null)" ]; then
	revision="$revision-dirty"
fi
source_url=${IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || true)}
case $source_url in
*://* | git@*) ;;
*) source_url=NOASSERTION ;;
esac
licenses=${IMAGE_LICENSES:-NOASSERTION}

rm -rf "$work"
mkdir -p "$work/context" "$(dirname "$archive")"
work=$(cd "$work" && pwd)

# The Debian 12 entries of the machine's apt sources, as one-line entries.
python3 - /etc/apt/sources.list /etc/apt/sources.list.d >"$work/sources.list" <<'EOF'
import glob, os, re, sys
SUITE = re.compile(r"bookworm(-[a-z]+)?$")
def line(opts, uri, suite, comps):
    if SUITE.match(suite):
        print("deb%s %s %s %s" % (" [%s]" % " ".join(opts) if opts else "", uri, suite, comps))
def one_line(text):
    for raw in text.splitlines():
        m = re.match(r"\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)", raw)
        if m:
            opts = m.group(1).strip()[1:-1].split() if m.group(1) else []
            line(opts, m.group(2), m.group(3), m.group(4).split("#")[0].strip() or "main")
def deb822(text):
    for para in re.split(r"\n[ \t]*\n", text):
        f, key = {}, None
        for raw in para.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and key:
                f[key] += " " + raw.strip()
                continue
            key, _, val = raw.partition(":")
            key = key.strip().lower()
            f[key] = val.strip()
        if f.get("enabled", "yes").lower() == "no" or "deb" not in f.get("types", "").split():
            continue
        opts = ["signed-by=" + f["signed-by"]] if "signed-by" in f and "\n" not in f["signed-by"] else []
        for uri in f.get("uris", "").split():
            for suite in f.get("suites", "").split():
                line(opts, uri, suite, f.get("components", "main"))
main, d = sys.argv[1], sys.argv[2]
if os.path.isfile(main):
    one_line(open(main).read())
for p in sorted(glob.glob(os.path.join(d, "*.list"))):
    one_line(open(p).read())
for p in sorted(glob.glob(os.path.join(d, "*.sources"))):
    deb822(open(p).read())
EOF
[ -s "$work/sources.list" ] || die "no Debian 12 (bookworm) entry in /etc/apt/sources.list{,.d/*}"

pkgs=$(scripts/image-rootfs.sh packages "$bin")
pkgs=$(printf '%s\n' $pkgs ca-certificates | LC_ALL=C sort -u | paste -s -d, -)
echo "image: extracting $pkgs" >&2
# The extract variant runs no maintainer script and leaves no dpkg database:
# the hook records each package's file list where dpkg would, so that
# image-rootfs.sh can name the package (and copyright) of every file.
# shellcheck disable=SC2016 # $1 and $d belong to the hook
mmdebstrap --quiet --mode=root --variant=extract --include="$pkgs" \
	--extract-hook='for d in "$1"/var/cache/apt/archives/*.deb; do
		p=$(dpkg-deb -f "$d" Package) &&
		dpkg-deb --fsys-tarfile "$d" | tar -tf - | sed -n "s,^\./\(.\),/\1,p" |
			sed "s,/$,," >"$1/var/lib/dpkg/info/$p.list" || exit 1
	done' \
	--format=directory bookworm "$work/debian" "$work/sources.list" ||
	die "mmdebstrap failed (see above)"

mkdir "$work/rootfs"
scripts/image-rootfs.sh assemble "$work/debian" "$bin" "$work/rootfs"
rm -rf "$work/debian"
# A normalised tar: sorted names, one owner, one time, no atime/ctime.
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
	--format=pax --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	-C "$work/rootfs" -cf "$work/context/rootfs.tar" .
install -m 0755 "$bin" "$work/context/rollgate"

old=$(podman image inspect --format '{{.Id}}' "$name:$version" 2>/dev/null || true)
# --layers=false: one layer (the timestamps change with every commit, so a
# separate base layer would never be shared anyway); --timestamp: every file
# and the config carry SOURCE_DATE_EPOCH.
podman build --quiet --isolation chroot --pull=never --layers=false --no-cache \
	--timestamp "$SOURCE_DATE_EPOCH" --identity-label=false \
	--build-arg VERSION="$version" --build-arg REVISION="$revision" \
	--build-arg SOURCE="$source_url" --build-arg LICENSES="$licenses" \
	-f scripts/image.Containerfile -t "$name:$version" "$work/context" >"$work/id" ||
	die "podman build failed"
id=$(cat "$work/id")
if [ -n "$old" ] && [ "${id#sha256:}" != "${old#sha256:}" ] &&
	[ -z "$(podman image inspect --format '{{.RepoTags}}' "$old" 2>/dev/null | tr -d '[]')" ]; then
	podman rmi "$old" >/dev/null 2>&1 || true
fi

rm -f "$work/saved.tar"
podman save -q --uncompressed --format oci-archive -o "$work/saved.tar" "$name:$version" || die "podman save failed"
python3 scripts/image-archive.py pack "$work/saved.tar" "$archive" "$name:$version" ||
	die "cannot write $archive"
rm -f "$work/saved.tar"

python3 scripts/image-archive.py describe "$archive"
echo "image: built $name:$version ($revision, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH) and $archive" >&2
