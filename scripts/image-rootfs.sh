#!/bin/sh
# The runtime file system of the rollgate image, shared by `make image`
# (scripts/image.sh, from an mmdebstrap extract) and the Dockerfile (from a
# debian:12-slim stage), so both images have the same layout. POSIX sh and
# coreutils only: it also runs inside debian:12-slim.
#
#   image-rootfs.sh packages BIN
#       The Debian packages holding the shared libraries BIN links on this
#       machine (ldd + dpkg -S), one a line, sorted: what the image installs.
#   image-rootfs.sh assemble SRCROOT BIN OUT
#       Fills the empty directory OUT from the Debian tree SRCROOT ("/" for
#       the running system): exactly the shared libraries BIN needs, as
#       resolved by SRCROOT's own dynamic loader; the CA bundle built from
#       SRCROOT's ca-certificates; the copyright file of every package a file
#       comes from; passwd/group entries for uid/gid 65532 (rollgate) and an
#       nsswitch.conf. No shell, no package manager. BIN itself is not
#       copied: it is the image's last layer (/usr/local/bin/rollgate).
#       Package ownership is read from SRCROOT/var/lib/dpkg/info/*.list.
set -eu

die() {
	echo "image-rootfs: $*" >&2
	exit 1
}

# The program interpreter named in BIN's ELF header (PT_INTERP), e.g.
# /lib64/ld-linux-x86-64.so.2, read without binutils.
interp_of() {
	head -c 4096 "$1" | tr -c '[:print:]' '\n' | grep -m1 '^/.*/ld-[^/]*\.so\.[0-9]*$' ||
		die "$1: no ELF program interpreter found"
}

cmd_packages() {
	bin=$1
	[ -x "$bin" ] || die "$bin: not an executable"
	libs=$(ldd "$bin") || die "$bin: ldd failed"
	libs=$(echo "$libs" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
	pkgs=""
	for lib in $libs; do
		# dpkg knows a file by the path its package ships, which a merged
		# /usr may hide behind /lib or /usr/lib.
		real=$(readlink -f "$lib")
		pkg=""
		for p in "$lib" "$real" "/usr$lib" "${lib#/usr}" "/usr$real" "${real#/usr}"; do
			if out=$(dpkg-query -S "$p" 2>/dev/null); then
				pkg=$(echo "$out" | sed -n '1{s/: .*//; s/,.*//; s/:.*//; p}')
				break
			fi
		done
		[ -n "$pkg" ] || die "$lib: no installed package ships it"
		pkgs="$pkgs $pkg"
	done
	printf '%s\n' $pkgs | LC_ALL=C sort -u
}

# owner SRCROOT PATH...: the package whose file list holds one of PATHs.
owner() {
	root=$1
	shift
	for p in "$@"; do
		l=$(grep -l -x -F -e "$p" "$root"/var/lib/dpkg/info/*.list 2>/dev/null | head -n 1) || true
		if [ -n "$l" ]; then
			l=${l##*/}
			l=${l%.list}
			echo "${l%%:*}"
			return 0
		fi
	done
	return 1
}

# copyright SRCROOT OUT PKG: the package's copyright file, once.
copyright() {
	d=usr/share/doc/$3
	[ -f "$2/$d/copyright" ] && return 0
	[ -f "$1/$d/copyright" ] || die "$1/$d/copyright: missing"
	mkdir -p "$2/$d"
	cp "$1/$d/copyright" "$2/$d/copyright"
}

cmd_assemble() {
	src=${1%/}
	bin=$2
	out=$3
	[ -d "$src/usr/lib" ] || die "$src: not a Debian file system tree"
	[ -x "$bin" ] || die "$bin: not an executable"
	[ -d "$out" ] && [ -z "$(ls -A "$out")" ] || die "$out: not an empty directory"
	interp=$(interp_of "$bin")
	ldname=${interp##*/}
	set -- "$src"/lib/*-linux-*/"$ldname"
	[ -f "$1" ] || die "$src: no $ldname under lib/<multiarch>/"
	[ $# -eq 1 ] || die "$src: $ldname found in more than one multiarch directory"
	libdir=${1%/*}
	triplet=${libdir##*/}
	# The tree's own loader resolves BIN's libraries inside the tree only.
	"$libdir/$ldname" --library-path "$src/lib/$triplet:$src/usr/lib/$triplet" --list "$bin" \
		>"$out/.libs" || die "$bin: the loader of $src cannot resolve its libraries"
	(
		umask 022
		mkdir -p "$out/usr/lib/$triplet" "$out/etc/ssl/certs" "$out/usr/local/bin"
		# Debian 12's merged /usr: /lib and /lib64 point into /usr.
		ln -s usr/lib "$out/lib"
		# The interpreter at its PT_INTERP path, as in Debian.
		case $interp in
		/lib/"$triplet"/*) ;;
		/lib64/*)
			ln -s usr/lib64 "$out/lib64"
			mkdir -p "$out/usr/lib64"
			ln -s "../lib/$triplet/$ldname" "$out/usr/lib64/$ldname"
			;;
		*) die "$interp: unexpected program interpreter path" ;;
		esac
		while read -r name arrow path _; do
			[ "$arrow" = "=>" ] || continue
			case $path in
			"$src"/*) ;;
			*) die "$name resolves to $path, outside $src" ;;
			esac
			# One regular file per soname, as the loader looks it up
			# (the interpreter is listed by its PT_INTERP path).
			name=${name##*/}
			cp -L "$path" "$out/usr/lib/$triplet/$name"
			pkg=$(owner "$src" "/lib/$triplet/$name" "/usr/lib/$triplet/$name") ||
				die "$name: no package in $src ships it"
			copyright "$src" "$out" "$pkg"
		done <"$out/.libs"
		rm "$out/.libs"
		[ -f "$out/usr/lib/$triplet/$ldname" ] || die "the loader did not list $interp"
		chmod 0755 "$out/usr/lib/$triplet/$ldname"

		# The bundle update-ca-certificates builds from the Mozilla set.
		set -- "$src"/usr/share/ca-certificates/mozilla/*.crt
		[ -f "$1" ] || die "$src: no ca-certificates (usr/share/ca-certificates/mozilla)"
		for c in $(printf '%s\n' "$@" | LC_ALL=C sort); do
			cat "$c"
		done >"$out/etc/ssl/certs/ca-certificates.crt"
		copyright "$src" "$out" ca-certificates

		printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
			'rollgate:x:65532:65532:rollgate:/nonexistent:/usr/sbin/nologin' >"$out/etc/passwd"
		printf '%s\n' 'root:x:0:' 'rollgate:x:65532:' >"$out/etc/group"
		printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$out/etc/nsswitch.conf"
	)
	# Modes do not depend on the caller's umask or the source tree.
	find "$out" -type d -exec chmod 0755 {} +
	find "$out" -type f ! -name "$ldname" -exec chmod 0644 {} +
}

case ${1:-} in
packages)
	[ $# -eq 2 ] || die "usage: image-rootfs.sh packages BIN"
	cmd_packages "$2"
	;;
assemble)
	[ $# -eq 4 ] || die "usage: image-rootfs.sh assemble SRCROOT BIN OUT"
	cmd_assemble "$2" "$3" "$4"
	;;
*)
	die "usage: image-rootfs.sh packages BIN | assemble SRCROOT BIN OUT"
	;;
esac
