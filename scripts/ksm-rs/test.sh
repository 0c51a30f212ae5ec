#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# test.sh: everything CI runs. rustfmt check, kernel build(s), then in the
# VM: the project's KUnit suites, the upstream KSM selftests (every mode
# run_vmtests.sh uses for ksm and ksm_numa, and ksm_functional_tests), the
# upstream rmap and merge selftests and the project's selftests; in a
# second VM, upstream mm selftests with all their memory merged, whose
# outcomes are compared with mm/ksm.c's; in a third, the parity programs
# (distribution tools such as ksmtuned run unchanged, guest/ksm-rs-parity-*),
# whose decisions must be the same as on mm/ksm.c. Ends with "N passed, N
# failed, N skipped".
#
#   KSM=c|rust (default: the flavour whose engine is complete)  FLAVOUR=base|debug
#   TEST_BOTH=0      only KSM, not the other implementation (no comparison)
#   TEST_MERGEALL=0  without the merge-everything pass
#   TEST_PARITY=0    without the parity stage (which needs TEST_BOTH)
#   TEST_ONLY_PARITY=1  only the parity stage: no toolchain setup, rustfmt,
#                    builds or selftest VMs; with VMLINUX_rust=PATH and
#                    VMLINUX_c=PATH, the kernels it boots (see vm.sh's
#                    VMLINUX), which vm_suite passes to every VM
#   TEST_STRESS=N    then `make stress` for N seconds on KSM/FLAVOUR
#   (`make test-debug`: KSM=rust FLAVOUR=debug TEST_BOTH=0 TEST_MERGEALL=0
#   TEST_STRESS=120, the second stage of CI)
set -uo pipefail
. "$(dirname "$0")/lib.sh"

KSM=${KSM:-$KSM_DEFAULT_TEST}
FLAVOUR=${FLAVOUR:-base}
TEST_BOTH=${TEST_BOTH:-1}
TEST_MERGEALL=${TEST_MERGEALL:-1}
TEST_PARITY=${TEST_PARITY:-1}
TEST_ONLY_PARITY=${TEST_ONLY_PARITY:-0}
TEST_STRESS=${TEST_STRESS:-0}
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
if [ "$TEST_ONLY_PARITY" != 1 ]; then
	"$KSM_RS_TOP/scripts/ksm-rs/setup-toolchain.sh" || die "toolchain setup failed"
	KSRC=$("$KSM_RS_TOP/scripts/ksm-rs/prepare-tree.sh") || die "kernel source preparation failed"
fi

step "[2/4] rustfmt --check (the kernel's .rustfmt.toml)"
rs_files=$(cd "$KSM_RS_TOP" && git ls-files --cached --others --exclude-standard '*.rs')
if [ "$TEST_ONLY_PARITY" = 1 ]; then
	:	# the parity stage only
elif [ -z "$rs_files" ]; then
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
impls=("$KSM")
[ "$TEST_BOTH" = 0 ] || impls+=("$other")
# The comparisons need both.
[ "$TEST_BOTH" = 0 ] && TEST_MERGEALL=0 TEST_PARITY=0
[ "$TEST_ONLY_PARITY" = 1 ] && TEST_MERGEALL=0 TEST_STRESS=0
for k in "${impls[@]}"; do
	[ "$TEST_ONLY_PARITY" = 1 ] && break
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
	/^### suite: / { suite = $3; skipall = ""; next }
	# The merge-everything pass counts as a comparison (parse_mergeall).
	suite ~ /^mergeall_/ { next }
	# A test that cannot run here at all (kselftest.h: "1..0 # SKIP reason").
	/^1\.\.0 # (SKIP|skip)/ { skipall = $0; sub(/^1\.\.0 # (SKIP|skip) */, "", skipall); next }
	/^### exit: / {
		if ($3 == 4 && !nres[suite])
			print "skip", prefix suite ": " (skipall != "" ? skipall : "exit 4 (skip), no reason given")
		else if ($3 != 0 && $3 != 4 && !nres[suite])
			print "fail", prefix suite ": exit " $3 " with no result"
		next
	}
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

# Skips that say the test could not run here, for reasons outside KSM: the
# hugetlb pool ran short (KSM never merges hugetlb pages), or rmap's worker
# processes saw their pages change under them, which the merge-everything
# pass makes them race with (ksmd remerging what a test migrates; seen on
# mm/ksm.c as on KSM=rust). parse_mergeall calls such a skip "skipenv", and
# compare_mergeall accepts it against a pass: the same tests run unmerged in
# the main VM (upstream_rmap) or do not involve KSM (hugetlb).
MERGEALL_ENV_SKIPS='\(memory allocation failed\)|# SKIP Failed in worker'

