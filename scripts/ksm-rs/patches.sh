#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# patches.sh [OUTDIR]: emits the whole project as a git format-patch series
# against the pinned kernel: first the changes to existing kernel files
# (scripts/ksm-rs/patches, in order), then one commit per area of new
# files. Default OUTDIR: $CACHE/patches.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT=${1:-$CACHE/patches}
KSRC=$("$KSM_RS_TOP/scripts/ksm-rs/fetch-kernel.sh")
git -C "$KSRC" rev-parse -q --verify refs/tags/pristine >/dev/null ||
	die "$KSRC has no pristine tag: make patches needs the cached Debian tree (not KSRC=)"
wt=$CACHE/patches-worktree
git -C "$KSRC" worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
git -C "$KSRC" worktree prune
step "checking out the pristine tree into a scratch worktree"
git -C "$KSRC" worktree add -q --detach "$wt" refs/tags/pristine
trap 'git -C "$KSRC" worktree remove --force "$wt"' EXIT
G=(git -C "$wt" -c user.name="${GIT_AUTHOR_NAME:-ksm-rs authors}" -c user.email="${GIT_AUTHOR_EMAIL:-ksm-rs@localhost}")

for p in "$KSM_RS_TOP"/scripts/ksm-rs/patches/*.patch; do
	[ -e "$p" ] || continue
	"${G[@]}" am -q "$p" || die "git am $(basename "$p") failed"
done

# New files, one commit per area, with the message kept beside them.
commit_area() {	# commit_area SUBJECT BODY PATH...
	local subject=$1 body=$2; shift 2
	local paths=() f
	for f in "$@"; do
		(cd "$KSM_RS_TOP" && git ls-files --cached --others --exclude-standard -- "$f") |
			while read -r x; do mkdir -p "$wt/$(dirname "$x")"; cp "$KSM_RS_TOP/$x" "$wt/$x"; done
		paths+=("$f")
	done
	"${G[@]}" add -f -- "${paths[@]}" 2>/dev/null || true
	"${G[@]}" diff --cached --quiet && return 0
	printf '%s\n\n%s\n' "$subject" "$body" | "${G[@]}" commit -q -F -
}
commit_area "rust: kernel: abstractions used by KSM" \
	"Safe wrappers over kernel facilities that the Rust implementation of KSM
needs and that are useful beyond it, and the C helpers they call." rust/kernel rust/helpers
commit_area "mm: ksm_rs: Kernel Samepage Merging in Rust" \
	"A Rust implementation of include/linux/ksm.h, selected with CONFIG_KSM_RS." mm/ksm_rs
commit_area "Documentation: mm: describe the Rust implementation of KSM" \
	"How CONFIG_KSM_RS relates to CONFIG_KSM and mm/ksm.c." Documentation
commit_area "selftests/mm: ksm_rs: project selftests for KSM" \
	"Selftests that run unchanged on both implementations of KSM." tools/testing/selftests
commit_area "kernel/configs: QEMU test configurations for KSM" \
	"Config fragments for a minimal QEMU guest that runs the KSM selftests
(ksm_rs_qemu.config) and for its debug flavour (ksm_rs_debug.config)." kernel/configs

rm -rf "$OUT"
mkdir -p "$OUT"
"${G[@]}" format-patch -q --zero-commit --no-signature --signoff --cover-letter -o "$OUT" refs/tags/pristine..HEAD
cover=$(ls "$OUT"/0000-cover-letter.patch)
python3 - "$cover" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("*** SUBJECT HERE ***", "mm: Kernel Samepage Merging in Rust (CONFIG_KSM_RS)")
s = s.replace("*** BLURB HERE ***", """This series adds a Rust implementation of KSM beside mm/ksm.c. CONFIG_KSM
stays the feature switch; a Kconfig choice selects mm/ksm.c (CONFIG_KSM_C,
the default) or mm/ksm_rs (CONFIG_KSM_RS). Both serve the same
include/linux/ksm.h interface and /sys/kernel/mm/ksm files.

The first patches expose what the Rust side needs (bindings, helpers, and
safe abstractions in rust/kernel: kthread, sysfs attribute groups, mm flags,
page walking); then come the Rust KSM itself, its documentation, selftests
that pass unchanged on both implementations, and QEMU config fragments.""")
open(p, "w").write(s)
PY
ls "$OUT"
ok "series against $(git -C "$KSRC" log -1 --format=%s refs/tags/pristine) in $OUT"
