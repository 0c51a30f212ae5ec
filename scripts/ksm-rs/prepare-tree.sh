#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Brings the kernel tree to "pristine + ksm-rs": applies the project's
# patches (each only once) and overlays the project's new files at their
# kernel paths, copying only what changed so that make rebuilds only what
# it must. Files overlaid by an earlier run and gone from the project are
# removed again. Prints the tree's path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KSRC=$("$KSM_RS_TOP/scripts/ksm-rs/fetch-kernel.sh")
cd "$KSRC"

for p in "$KSM_RS_TOP"/scripts/ksm-rs/patches/*.patch; do
	[ -e "$p" ] || continue
	if git apply --check -R "$p" >/dev/null 2>&1; then
		continue		# already applied
	fi
	git apply --check "$p" 2>/dev/null ||
		die "patch $(basename "$p") does not apply to $KSRC (a different kernel version or a hand-edited tree?)"
	git apply "$p"
	ok "applied $(basename "$p")"
done

# The overlay: every project file under a kernel path, but not the project's
# own driver (top-level Makefile/Kbuild/Kconfig, scripts/ksm-rs, .ci, docs).
manifest_new=$(mktemp)
(cd "$KSM_RS_TOP" && git ls-files --cached --others --exclude-standard -- \
	Documentation include kernel mm rust tools/testing/selftests lib |
	while read -r f; do [ -f "$f" ] && echo "$f"; done) | sort >"$manifest_new"
manifest_old=$KSRC/.ksm-rs-overlay
if [ -f "$manifest_old" ]; then
	comm -23 "$manifest_old" "$manifest_new" | while read -r f; do
		if git cat-file -e "pristine:$f" 2>/dev/null; then
			git checkout -q pristine -- "$f"
		else
			rm -f "$f"
		fi
		ok "removed stale overlay file $f"
	done
fi
rsync -rc --files-from="$manifest_new" "$KSM_RS_TOP"/ "$KSRC"/
mv "$manifest_new" "$manifest_old"
echo "$KSRC"
