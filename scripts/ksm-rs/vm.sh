#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# vm.sh: boots the chosen kernel in QEMU and runs one shell command in it.
#
#   KSM=rust|c  FLAVOUR=base|debug  CMD='shell command'  FILES=host-dir
#   MEM=2G  SMP=2  TIMEOUT=seconds  ACCEL=kvm|tcg  LOGDIR=dir
#   VMLINUX=path  boot that kernel (e.g. a copy kept from an earlier build, to
#                 compare before and after a fix) with the KSM/FLAVOUR build
#                 tree's headers and .config, without rebuilding it
#
# CMD runs as root in /root with the upstream selftests in /selftests/mm and
# FILES copied to /mnt/files. With no CMD, an interactive shell. Exits with
# CMD's exit status; 125 when the guest panicked, hung, timed out or its
# kernel log holds a BUG/WARNING/KASAN/lockdep/kmemleak/hung-task report.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KSM=${KSM:-rust}
FLAVOUR=${FLAVOUR:-base}
MEM=${MEM:-2G}
SMP=${SMP:-2}
TIMEOUT=${TIMEOUT:-900}
CMD=${CMD-}

if [ -n "${VMLINUX:-}" ]; then
	[ -f "$VMLINUX" ] || die "VMLINUX=$VMLINUX: no such file"
	O=$(build_dir "$KSM" "$FLAVOUR")
	[ -f "$O/.config" ] || die "VMLINUX needs a configured $KSM/$FLAVOUR build tree: make kernel first"
	# The selftests in the initramfs come from the tree: bring it up to date (as
	# build-kernel.sh does, exclusively: not while a build reads it).
	if ! "$KSM_RS_TOP/scripts/ksm-rs/prepare-tree.sh" --check; then
		exec 9>"$CACHE/tree.lock"
		flock 9
		"$KSM_RS_TOP/scripts/ksm-rs/prepare-tree.sh" >/dev/null
		exec 9>&-
	fi
else
	O=$("$KSM_RS_TOP/scripts/ksm-rs/build-kernel.sh" "$KSM" "$FLAVOUR")
fi
base_initrd=$("$KSM_RS_TOP/scripts/ksm-rs/build-initramfs.sh" "$O")

LOGDIR=${LOGDIR:-$CACHE/logs/vm-$KSM-$FLAVOUR-$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$LOGDIR"
console=$LOGDIR/console.log
output=$LOGDIR/output.log

# The per-run part of the initramfs: the command, the .config, FILES.
run=$LOGDIR/initrd.d
mkdir -p "$run/ksm-rs" "$run/mnt/files"
if [ -n "$CMD" ]; then
	printf '%s\n' "$CMD" >"$run/ksm-rs/cmd"
else
	printf 'echo "ksm-rs guest ($KSM/$FLAVOUR): exit the shell to power off"\nsetsid cttyhack sh -l\n' >"$run/ksm-rs/cmd"
fi
printf 'export KSM_RS_KSM=%s KSM_RS_FLAVOUR=%s\n' "$KSM" "$FLAVOUR" >"$run/ksm-rs/env"
cp "$O/.config" "$run/ksm-rs/config"
if [ -n "${FILES:-}" ]; then
	[ -d "$FILES" ] || die "FILES=$FILES is not a directory"
	cp -a "$FILES"/. "$run/mnt/files/"
fi
(cd "$run" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 >"$LOGDIR/run.cpio.gz")
cat "$base_initrd" "$LOGDIR/run.cpio.gz" >"$LOGDIR/initrd.cpio.gz"
rm -rf "$run" "$LOGDIR/run.cpio.gz"

# Two NUMA nodes, the CPUs split between them, one socket per node.
mem_mb=$(numfmt --from=iec "${MEM%B}" | awk '{print int($1/1048576)}')
half=$((mem_mb / 2))
[ "$SMP" -ge 2 ] || die "SMP=$SMP: the guest has two NUMA nodes and needs SMP>=2"
c0=$((SMP / 2 - 1))
qemu_args=(-nodefaults -display none -no-reboot -cpu max
	-smp "$SMP,sockets=2,cores=$((SMP / 2)),threads=1" -m "${mem_mb}M"
	-object "memory-backend-ram,id=m0,size=${half}M"
	-object "memory-backend-ram,id=m1,size=$((mem_mb - half))M"
	-numa "node,nodeid=0,memdev=m0,cpus=0-$c0"
	-numa "node,nodeid=1,memdev=m1,cpus=$((c0 + 1))-$((SMP - 1))"
	-kernel "${VMLINUX:-$O/vmlinux}" -initrd "$LOGDIR/initrd.cpio.gz"
	-append "console=ttyS0 loglevel=7 panic=-1 oops=panic softlockup_panic=0 ${KSM_RS_APPEND:-}")

# KVM only where a guest really boots on it (nested KVM often does not).
accel=${ACCEL:-}
if [ -z "$accel" ]; then
	accel=$(cat "$CACHE/accel" 2>/dev/null || true)
	if [ -z "$accel" ]; then
		accel=tcg
		if [ -w /dev/kvm ]; then
			step "probing KVM with a smoke boot"
			if timeout -k 5 60 qemu-system-x86_64 -accel kvm "${qemu_args[@]}" \
				-serial file:"$LOGDIR/kvm-probe.log" -chardev file,id=o,path="$LOGDIR/kvm-probe.out" \
				-serial chardev:o </dev/null >/dev/null 2>&1 &&
				grep -q 'ksm-rs-exit-status:' "$LOGDIR/kvm-probe.out"; then
				accel=kvm
			fi
			ok "KVM $( [ $accel = kvm ] && echo works || echo 'does not boot a guest here'): using $accel"
		fi
		echo "$accel" >"$CACHE/accel"
	fi
fi
[ "$accel" = tcg ] && accel=tcg,thread=multi

step "booting $KSM/$FLAVOUR kernel ($accel, $SMP vCPUs, $MEM, 2 NUMA nodes; kernel log: $console)"
set +e
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -accel "$accel" "${qemu_args[@]}" \
	-serial file:"$console" \
	-chardev stdio,id=cmd,signal=off,logfile="$output" -serial chardev:cmd |
	{ grep --line-buffered -v '^ksm-rs-exit-status: ' || true; }
qrc=${PIPESTATUS[0]}
set -e

status=$(tr -d '\r' <"$output" | sed -n 's/^ksm-rs-exit-status: \([0-9]*\)$/\1/p' | tail -1)
reports=$(grep -n -E 'Kernel panic|BUG:|WARNING:|Oops|general protection fault|KASAN|UBSAN|kmemleak: [0-9]+ new suspected|possible (circular|recursive) locking|inconsistent lock state|INFO: task .* blocked for more than|soft lockup|hard LOCKUP|rcu_.* detected stall|cut here' \
	"$console" | head -20 || true)
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	echo "ksm-rs: guest timed out after ${TIMEOUT}s (kernel log: $console)" >&2
	exit 125
fi
if [ -n "$reports" ]; then
	printf 'ksm-rs: the guest kernel reported problems (kernel log: %s):\n%s\n' "$console" "$reports" >&2
	exit 125
fi
if [ -z "$status" ]; then
	echo "ksm-rs: the guest stopped before the command finished (qemu exit $qrc; kernel log: $console)" >&2
	exit 125
fi
exit "$status"
