#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build-initramfs.sh O: builds the base test initramfs (busybox, bash for
# run_vmtests.sh, the upstream KSM selftests and the mm selftests that
# `make test` runs on merged memory, built static and unmodified from the
# kernel source, the project's own selftests) against the UAPI
# headers of build tree O, and prints its path. Rebuilt only when an input
# changed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

O=$1
KSRC=$("$KSM_RS_TOP/scripts/ksm-rs/prepare-tree.sh")
SELF=$KSRC/tools/testing/selftests
OUT=$CACHE/initramfs
mkdir -p "$OUT"
# One build at a time: concurrent `make vm`s share $OUT/root.
exec 7>"$OUT/.lock"
flock 7

# Debian packages installed into the guest as they are, for the parity
# tests that run a distribution's KSM tooling unchanged: ksmtuned (the Red
# Hat script, with ksmctl and /etc/ksmtuned.conf), procps (the pgrep and ps
# it calls) and procps' library package. Downloaded once into $CACHE/dl as
# fetch-kernel.sh does, so that later builds are offline.
guest_debs() {
	local d=$CACHE/dl
	ls "$d"/ksmtuned_*.deb 2>/dev/null | sort -V | tail -1
	ls "$d"/procps_*.deb 2>/dev/null | sort -V | tail -1
	# The library package named in procps' Depends (libproc2-0 on bookworm).
	local lib
	lib=$(dpkg-deb -f "$(ls "$d"/procps_*.deb 2>/dev/null | sort -V | tail -1)" Depends 2>/dev/null |
		grep -o 'libproc[^ ,]*' | head -1 || true)
	[ -n "$lib" ] && ls "$d/${lib}"_*.deb 2>/dev/null | sort -V | tail -1
	return 0
}
fetch_guest_debs() {
	local lib
	[ "$(guest_debs | wc -l)" -ge 3 ] && return 0
	[ "$(id -u)" = 0 ] || die "ksmtuned/procps .debs not cached in $CACHE/dl; run once as root"
	mkdir -p "$CACHE/dl"
	step "downloading the guest's Debian packages: ksmtuned procps"
	# A fresh machine may have no package lists yet.
	(cd "$CACHE/dl" && apt-get download -q -o APT::Sandbox::User=root ksmtuned procps >&2) ||
		{ apt-get update -qq >&2 &&
			(cd "$CACHE/dl" && apt-get download -q -o APT::Sandbox::User=root ksmtuned procps >&2); } ||
		die "apt-get download ksmtuned procps failed"
	lib=$(dpkg-deb -f "$(ls "$CACHE"/dl/procps_*.deb | sort -V | tail -1)" Depends | grep -o 'libproc[^ ,]*' | head -1)
	[ -n "$lib" ] || die "no libproc* package in procps' Depends"
	(cd "$CACHE/dl" && apt-get download -q -o APT::Sandbox::User=root "$lib" >&2) ||
		die "apt-get download $lib failed"
}
fetch_guest_debs
mapfile -t debs < <(guest_debs)

