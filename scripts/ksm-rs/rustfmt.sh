#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# rustfmt.sh [--check]: formats the project's Rust sources with the
# kernel's rustfmt configuration, as `make rustfmt` does for the kernel.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KSRC=$("$KSM_RS_TOP/scripts/ksm-rs/fetch-kernel.sh")
cd "$KSM_RS_TOP"
files=$(git ls-files --cached --others --exclude-standard '*.rs')
[ -n "$files" ] || exit 0
exec "$RUSTFMT" "$@" --edition 2021 --config-path "$KSRC/.rustfmt.toml" $files
