#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Brings the kernel tree to "pristine + ksm-rs": applies the project's
# patches (each only once) and overlays the project's new files at their
# kernel paths, copying only what changed so that make rebuilds only what
# it must. Files overlaid by an earlier run and gone from the project are
# removed again. Prints the tree's path.
#
# prepare-tree.sh --check: exits 0 when the tree is up to date, 1 otherwise,
# changing nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KSRC=$("$KSM_RS_TOP/scripts/ksm-rs/fetch-kernel.sh")
cd "$KSRC"

# The overlay: every project file under a kernel path, but not the project's
# own driver (top-level Makefile/Kbuild/Kconfig, scripts/ksm-rs, .ci, docs).
manifest_new=$(mktemp)
trap 'rm -f "$manifest_new"' EXIT
(cd "$KSM_RS_TOP" && git ls-files --cached --others --exclude-standard -- \
	Documentation include kernel mm rust tools/testing/selftests lib |
	while read -r f; do [ -f "$f" ] && echo "$f"; done) | sort >"$manifest_new"
manifest_old=$KSRC/.ksm-rs-overlay
applied=$KSRC/.ksm-rs-applied
want=$(cat "$KSM_RS_TOP"/scripts/ksm-rs/patches/*.patch 2>/dev/null | sha1sum | cut -c1-16)

if [ "${1:-}" = --check ]; then
	[ "$(cat "$applied/series" 2>/dev/null)" = "$want" ] || exit 1
	cmp -s "$manifest_old" "$manifest_new" || exit 1
	changes=$(rsync -rcn --out-format=%n --files-from="$manifest_new" "$KSM_RS_TOP"/ "$KSRC"/)
	[ -z "$changes" ] || exit 1
	exit 0
fi

# The patches: applied once. When the project's series changes, our cached
# tree gets pristine + the new series, writing only the files that change; in
# a KSRC tree the old series is reverted and the new one applied whole.
if [ "$(cat "$applied/series" 2>/dev/null)" != "$want" ]; then
	if git rev-parse -q --verify refs/tags/pristine >/dev/null 2>&1; then
		# Our cached tree: the new series is applied to pristine in a
		# scratch index, and only the files whose contents differ from
		# it are written, so that their timestamps tell make what the
		# new series really changed (a line added to one patch must not
		# rebuild everything that includes the other patched headers).
		idx=$(mktemp)
		trap 'rm -f "$manifest_new" "$idx"' EXIT
		GIT_INDEX_FILE=$idx git read-tree refs/tags/pristine
		for p in "$KSM_RS_TOP"/scripts/ksm-rs/patches/*.patch; do
			[ -e "$p" ] || continue
			GIT_INDEX_FILE=$idx git apply --cached "$p" 2>/dev/null ||
				die "patch $(basename "$p") does not apply to $KSRC (a different kernel version or a hand-edited tree?)"
		done
		for f in $( (git diff --name-only refs/tags/pristine
			GIT_INDEX_FILE=$idx git diff-index --cached --name-only refs/tags/pristine) | sort -u); do
			blob=$(GIT_INDEX_FILE=$idx git ls-files -s -- "$f" | awk '{ print $2 }')
			if [ -z "$blob" ]; then
				rm -f "$f"
			elif [ "$blob" != "$(git hash-object -- "$f" 2>/dev/null)" ]; then
				GIT_INDEX_FILE=$idx git checkout-index -f -- "$f"
				ok "updated $f"
			fi
		done
		rm -rf "$applied"
		mkdir -p "$applied"
		cp "$KSM_RS_TOP"/scripts/ksm-rs/patches/*.patch "$applied/" 2>/dev/null || true
	else
		# A KSRC tree: the old series reverted, the new one applied.
		for p in $(ls "$applied"/*.patch 2>/dev/null | sort -r); do
			git apply -R "$p" || die "could not revert $(basename "$p") in $KSRC"
		done
		rm -rf "$applied"
		mkdir -p "$applied"
		for p in "$KSM_RS_TOP"/scripts/ksm-rs/patches/*.patch; do
			[ -e "$p" ] || continue
			git apply --check "$p" 2>/dev/null ||
				die "patch $(basename "$p") does not apply to $KSRC (a different kernel version or a hand-edited tree?)"
			git apply "$p"
			cp "$p" "$applied/"
			ok "applied $(basename "$p")"
		done
	fi
	echo "$want" >"$applied/series"
fi

# Overlay files gone from the project are removed from the tree.
if [ -f "$manifest_old" ]; then
	comm -23 "$manifest_old" "$manifest_new" | while read -r f; do
		if git cat-file -e "refs/tags/pristine:$f" 2>/dev/null; then
			git checkout -q refs/tags/pristine -- "$f"
		else
			rm -f "$f"
		fi
		ok "removed stale overlay file $f"
	done
fi
rsync -rc --files-from="$manifest_new" "$KSM_RS_TOP"/ "$KSRC"/
cp "$manifest_new" "$manifest_old"
echo "$KSRC"