# Inputs: the selftest sources, the project's guest files, the host tools,
# the guest's Debian packages.
stamp=$( (cat "$SELF"/mm/*.c "$SELF"/mm/*.h "$SELF"/mm/run_vmtests.sh "$SELF"/kselftest*.h \
	"$KSM_RS_TOP"/scripts/ksm-rs/guest/* "$0"; ls -l /bin/busybox /bin/bash "${debs[@]}") 2>/dev/null |
	sha1sum | cut -c1-16)
if [ -f "$OUT/base.cpio.gz" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "$OUT/base.cpio.gz"
	exit 0
fi

step "building the test initramfs (upstream KSM and mm selftests from $(basename "$KSRC"), busybox, bash)"
root=$OUT/root
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,root,ksm-rs,usr/bin,usr/sbin,lib,lib64,mnt/files}
mkdir -p "$root"/selftests/mm

cp /bin/busybox "$root/bin/busybox"
for app in $("$root/bin/busybox" --list); do
	[ -e "$root/bin/$app" ] || ln -s busybox "$root/bin/$app"
done
# run_vmtests.sh is a bash script; bash comes with its shared libraries.
rm -f "$root/bin/bash"
copy_with_libs() {
	local bin=$1 dest=$2 lib
	cp "$bin" "$root/$dest"
	for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
		mkdir -p "$root/$(dirname "$lib")"
		cp -L "$lib" "$root/$lib"
	done
}
copy_with_libs /bin/bash bin/bash

# Position independent, as upstream's Makefile builds them with a
# distribution's compiler: the kernel puts a static non-PIE binary at 4 MiB
# and its heap anywhere in the GiB above it, where a test's fixed hint
# address can lie (khugepaged's BASE_ADDR, 1 GiB: the heap was there for 7
# processes in 3000). A static PIE's heap is by ELF_ET_DYN_BASE instead.
CFLAGS=(-static-pie -Wall -O2 -U_FORTIFY_SOURCE -I"$KSRC" -I"$SELF" -isystem "$O/usr/include"
	-I"$KSRC/tools/include")
cc_test() {
	local out=$1; shift
	# (static libnuma warns about getaddrinfo; only show output on failure)
	gcc "${CFLAGS[@]}" -o "$root/selftests/mm/$out" "$@" -lrt -lpthread -lm >"$OUT/cc-$out.log" 2>&1 ||
		{ cat "$OUT/cc-$out.log" >&2; die "could not build selftest $out"; }
	grep -v -e getaddrinfo -e 'in function .affinity_ip' "$OUT/cc-$out.log" >&2 || true
}
(
	cd "$SELF/mm"
	# In parallel: a dozen static links take a while one after the other.
	pids=()
	cc_test ksm_tests ksm_tests.c vm_util.c hugepage_settings.c -lnuma & pids+=($!)
	cc_test ksm_functional_tests ksm_functional_tests.c vm_util.c hugepage_settings.c & pids+=($!)
	# Upstream mm selftests whose memory goes through the paths KSM pages
	# go through: rmap (migrate.ksm) and merge (ksm_merge) on their own,
	# and, with migration, khugepaged and uffd-unit-tests, again with all
	# their memory mergeable (ksm-rs-selftests' merge-everything pass).
	# Sources and libraries as in the upstream Makefile.
	cc_test rmap rmap.c vm_util.c hugepage_settings.c -lnuma & pids+=($!)
	cc_test merge merge.c vm_util.c hugepage_settings.c & pids+=($!)
	cc_test migration migration.c vm_util.c hugepage_settings.c -lnuma & pids+=($!)
	cc_test khugepaged khugepaged.c vm_util.c hugepage_settings.c & pids+=($!)
	cc_test uffd-unit-tests uffd-unit-tests.c uffd-common.c vm_util.c hugepage_settings.c & pids+=($!)
	# Project selftests (tools/testing/selftests/mm/ksm_rs_*.c), same rules.
	for t in ksm_rs_*.c; do
		[ -e "$t" ] || continue
		cc_test "${t%.c}" "$t" vm_util.c hugepage_settings.c & pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || exit 1
	done
)
cp "$SELF"/mm/run_vmtests.sh "$SELF"/mm/ksft_ksm.sh "$SELF"/mm/ksft_ksm_numa.sh "$root/selftests/mm/"
for t in "$SELF"/mm/ksm_rs_*.sh; do [ -e "$t" ] && cp "$t" "$root/selftests/mm/"; done
cp "$KSM_RS_TOP"/scripts/ksm-rs/guest/init "$root/init"
cp "$KSM_RS_TOP"/scripts/ksm-rs/guest/ksm-rs-* "$root/bin/"
gcc -static -Wall -O2 -o "$root/bin/ksm-rs-workload" "$KSM_RS_TOP/scripts/ksm-rs/guest/workload.c" ||
	die "could not build the run workload"
gcc -static -Wall -O2 -o "$root/bin/ksm-rs-bench-tool" "$KSM_RS_TOP/scripts/ksm-rs/guest/bench.c" ||
	die "could not build the bench tool"
# Runs a command with PR_SET_MEMORY_MERGE=1 (the merge-everything pass).
gcc -static -Wall -O2 -o "$root/bin/ksm-rs-merge-all" "$KSM_RS_TOP/scripts/ksm-rs/guest/merge-all.c" ||
	die "could not build ksm-rs-merge-all"
# A process ksmtuned takes for a QEMU guest (ksm-rs-parity-ksmtuned).
gcc -static -Wall -O2 -o "$root/bin/ksm-rs-fake-qemu" "$KSM_RS_TOP/scripts/ksm-rs/guest/fake-qemu.c" ||
	die "could not build ksm-rs-fake-qemu"
# The Debian packages, unpacked as they are. procps' programs take the place
# of busybox's applets of the same names (busybox's pgrep has no -d, its ps
# no -p), as on a Debian system; the shared libraries they need beyond their
# own packages' come from the host, as bash's do.
for deb in "${debs[@]}"; do
	for f in $(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }'); do
		for dir in bin sbin usr/bin usr/sbin; do
			if [ -L "$root/$dir/${f##*/}" ]; then rm -f "$root/$dir/${f##*/}"; fi
		done
	done
	dpkg-deb -x "$deb" "$root"
done
for bin in "$root"/usr/sbin/ksmctl "$root"/bin/ps "$root"/usr/bin/pgrep "$root"/usr/bin/pkill "$root"/usr/bin/free; do
	[ -e "$bin" ] || die "$(basename "$bin") missing from the guest packages (${debs[*]##*/})"
	for lib in $(LD_LIBRARY_PATH="$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu" ldd "$bin" |
		awk '/not found/ { print "MISSING:" $1 } { for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'); do
		case $lib in
		MISSING:*) die "$(basename "$bin") needs ${lib#MISSING:}, which the host does not have" ;;
		"$root"/*) ;;
		*) [ -e "$root/$lib" ] || { mkdir -p "$root/$(dirname "$lib")"; cp -L "$lib" "$root/$lib"; } ;;
		esac
	done
done
# ksmtuned's PIDFILE is /var/run/ksmtune.pid: without the directory it
# does not start.
mkdir -p "$root"/run "$root"/var/log
ln -sfn ../run "$root"/var/run
gcc -static -Wall -O2 -o "$root/bin/ksm-rs-outputs-tool" "$KSM_RS_TOP/scripts/ksm-rs/guest/parity-outputs.c" ||
	die "could not build ksm-rs-outputs-tool"
chmod +x "$root/init" "$root"/bin/* "$root"/selftests/mm/*
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
echo "nobody:x:65534:65534:nobody:/:/bin/false" >>"$root/etc/passwd"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 >"$OUT/base.cpio.gz.new")
mv "$OUT/base.cpio.gz.new" "$OUT/base.cpio.gz"
echo "$stamp" >"$OUT/stamp"
ok "initramfs: $OUT/base.cpio.gz ($(du -h "$OUT/base.cpio.gz" | cut -f1))"
echo "$OUT/base.cpio.gz"
