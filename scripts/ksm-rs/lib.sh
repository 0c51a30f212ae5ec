# SPDX-License-Identifier: GPL-2.0
# Shared settings and helpers for the ksm-rs driver scripts.

KSM_RS_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${KSM_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ksm-rs}
mkdir -p "$CACHE"

# Toolchain pins: the versions this project was proven with.
RUST_TOOLCHAIN=${RUST_TOOLCHAIN:-1.95.0}
BINDGEN_VERSION='~0.72'
BINDGEN_VERSION_RE='0\.72\.'
LLVM_SUFFIX=-19
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
RUSTC=$(rustup which --toolchain "$RUST_TOOLCHAIN" rustc 2>/dev/null || echo rustc)
RUSTFMT=$(rustup which --toolchain "$RUST_TOOLCHAIN" rustfmt 2>/dev/null || echo rustfmt)
CLIPPY_DRIVER=$(rustup which --toolchain "$RUST_TOOLCHAIN" clippy-driver 2>/dev/null || echo clippy-driver)
BINDGEN=$CACHE/cargo/bin/bindgen

# Kernel source: Debian's linux-source-7.2, a pinned version preferred.
KVER_PIN=${KVER_PIN:-7.2.12-1~bpo13+1}

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
ok()   { printf '    %s\n' "$*" >&2; }
die()  { printf 'ksm-rs: error: %s\n' "$*" >&2; exit 1; }

LLVM_NM=llvm-nm$LLVM_SUFFIX
LLVM_STRIP=llvm-strip$LLVM_SUFFIX

# build_dir KSM FLAVOUR: the O= tree of one flavour.
build_dir() { echo "$CACHE/build/$1-$2"; }

# progress LOG LABEL: saves stdin to LOG and prints a one-line summary of
# how far it got every 20 seconds, so that long steps are never silent.
progress() {
	local log=$1 label=$2 n=0 last="" t0 now next line rc
	t0=$(date +%s); next=$((t0 + 20))
	: >"$log"
	while :; do
		if IFS= read -r -t 5 line; then
			printf '%s\n' "$line" >>"$log"
			n=$((n + 1))
			case "$line" in "  "[A-Z]*) last=$line ;; esac
		else
			rc=$?
			[ "$rc" -gt 128 ] || break	# end of input, not a timeout
		fi
		now=$(date +%s)
		if [ "$now" -ge "$next" ]; then
			printf '    [%s] %4ds, %d lines, at:%s\n' "$label" $((now - t0)) "$n" "${last:-}" >&2
			next=$((now + 20))
		fi
	done
}

# The implementation `make test` tests first (the other one runs too, as the
# reference).
KSM_DEFAULT_TEST=rust
