#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# stress.sh: `make stress`. Boots a kernel and runs ksm_rs_stress in it:
# worker processes doing everything the rest of mm does to KSM pages at
# once (fork, exit, munmap, mremap, mprotect, swap to zram, THP, NUMA
# migration and balancing, compaction, memory offline, poison, userfaultfd,
# soft-dirty, MADV_(UN)MERGEABLE, PR_SET_MEMORY_MERGE) while the controller
# flips KSM's own knobs; every byte is checked against a shadow. Fails on
# any mismatch or error, on a leak kmemleak finds, and on any kernel splat.
#
#   KSM=rust|c  FLAVOUR=base|debug  STRESS_SECONDS=600
#   FAULTS=PERCENT  failslab and fail_page_alloc aimed at ksmd and at the
#                   unmerges (needs FLAVOUR=debug)
#   STRESS_ARGS='--procs 8 --seed 7'  passed to ksm_rs_stress
set -uo pipefail
. "$(dirname "$0")/lib.sh"

KSM=${KSM:-$KSM_DEFAULT_TEST}
FLAVOUR=${FLAVOUR:-base}
SECONDS_RUN=${STRESS_SECONDS:-600}
FAULTS=${FAULTS:-0}
case "$SECONDS_RUN" in '' | *[!0-9]*) die "STRESS_SECONDS=$SECONDS_RUN: a number of seconds" ;; esac
case "$FAULTS" in '' | *[!0-9]*) die "FAULTS=$FAULTS: a percentage" ;; esac
[ "$FAULTS" = 0 ] || [ "$FLAVOUR" = debug ] || die "FAULTS needs FLAVOUR=debug (CONFIG_FAULT_INJECTION_DEBUG_FS)"

# The run, then settling, checks and the kmemleak scan; debug kernels are slow.
slack=900
[ "$FLAVOUR" = debug ] && slack=2400
logdir=$CACHE/logs/stress-$KSM-$FLAVOUR-$(date +%Y%m%d-%H%M%S)
t0=$(date +%s)
KSM=$KSM FLAVOUR=$FLAVOUR TIMEOUT=$((SECONDS_RUN + slack)) LOGDIR=$logdir \
	CMD="ksm-rs-stress $SECONDS_RUN $FAULTS ${STRESS_ARGS:-}" \
	"$KSM_RS_TOP/scripts/ksm-rs/vm.sh" </dev/null
rc=$?

echo
echo "stress: KSM=$KSM FLAVOUR=$FLAVOUR STRESS_SECONDS=$SECONDS_RUN FAULTS=$FAULTS: $(( $(date +%s) - t0 )) s (logs: $logdir)"
tr -d '\r' <"$logdir/output.log" | grep -E '^### (stress|kmemleak):' || echo "stress: no summary (the guest stopped early)"
case $rc in
0) echo "stress: passed" ;;
125) echo "stress: FAILED: the kernel reported a problem, crashed or hung (see $logdir/console.log)" ;;
*) echo "stress: FAILED (exit $rc)" ;;
esac
exit "$rc"
