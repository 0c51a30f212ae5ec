#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh: `make bench`. Builds both implementations (same kernel, same
# config but for the KSM choice), boots each in the same VM shape and runs
# the guest's ksm-rs-bench, BENCH_REPS times, alternating the order; then
# scripts/ksm-rs/bench-report.py prints the table and writes the JSON file
# and the plot, and the last line is the JSON file's path.
#
#   BENCH_REPS=3  BENCH_ARGS=quick (smaller sizes, a smoke run)  MEM=4G
set -eo pipefail
KSM_RS_TOP=$(cd "$(dirname "$0")/../.." && pwd)
source "$KSM_RS_TOP/scripts/ksm-rs/lib.sh"

REPS=${BENCH_REPS:-3}
ARGS=${BENCH_ARGS:-}
export MEM=${MEM:-4G} FLAVOUR=base TIMEOUT=${TIMEOUT:-5400}

"$KSM_RS_TOP/scripts/ksm-rs/setup-toolchain.sh" || die "toolchain setup failed"
for k in c rust; do
	"$KSM_RS_TOP/scripts/ksm-rs/build-kernel.sh" "$k" base >/dev/null || die "build of KSM=$k failed"
done

out=$CACHE/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"

# The real client: QEMU itself (TCG, mem-merge on by default, so it asks for
# MADV_MERGEABLE on guest RAM), with its libraries and firmware, two small
# guests booting the same kernel and a busybox initramfs; copied into the test
# VM at /mnt/files.
qc=$out/qemu-client
rm -rf "$qc"
mkdir -p "$qc/lib" "$qc/share" "$qc/guest/bin"
qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 missing"
cp "$qemu" "$qc/qemu-system-x86_64"
ldd "$qemu" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }' | while read -r l; do
	[ -f "$l" ] && cp -L "$l" "$qc/lib/"
done
for f in /usr/share/seabios/bios-256k.bin /usr/share/qemu/linuxboot_dma.bin \
	/usr/share/qemu/pvh.bin /usr/share/qemu/kvmvapic.bin; do
	cp "$f" "$qc/share/" || die "QEMU firmware $f missing"
done
# Debian builds TCG as a loadable module.
mkdir -p "$qc/modules"
cp /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so "$qc/modules/" 2>/dev/null || true
"$LLVM_STRIP" -o "$qc/vmlinux" "$CACHE/build/c-base/vmlinux" 2>/dev/null ||
	cp "$CACHE/build/c-base/vmlinux" "$qc/vmlinux"
cp /bin/busybox "$qc/guest/bin/busybox"
cat >"$qc/guest/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mkdir -p /proc && /bin/busybox mount -t proc proc /proc
echo "ksm-rs nested guest up"
while :; do /bin/busybox sleep 3600; done
INIT
chmod +x "$qc/guest/init"
(cd "$qc/guest" && find . | cpio -o -H newc --quiet -R 0:0 | gzip -1 >"$qc/initrd.cpio.gz")
rm -rf "$qc/guest"
ok "QEMU client: $(du -sh "$qc" | cut -f1) ($qemu, $(ls "$qc/lib" | wc -l) libraries)"
step "benchmarks: $REPS runs per implementation, VM of $MEM (results in $out)"
for r in $(seq 1 "$REPS"); do
	order="c rust"
	[ $((r % 2)) = 0 ] && order="rust c"
	for k in $order; do
		t=$(date +%s)
		extra=
		[ "$r" -gt 1 ] && extra=noqemu
		KSM=$k CMD="ksm-rs-bench $ARGS $extra" LOGDIR=$out/$k-$r FILES=$qc \
			"$KSM_RS_TOP/scripts/ksm-rs/vm.sh" </dev/null >"$out/$k-$r.out" 2>&1 ||
			die "bench VM KSM=$k run $r failed (see $out/$k-$r.out)"
		ok "KSM=$k run $r: $(( $(date +%s) - t )) s"
	done
done
python3 "$KSM_RS_TOP/scripts/ksm-rs/bench-report.py" "$out"
