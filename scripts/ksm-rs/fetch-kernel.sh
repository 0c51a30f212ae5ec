#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Provides the kernel source tree ksm-rs builds against and prints its path.
# KSRC=/path uses an existing tree. Otherwise Debian's linux-source-7.2 is
# fetched (the suite that carries it is added with a low apt pin so nothing
# else upgrades), unpacked once into the cache and turned into a git
# repository whose first commit is the pristine source, so that the
# project's patches can be applied idempotently and `make patches` can
# diff against it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -n "${KSRC:-}" ]; then
	[ -f "$KSRC/Makefile" ] && [ -f "$KSRC/mm/ksm.c" ] || die "KSRC=$KSRC is not a kernel tree"
	echo "$KSRC"
	exit 0
fi

if [ -f "$CACHE/src/.ksm-rs-ready" ]; then
	echo "$CACHE/src"
	exit 0
fi

deb=$(ls "$CACHE"/dl/linux-source-7.2_*.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$deb" ]; then
	[ "$(id -u)" = 0 ] || die "linux-source-7.2 not cached; run as root once, or set KSRC=/path/to/linux-7.2"
	src=/etc/apt/sources.list.d/ksm-rs-linux-source.sources
	if [ ! -f "$src" ]; then
		step "adding trixie-backports and sid apt sources (pinned at priority 100)"
		cat >"$src" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
		cat >/etc/apt/preferences.d/ksm-rs-linux-source <<'PIN'
Package: *
Pin: release n=trixie-backports
Pin-Priority: 100

Package: *
Pin: release n=sid
Pin-Priority: 100
PIN
	fi
	step "apt-get update (for linux-source-7.2)"
	apt-get update -qq >&2 || die "apt-get update failed"
	versions=$(apt-cache madison linux-source-7.2 | awk '{print $3}' | sort -uV)
	[ -n "$versions" ] || die "no linux-source-7.2 in the configured apt suites"
	ver=""
	if [ -n "$KVER_PIN" ] && echo "$versions" | grep -qx "$KVER_PIN"; then
		ver=$KVER_PIN
		ok "linux-source-7.2 $ver (pinned)"
	else
		ver=$(echo "$versions" | tail -1)
		[ -n "$KVER_PIN" ] && ok "pinned $KVER_PIN is not available; available: $(echo $versions)"
		ok "linux-source-7.2 $ver (newest available)"
	fi
	mkdir -p "$CACHE/dl"
	step "downloading linux-source-7.2=$ver (about 165 MB)"
	(cd "$CACHE/dl" && apt-get download -q -o APT::Sandbox::User=root "linux-source-7.2=$ver" >&2) ||
		die "apt-get download failed"
	deb=$(ls "$CACHE"/dl/linux-source-7.2_*.deb | sort -V | tail -1)
fi

step "unpacking $(basename "$deb")"
rm -rf "$CACHE/src" "$CACHE/src.tmp" "$CACHE/deb.tmp"
mkdir -p "$CACHE/deb.tmp" "$CACHE/src.tmp"
dpkg-deb -x "$deb" "$CACHE/deb.tmp"
tar -C "$CACHE/src.tmp" -xf "$CACHE"/deb.tmp/usr/src/linux-source-7.2.tar.xz --strip-components=1
rm -rf "$CACHE/deb.tmp"
basename "$deb" | sed 's/^linux-source-7.2_\(.*\)_all.deb$/\1/' >"$CACHE/src.tmp/.ksm-rs-debver"
step "recording the pristine tree in git (once)"
(
	cd "$CACHE/src.tmp"
	git init -q -b work
	git add -A -f .
	git -c user.name=ksm-rs -c user.email=ksm-rs@localhost commit -q -m "Linux $(make -s kernelversion) ($(cat .ksm-rs-debver))"
	git tag pristine
) >&2
mv "$CACHE/src.tmp" "$CACHE/src"
touch "$CACHE/src/.ksm-rs-ready"
echo "$CACHE/src"
