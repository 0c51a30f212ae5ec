#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Installs, idempotently and without prompts, everything ksm-rs needs to
# build a Rust-enabled kernel and to test it under QEMU: Debian packages,
# rustup's rust-src, bindgen-cli; then checks `make rustavailable`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PKGS="clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc cpio kmod
libelf-dev libssl-dev libnuma-dev qemu-system-x86 busybox-static xz-utils
rsync python3 make gcc libc6-dev"

need_pkgs=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		need_pkgs="$need_pkgs $p"
done
if [ -n "$need_pkgs" ]; then
	[ "$(id -u)" = 0 ] || die "missing Debian packages:$need_pkgs (run as root or: apt-get install$need_pkgs)"
	step "apt-get install:$need_pkgs"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	apt-get install -y -qq --no-install-recommends $need_pkgs >"$CACHE/apt.log" 2>&1 ||
		{ tail -20 "$CACHE/apt.log"; die "apt-get install failed (log: $CACHE/apt.log)"; }
fi

command -v rustup >/dev/null || die "rustup not found: install Rust with rustup (https://rustup.rs)"
if ! rustup component list --toolchain "$RUST_TOOLCHAIN" --installed 2>/dev/null | grep -q '^rust-src'; then
	step "rustup component add rust-src --toolchain $RUST_TOOLCHAIN"
	rustup toolchain install --profile minimal "$RUST_TOOLCHAIN" >/dev/null 2>&1 || true
	rustup component add rust-src rustfmt clippy --toolchain "$RUST_TOOLCHAIN" ||
		die "rustup could not add rust-src to $RUST_TOOLCHAIN"
fi

if ! "$BINDGEN" --version 2>/dev/null | grep -q "bindgen $BINDGEN_VERSION_RE"; then
	step "cargo install bindgen-cli $BINDGEN_VERSION (about 2 minutes)"
	cargo +"$RUST_TOOLCHAIN" install --locked --root "$CACHE/cargo" bindgen-cli \
		--version "$BINDGEN_VERSION" >"$CACHE/bindgen-install.log" 2>&1 ||
		{ tail -20 "$CACHE/bindgen-install.log"; die "cargo install bindgen-cli failed"; }
fi
ok "toolchain: $("$RUSTC" --version), $("$BINDGEN" --version), $(clang-19 --version | head -1)"
