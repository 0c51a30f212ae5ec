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

# Inputs: the selftest sources, the project's guest files, the host tools.
stamp=$( (cat "$SELF"/mm/*.c "$SELF"/mm/*.h "$SELF"/mm/run_vmtests.sh "$SELF"/kselftest*.h \
	"$KSM_RS_TOP"/scripts/ksm-rs/guest/* "$0"; ls -l /bin/busybox /bin/bash) 2>/dev/null | sha1sum | cut -c1-16)
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

CFLAGS=(-static -Wall -O2 -U_FORTIFY_SOURCE -no-pie -I"$KSRC" -I"$SELF" -isystem "$O/usr/include"
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
chmod +x "$root/init" "$root"/bin/* "$root"/selftests/mm/*
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
echo "nobody:x:65534:65534:nobody:/:/bin/false" >>"$root/etc/passwd"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 >"$OUT/base.cpio.gz.new")
mv "$OUT/base.cpio.gz.new" "$OUT/base.cpio.gz"
echo "$stamp" >"$OUT/stamp"
ok "initramfs: $OUT/base.cpio.gz ($(du -h "$OUT/base.cpio.gz" | cut -f1))"
echo "$OUT/base.cpio.gz"
