#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# test.sh: everything CI runs. rustfmt check, kernel build(s), then in the
# VM: the project's KUnit suites, the upstream KSM selftests (every mode
# run_vmtests.sh uses for ksm and ksm_numa, and ksm_functional_tests) and
# the project's selftests. Ends with "N passed, N failed, N skipped".
#
#   KSM=c|rust (default: the flavour whose engine is complete)  FLAVOUR=base|debug
set -uo pipefail
. "$(dirname "$0")/lib.sh"

KSM=${KSM:-$KSM_DEFAULT_TEST}
FLAVOUR=${FLAVOUR:-base}
t0=$(date +%s)
pass=0 fail=0 skip=0
summary=()
failed=()
result() {	# result ok|fail|skip NAME
	case $1 in
	ok) pass=$((pass + 1)); printf '  ok      %s\n' "$2" ;;
	skip) skip=$((skip + 1)); printf '  skip    %s\n' "$2" ;;
	*) fail=$((fail + 1)); failed+=("$2"); printf '  FAIL    %s\n' "$2" ;;
	esac
}

step "[1/4] toolchain and kernel source"
"$KSM_RS_TOP/scripts/ksm-rs/setup-toolchain.sh" || die "toolchain setup failed"
KSRC=$("$KSM_RS_TOP/scripts/ksm-rs/prepare-tree.sh") || die "kernel source preparation failed"

step "[2/4] rustfmt --check (the kernel's .rustfmt.toml)"
rs_files=$(cd "$KSM_RS_TOP" && git ls-files --cached --others --exclude-standard '*.rs')
if [ -z "$rs_files" ]; then
	result skip "rustfmt: no Rust files"
elif "$KSM_RS_TOP/scripts/ksm-rs/rustfmt.sh" --check; then
	result ok "rustfmt: $(echo "$rs_files" | wc -l) files"
else
	result fail "rustfmt: run 'make rustfmt'"
fi

step "[3/4] kernel builds"
# Both implementations, always: mm/ksm.c is the reference every result is
# compared with.
other=c
[ "$KSM" = c ] && other=rust
for k in "$KSM" "$other"; do
	if "$KSM_RS_TOP/scripts/ksm-rs/build-kernel.sh" "$k" "$FLAVOUR" >/dev/null; then
		result ok "build: KSM=$k FLAVOUR=$FLAVOUR vmlinux with the whole ksm.h interface"
	else
		result fail "build: KSM=$k FLAVOUR=$FLAVOUR"
	fi
done

# parse_tap OUTPUT PREFIX: prints "ok|fail|skip NAME" for every result of the
# suites in OUTPUT: top-level TAP lines, and KUnit's test cases.
parse_tap() {
	tr -d '\r' <"$1" 2>/dev/null | awk -v prefix="$2" '
	# A failed ksm_tests that passed when run once more (see ksm-rs-selftests).
	/^### retry: / {
		t = $0; sub(/^### retry: /, "", t); verdict = t; sub(/.*: /, "", verdict); sub(/: [a-z]+$/, "", t)
		if (verdict == "pass" && (suite SUBSEP t) in failed) {
			print "ok", prefix suite ": " t " (failed once, passed on retry)"
			delete failed[suite SUBSEP t]
		}
		next
	}
	/^### suite: / { suite = $3; next }
	/^### exit: / { if ($3 != 0 && $3 != 4 && !nres[suite]) print "fail", prefix suite ": exit " $3 " with no result"; next }
	suite == "" { next }
	{
		line = $0
		if (suite == "kunit") {
			if (line !~ /^    (not )?ok /) next
			sub(/^    /, "", line)
		} else if (line !~ /^(not )?ok /) next
		name = line
		sub(/^(not )?ok [0-9]+ (- )?/, "", name)
		nres[suite]++
		if (line ~ /^not ok/) {
			t = name; sub(/ # exit=.*/, "", t)
			if (t ~ /^ksm_tests /) failed[suite SUBSEP t] = name
			else print "fail", prefix suite ": " name
		} else if (line ~ /# (SKIP|skip)/) print "skip", prefix suite ": " name
		else print "ok", prefix suite ": " name
	}
	END {
		for (k in failed) {
			split(k, a, SUBSEP)
			print "fail", prefix a[1] ": " failed[k] " (and on retry)"
		}
	}'
}

# vm_suite KSM LOGDIR [ARG]: runs ksm-rs-selftests in a VM and records results.
vm_suite() {
	local ksm=$1 logdir=$2 arg=${3:-} timeout=1200 rc l
	[ "$FLAVOUR" = debug ] && timeout=3600
	KSM=$ksm FLAVOUR=$FLAVOUR CMD="ksm-rs-selftests $arg" TIMEOUT=$timeout LOGDIR=$logdir \
		"$KSM_RS_TOP/scripts/ksm-rs/vm.sh" </dev/null >/dev/null
	rc=$?
	while IFS= read -r l; do
		[ -n "$l" ] && result "${l%% *}" "${l#* }"
	done < <(parse_tap "$logdir/output.log" "$ksm/")
	if [ "$rc" = 125 ]; then
		result fail "$ksm/vm: guest crashed, hung or reported a kernel problem (see $logdir/console.log)"
	fi
}

# The same suites on both implementations, the one under test first.
STAMP=$(date +%Y%m%d-%H%M%S)
for k in "$KSM" "$other"; do
	step "[4/4] selftests in the VM (KSM=$k FLAVOUR=$FLAVOUR)"
	logdir=$CACHE/logs/test-$k-$FLAVOUR-$STAMP
	[ "$k" = "$KSM" ] && LOGDIR=$logdir
	p0=$pass f0=$fail s0=$skip
	vm_suite "$k" "$logdir"
	for s in run_vmtests_ksm run_vmtests_ksm_numa ksm_functional_tests; do
		grep -q "^### suite: $s" "$logdir/output.log" 2>/dev/null || result fail "$k/$s: did not run"
	done
	summary+=("KSM=$k: $((pass - p0)) passed, $((fail - f0)) failed, $((skip - s0)) skipped (logs: $logdir)")
done

echo
printf '%s\n' "${summary[@]}"
echo "wall time: $(( $(date +%s) - t0 )) s"
[ ${#failed[@]} = 0 ] || printf 'failed: %s\n' "${failed[@]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
