#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build-kernel.sh KSM FLAVOUR: configures (tinyconfig + fragments) and
# builds vmlinux and the UAPI headers in the O= tree of that flavour, then
# checks that every KSM symbol the rest of the kernel links against is
# there. Prints the build directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KSM=${1:-c}
FLAVOUR=${2:-base}
case "$KSM" in c|rust) ;; *) die "KSM=$KSM: use KSM=c or KSM=rust" ;; esac
case "$FLAVOUR" in base|debug) ;; *) die "FLAVOUR=$FLAVOUR: use FLAVOUR=base or FLAVOUR=debug" ;; esac

"$KSM_RS_TOP/scripts/ksm-rs/setup-toolchain.sh"
O=$(build_dir "$KSM" "$FLAVOUR")
mkdir -p "$O"

# One build per flavour at a time; builds of several flavours share the
# source tree, which changes only while no build runs (tree.lock: shared
# while building, exclusive while patching and overlaying).
exec 8>"$O/.ksm-rs-build.lock"
flock -n 8 || { ok "waiting for another build of $KSM/$FLAVOUR"; flock 8; }
exec 9>"$CACHE/tree.lock"
if ! "$KSM_RS_TOP/scripts/ksm-rs/prepare-tree.sh" --check; then
	flock -n 9 || { ok "waiting for other builds to finish before updating the tree"; flock 9; }
	"$KSM_RS_TOP/scripts/ksm-rs/prepare-tree.sh" >/dev/null
fi
flock -s 9
KSRC=$("$KSM_RS_TOP/scripts/ksm-rs/fetch-kernel.sh")
MAKE=(make -C "$KSRC" O="$O" LLVM="$LLVM_SUFFIX" RUSTC="$RUSTC" RUSTFMT="$RUSTFMT"
      BINDGEN="$BINDGEN" CLIPPY_DRIVER="$CLIPPY_DRIVER" -j"$(nproc)")

# Configuration: redone whenever a fragment or the choice changes.
frags=("$KSRC/kernel/configs/ksm_rs_qemu.config")
[ "$FLAVOUR" = debug ] && frags+=("$KSRC/kernel/configs/ksm_rs_debug.config")
sel=$O/ksm-rs-select.config
if [ "$KSM" = rust ]; then
	printf 'CONFIG_KSM_RS=y\n# CONFIG_KSM_C is not set\n' >"$sel.new"
else
	printf 'CONFIG_KSM_C=y\n# CONFIG_KSM_RS is not set\n' >"$sel.new"
fi
mv "$sel.new" "$sel"
frags+=("$sel")
stamp=$(cat "${frags[@]}" "$KSRC/mm/Kconfig" | sha1sum | cut -c1-16)
if [ ! -f "$O/.config" ] || [ "$(cat "$O/.ksm-rs-config-stamp" 2>/dev/null)" != "$stamp" ]; then
	step "configuring $KSM/$FLAVOUR kernel in $O"
	"${MAKE[@]}" -s tinyconfig >"$O/config.log" 2>&1 || { cat "$O/config.log"; die "make tinyconfig failed"; }
	(cd "$O" && "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$O" "$O/.config" "${frags[@]}") >>"$O/config.log" 2>&1 ||
		{ cat "$O/config.log"; die "merge_config.sh failed"; }
	"${MAKE[@]}" -s olddefconfig >>"$O/config.log" 2>&1 || { cat "$O/config.log"; die "olddefconfig failed"; }
	# Every option a fragment asks for must have survived olddefconfig.
	missing=""
	for f in "${frags[@]}"; do
		while IFS= read -r line; do
			case "$line" in
			CONFIG_*=n) opt=${line%%=*}; grep -q "^$opt=" "$O/.config" && missing="$missing $line" ;;
			CONFIG_*=*) grep -qx "$line" "$O/.config" || missing="$missing $line" ;;
			"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; grep -q "^$opt=" "$O/.config" && missing="$missing $opt=n" ;;
			esac
		done <"$f"
	done
	[ -z "$missing" ] || die "these options could not be set (missing dependency or toolchain?):$missing"
	echo "$stamp" >"$O/.ksm-rs-config-stamp"
fi

step "building $KSM/$FLAVOUR vmlinux (log: $O/build.log; about 8 minutes from scratch on 2 cores)"
start=$(date +%s)
set +e
"${MAKE[@]}" vmlinux headers 2>&1 | progress "$O/build.log" "kernel $KSM/$FLAVOUR"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
	grep -E -B2 -A8 'error(\[E[0-9]+\])?:|Error [0-9]|undefined (symbol|reference)' "$O/build.log" | head -60 >&2
	die "kernel build failed (log: $O/build.log)"
fi
ok "vmlinux ready after $(( $(date +%s) - start )) s: $O/vmlinux"

# The symbols that mm/, kernel/ and fs/proc call through include/linux/ksm.h.
want="ksm_madvise ksm_vma_flags ksm_enable_merge_any ksm_disable_merge_any ksm_disable
__ksm_enter __ksm_exit ksm_zero_pages ksm_might_need_to_copy rmap_walk_ksm folio_migrate_ksm
ksm_process_profit ksm_process_mergeable collect_procs_ksm"
syms=$("$LLVM_NM" --defined-only "$O/vmlinux" | awk '{print $3}')
for s in $want; do
	grep -qx -- "$s" <<<"$syms" || die "vmlinux lacks $s: the KSM interface is incomplete"
done
echo "$O"