# parse_mergeall OUTPUT: prints "SUITE<tab>TEST<tab>OUTCOMES" for every test
# of the mergeall_* suites in OUTPUT. A suite may have several runs ("###
# suite:" again), of one command or of several: OUTCOMES is what the test
# did in the runs of its command, "pass", "fail", "skip" or "none" (no
# result: the binary ended before it), with counts when there were several
# runs: "fail(2)+pass(3)"; "nocollapse" is a failure all of whose failed
# steps (khugepaged.c's fail(), printed in red) were collapses. Besides the tests, "(exit status: COMMAND)" and,
# for each reason a binary gave up for ("Bail out!", uffd's "ERROR:"),
# "(abort) REASON". A test is named as its TAP line names it, without the
# directive; kselftest.h skips ("ok N # SKIP name (reason)") lose the
# reason; khugepaged's tests, which share a few names, get the
# "(context:memory)" of the "# Run test:" line before them; a name seen
# twice in a run gets " [2]".
parse_mergeall() {
	tr -d '\r' <"$1" 2>/dev/null | awk -v envskip="$MERGEALL_ENV_SKIPS" '
	function add(name, outcome,   k) {
		if (++seen[name] > 1) name = name " [" seen[name] "]"
		k = suite SUBSEP name
		if (!(k in cmdof)) { order[n++] = k; cmdof[k] = suite SUBSEP cmd }
		if (!((k, outcome) in cnt)) outs[k] = outs[k] SUBSEP outcome
		cnt[k, outcome]++
		tot[k]++
		run_k[++run_n] = k
		run_o[run_n] = outcome
	}
	/^### suite: / {
		suite = ""
		run_n = 0
		if ($3 ~ /^mergeall_/) { suite = substr($3, 10); cmd = ""; ctx = ""; red = other = 0; split("", seen) }
		next
	}
	suite == "" { next }
	# The guest ran this again (a known race of the test): forget this run.
	/^### mergeall: run again/ {
		for (j = 1; j <= run_n; j++) { cnt[run_k[j], run_o[j]]--; tot[run_k[j]]-- }
		runs[suite SUBSEP cmd]--
		run_n = 0
		next
	}
	/^# mergeall command: / { cmd = substr($0, 21); runs[suite SUBSEP cmd]++; next }
	/^### exit: / { add("(exit status: " cmd ")", "exit " $3); next }
	/Bail out!|^# ERROR: / {
		m = $0; sub(/^.*Bail out! */, "Bail out! ", m); sub(/^# /, "", m)
		add("(abort) " m, "abort")
		next
	}
	/^# Run test: / { ctx = substr($0, 13); red = other = 0; next }
	# A step that failed (khugepaged.c prints its fail() in red): one
	# that collapses, or any other.
	/\033\[31m/ {
		red++
		step = $0; sub(/\033\[31m.*$/, "", step)
		if (step !~ /[Cc]ollapse/) other++
	}
	/^(not )?ok [0-9]+/ {
		outcome = $1 == "not" ? (red && !other ? "nocollapse" : "fail") : "pass"
		red = other = 0
		name = $0
		sub(/^(not )?ok [0-9]+ (- )?/, "", name)
		if (name ~ /^# (SKIP|skip)/) {
			outcome = name ~ envskip ? "skipenv" : "skip"
			sub(/^# (SKIP|skip) */, "", name)
			sub(/ \(.*$/, "", name)
		} else if (name ~ / # (SKIP|skip)/)
			outcome = name ~ envskip ? "skipenv" : "skip"
		sub(/ +#.*$/, "", name)
		d = ctx; sub(/ \(.*$/, "", d)
		if (ctx != "" && name == d) name = ctx
		add(name, outcome)
	}
	END {
		for (i = 0; i < n; i++) {
			k = order[i]
			if (!tot[k]) continue	# only in runs the guest ran again
			r = runs[cmdof[k]]
			m = 0
			l = split(substr(outs[k], 2), all, SUBSEP)
			for (j = 1; j <= l; j++)
				if (cnt[k, all[j]] > 0) o[++m] = all[j]
			if (tot[k] < r) { o[++m] = "none"; cnt[k, "none"] = r - tot[k] }
			for (j = 2; j <= m; j++)	# sort, for one spelling per set
				for (l = j; l > 1 && o[l - 1] > o[l]; l--) { t = o[l]; o[l] = o[l - 1]; o[l - 1] = t }
			spec = ""
			for (j = 1; j <= m; j++)
				spec = spec (j > 1 ? "+" : "") o[j] (r > 1 ? "(" cnt[k, o[j]] ")" : "")
			split(k, a, SUBSEP)
			printf "%s\t%s\t%s\n", a[1], a[2], spec
		}
	}'
}

# vm_suite KSM LOGDIR [ARG [SMP]]: runs ksm-rs-selftests in a VM and records
# results. VMLINUX_<KSM> (else VMLINUX), when set, is the kernel it boots.
vm_suite() {
	local ksm=$1 logdir=$2 arg=${3:-} smp=${4:-2} timeout=1200 rc l vmlinux=VMLINUX_$1
	[ "$FLAVOUR" = debug ] && timeout=3600
	KSM=$ksm FLAVOUR=$FLAVOUR CMD="ksm-rs-selftests $arg" TIMEOUT=$timeout LOGDIR=$logdir SMP=$smp \
		VMLINUX=${!vmlinux:-${VMLINUX:-}} "$KSM_RS_TOP/scripts/ksm-rs/vm.sh" </dev/null >/dev/null
	rc=$?
	while IFS= read -r l; do
		[ -n "$l" ] && result "${l%% *}" "${l#* }"
	done < <(parse_tap "$logdir/output.log" "$ksm/")
	if [ "$rc" = 125 ]; then
		result fail "$ksm/vm${arg:+ $arg}: guest crashed, hung or reported a kernel problem (see $logdir/console.log)"
	fi
}

# Reasons to give up that mean a test lost a race with ksmd, not that
# memory went wrong: khugepaged's MADV_COLLAPSE found a page ksmd held
# (EAGAIN), or ksmd split the THP a test had just faulted in.
MERGEALL_RACES='Bail out! (madvise\(MADV_COLLAPSE\): Resource temporarily unavailable|Failed to allocate huge page)'

# compare_mergeall RUST C: one result per test of the merge-everything pass
# (parse_mergeall's output of each implementation). The outcomes themselves
# are not counted: some of these tests assume that nothing merges their
# memory and fail on mm/ksm.c as well. A test with one outcome on both must
# have the same one ("none" when it did not report on one of them); a test
# whose outcome varied between runs must have had at least one outcome in
# common on both; a reason to give up that mm/ksm.c never gave is a failure,
# however often it came, unless it is one of MERGEALL_RACES.
# A test that one side never reached because every run of its binary gave up
# earlier on one of MERGEALL_RACES (khugepaged bails out on the first EAGAIN,
# so later tests are "none") is accepted against a pass on the other side.
# A suite run several times (khugepaged) is one whose collapses race with
# ksmd, on mm/ksm.c too: khugepaged and MADV_COLLAPSE give up on a page
# ksmd holds a reference on (trace event mm_khugepaged_scan_pmd, status
# not_suitable_page_count: 43 to 60 per run on mm/ksm.c, 3 to 29 on
# KSM=rust). Which test loses a collapse is the races' choice (in 11 make
# test runs, a test that failed 7 times in 55 runs on KSM=rust and 10 in 55
# on mm/ksm.c had runs of 5 passes of 5 on either), and mm/ksm.c, whose
# runs give up on EAGAIN more often, seldom reaches the last tests at all
# (collapse_single_pte_entry_compound (khugepaged:anon): in 13 runs of 55).
# There, test by test, every outcome KSM=rust had must be one mm/ksm.c had
# on that test, except: a pass; "nocollapse" (only collapses failed); "none"
# when a run of KSM=rust gave up on one of MERGEALL_RACES (the abort is
# judged in its own line); any outcome of a test mm/ksm.c did not reach in
# every run; a reason to give up that is one of MERGEALL_RACES; exit status
# 0. So a step that is not a collapse failing where it never failed on
# mm/ksm.c, a reason to give up it never gave (validate_memory()'s "Page N
# is corrupted") or an exit status it never had (a signal) is a failure.
# And over the suite: the share of reached tests that lost a collapse on
# KSM=rust may exceed mm/ksm.c's by 15 points at most (in those 11 runs:
# 14 to 29 % on KSM=rust, 30 to 43 % on mm/ksm.c), which catches a ksmd
# that keeps pages from collapsing, not which test the races picked.
compare_mergeall() {
	MERGEALL_RACES=$MERGEALL_RACES awk -F '\t' '
	# lost(SIDE, SUITE, T): T["n"], the outcomes of SUITE'"'"'s tests that
	# were reached, and T["lost"], those that were "nocollapse".
	function lost(side, suite, t,   k, a, o, m, i, w, n) {
		t["n"] = t["lost"] = 0
		for (k in side) {
			split(k, a, FS)
			if (a[1] != suite || a[2] ~ /^\(/) continue
			m = split(side[k], o, "+")
			for (i = 1; i <= m; i++) {
				w = o[i]; n = 1
				if (w ~ /\(/) { n = w; sub(/^.*\(/, "", n); sub(/\).*$/, "", n); sub(/\(.*$/, "", w) }
				if (w == "none") continue
				t["n"] += n
				if (w == "nocollapse") t["lost"] += n
			}
		}
	}
	function words(spec, set,   m, i, a, w) {
		split("", set)
		m = split(spec, a, "+")
		for (i = 1; i <= m; i++) { w = a[i]; sub(/\(.*$/, "", w); set[w] = 1 }
		return m
	}
	FNR == NR { k = $1 FS $2; if (!(k in r)) order[n++] = k; r[k] = $3; next }
	{ k = $1 FS $2; if (!(k in r) && !(k in c)) order[n++] = k; c[k] = $3 }
	END {
		races = "^\\(abort\\) " ENVIRON["MERGEALL_RACES"]
		# The suites in which some run gave up on a race with ksmd, per side.
		for (k in r) { split(k, a, FS); if (a[2] ~ races && r[k] ~ /abort/) raced_r[a[1]] = 1 }
		for (k in c) { split(k, a, FS); if (a[2] ~ races && c[k] ~ /abort/) raced_c[a[1]] = 1 }
		# The suites run several times: outcomes with counts.
		for (k in r) { split(k, a, FS); if (r[k] ~ /\(/) multi[a[1]] = 1 }
		for (k in c) { split(k, a, FS); if (c[k] ~ /\(/) multi[a[1]] = 1 }
		for (i = 0; i < n; i++) {
			k = order[i]
			split(k, a, FS)
			x = (k in r) ? r[k] : "none"
			y = (k in c) ? c[k] : "none"
			nx = words(x, R)
			ny = words(y, C)
			note = ""
			if (a[2] ~ /^\(abort\) / && a[2] !~ races)
				same = !("abort" in R) || ("abort" in C)
			else if (a[1] in multi) {
				# Several runs (khugepaged): the races with ksmd
				# decide what passes on either side.
				same = 1
				for (w in R) {
					if (w in C || w == "pass" || w == "nocollapse" || a[2] ~ /^\(abort\) /)
						continue
					if (a[2] ~ /^\(exit status: /) {
						if (w != "exit 0") same = 0
					} else if (w == "none" && raced_r[a[1]])
						continue
					else if ("none" in C)
						note = " (mm/ksm.c did not reach it in every run)"
					else
						same = 0
				}
				if (x != y && note == "") note = " (racy: outcomes vary between runs)"
			} else if (nx == 1 && ny == 1 && x != y && (x y) ~ /^(pass|skipenv)+$/) {
				same = 1
				note = " (skipped on one side for a reason outside KSM)"
			} else if ((!(k in c) && raced_c[a[1]] && x ~ /^pass/ && nx == 1) ||
				   (!(k in r) && raced_r[a[1]] && y ~ /^pass/ && ny == 1)) {
				same = 1
				note = " (not reached on one side: its runs gave up earlier on a race with ksmd)"
			} else if (nx == 1 && ny == 1)
				same = (x == y) || (substr(x, 1, index(x "(", "(") - 1) == substr(y, 1, index(y "(", "(") - 1))
			else {
				same = 0
				for (w in R) if (w in C) same = 1
				note = " (racy: outcomes vary between runs)"
			}
			printf "%s mergeall: %s: %s: rust=%s c=%s%s\n", same ? "ok" : "fail", a[1], a[2], x, y, note
		}
		# Per suite run several times: how many of the collapses its
		# tests reached did not happen, on either side.
		for (k in multi) {
			lost(r, k, L)
			lost(c, k, M)
			rr = L["n"] ? L["lost"] / L["n"] : 0
			cr = M["n"] ? M["lost"] / M["n"] : 0
			printf "%s mergeall: %s: tests whose collapses did not all happen: rust=%d of %d reached (%.0f %%) c=%d of %d (%.0f %%)\n",
				rr <= cr + 0.15 ? "ok" : "fail", k, L["lost"], L["n"], 100 * rr, M["lost"], M["n"], 100 * cr
		}
	}' "$1" "$2"
}

# The same suites on both implementations, the one under test first.
STAMP=$(date +%Y%m%d-%H%M%S)
declare -A mergeall_out
for k in "${impls[@]}"; do
	[ "$TEST_ONLY_PARITY" = 1 ] && break
	step "[4/4] selftests in the VM (KSM=$k FLAVOUR=$FLAVOUR)"
	logdir=$CACHE/logs/test-$k-$FLAVOUR-$STAMP
	[ "$k" = "$KSM" ] && LOGDIR=$logdir
	p0=$pass f0=$fail s0=$skip
	vm_suite "$k" "$logdir"
	for s in run_vmtests_ksm run_vmtests_ksm_numa ksm_functional_tests upstream_rmap upstream_merge; do
		grep -q "^### suite: $s" "$logdir/output.log" 2>/dev/null || result fail "$k/$s: did not run"
	done
	if [ "$TEST_MERGEALL" = 0 ]; then
		summary+=("KSM=$k: $((pass - p0)) passed, $((fail - f0)) failed, $((skip - s0)) skipped (logs: $logdir)")
		continue
	fi
	# The merge-everything pass, in a VM of its own: 4 vCPUs, since
	# migration's tests skip unless there are 3 (two readers and the
	# migrating thread), and a fresh ksmd.
	vm_suite "$k" "$logdir-mergeall" mergeall 4
	for s in migration khugepaged uffd-unit-tests rmap merge; do
		grep -q "^### suite: mergeall_$s" "$logdir-mergeall/output.log" 2>/dev/null ||
			result fail "$k/mergeall_$s: did not run"
	done
	mkdir -p "$logdir-mergeall"
	parse_mergeall "$logdir-mergeall/output.log" >"$logdir-mergeall/outcomes.tsv"
	mergeall_out[$k]=$logdir-mergeall/outcomes.tsv
	summary+=("KSM=$k: $((pass - p0)) passed, $((fail - f0)) failed, $((skip - s0)) skipped (logs: $logdir, $logdir-mergeall)")
done

# The merge-everything pass: the same outcome per test on both.
if [ "$TEST_MERGEALL" != 0 ]; then
	step "merge-everything pass: every test's outcome on KSM=rust against KSM=c"
	# What ksmd merged under each suite (peak pages_sharing, cow_ksm), and the
	# runs the guest ran again.
	for k in rust c; do
		cat "${mergeall_out[$k]%/*}/output.log" 2>/dev/null | tr -d '\r' |
			sed -n -e "s/^# mergeall: /    KSM=$k: /p" -e "s/^### mergeall: /    KSM=$k: /p" >&2
	done
	p0=$pass f0=$fail racy=0
	while IFS= read -r l; do
		result "${l%% *}" "${l#* }"
		case $l in ok*"(racy: "*) racy=$((racy + 1)) ;; esac
	done < <(compare_mergeall "${mergeall_out[rust]}" "${mergeall_out[c]}")
	summary+=("merge-everything pass, KSM=rust against KSM=c: $((pass - p0)) the same ($racy racy, with outcomes in common), $((fail - f0)) different")
fi

# parity_lines OUTPUT NAME: the "= " lines of suite parity_NAME in OUTPUT.
parity_lines() {
	tr -d '\r' <"$1" 2>/dev/null | awk -v s="parity_$2" '/^### suite: / { on = ($3 == s); next } on && /^= /'
}

# parity_side RUST C: the first lines where files RUST and C differ, side by
# side, and the number of the first one in "first".
parity_side() {
	first=$(awk 'NR == FNR { a[FNR] = $0; na = FNR; next } { b[FNR] = $0; nb = FNR }
		END { n = na > nb ? na : nb; for (i = 1; i <= n; i++) if (a[i] != b[i] || !(i in a) || !(i in b)) { print i; exit } }' \
		"$1" "$2")
	first=${first:-1}
	printf '    %-6s %-58s | %s\n' line KSM=rust KSM=c
	paste -d '\t' <(sed -n "$first,$((first + 5))p" "$1") <(sed -n "$first,$((first + 5))p" "$2") |
		awk -F '\t' -v n="$first" '{ printf "    %-6d %-58s | %s\n", n++, $1, $2 }'
}

# Parity: programs run unchanged on both implementations (the guest's
# /bin/ksm-rs-parity-*, see `ksm-rs-selftests parity`), in a VM of their own
# on each. Their TAP lines count as results of each implementation; their
# "= " lines, what the program decided or printed with kernel-dependent
# numbers taken out, must be the same on both.
if [ "$TEST_PARITY" != 0 ]; then
	declare -A parity_out
	for k in "${impls[@]}"; do
		step "parity: the parity programs in the VM (KSM=$k FLAVOUR=$FLAVOUR)"
		logdir=$CACHE/logs/test-$k-$FLAVOUR-$STAMP-parity
		p0=$pass f0=$fail s0=$skip
		vm_suite "$k" "$logdir" parity
		parity_out[$k]=$logdir/output.log
		summary+=("parity KSM=$k: $((pass - p0)) passed, $((fail - f0)) failed, $((skip - s0)) skipped (logs: $logdir)")
	done
	step "parity: every program's \"= \" lines on KSM=rust against KSM=c"
	p0=$pass f0=$fail
	pdir=$CACHE/logs/test-parity-$FLAVOUR-$STAMP
	mkdir -p "$pdir"
	names=$(cat "${parity_out[rust]}" "${parity_out[c]}" 2>/dev/null | tr -d '\r' |
		sed -n 's/^### suite: parity_//p' | sort -u)
	[ -n "$names" ] || result fail "parity: no parity program ran"
	for name in $names; do
		for k in rust c; do
			parity_lines "${parity_out[$k]}" "$name" >"$pdir/$name.$k"
		done
		missing=
		for k in rust c; do
			# Not `tr | grep -q`: grep's early exit would fail the pipe (pipefail).
			grep -q -x "### suite: parity_$name" <(tr -d '\r' <"${parity_out[$k]}") ||
				missing="$missing KSM=$k"
		done
		if [ -n "$missing" ]; then
			result fail "parity: $name: did not run on$missing"
		elif [ ! -s "$pdir/$name.rust" ]; then
			result fail "parity: $name: no \"= \" lines"
		elif cmp -s "$pdir/$name.rust" "$pdir/$name.c"; then
			result ok "parity: $name: the same $(wc -l <"$pdir/$name.rust") lines on both"
		else
			diff -u "$pdir/$name.c" "$pdir/$name.rust" >"$pdir/$name.diff"
			parity_side "$pdir/$name.rust" "$pdir/$name.c" >"$pdir/$name.side"
			result fail "parity: $name: KSM=rust ($(wc -l <"$pdir/$name.rust") lines) and KSM=c ($(wc -l <"$pdir/$name.c") lines) differ from line $first (diff: $pdir/$name.diff)"
			cat "$pdir/$name.side"
		fi
	done
	summary+=("parity, KSM=rust against KSM=c: $((pass - p0)) programs decided the same, $((fail - f0)) differently (lines: $pdir)")
fi

# A short stress: every byte checked while everything runs at once.
if [ "$TEST_STRESS" != 0 ]; then
	step "stress: KSM=$KSM FLAVOUR=$FLAVOUR, $TEST_STRESS s"
	slog=$CACHE/logs/test-stress-$KSM-$FLAVOUR-$STAMP.log
	KSM=$KSM FLAVOUR=$FLAVOUR STRESS_SECONDS=$TEST_STRESS "$KSM_RS_TOP/scripts/ksm-rs/stress.sh" >"$slog" 2>&1
	src=$?
	line=$(tr -d '\r' <"$slog" | grep -m1 '^### stress:' || true)
	leaks=$(tr -d '\r' <"$slog" | grep -m1 '^### kmemleak:' || true)
	if [ "$src" = 0 ]; then
		result ok "$KSM/stress: $TEST_STRESS s: ${line#\#\#\# stress: }; ${leaks#\#\#\# }"
	else
		result fail "$KSM/stress: $TEST_STRESS s, exit $src: ${line:-no summary} (log: $slog)"
	fi
	summary+=("stress KSM=$KSM FLAVOUR=$FLAVOUR: ${line:-no summary}, exit $src (log: $slog)")
fi

echo
printf '%s\n' "${summary[@]}"
echo "wall time: $(( $(date +%s) - t0 )) s"
[ ${#failed[@]} = 0 ] || printf 'failed: %s\n' "${failed[@]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
