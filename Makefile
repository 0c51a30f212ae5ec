# SPDX-License-Identifier: GPL-2.0
#
# ksm-rs: Kernel Samepage Merging in Rust. This Makefile drives the work on
# the project (it is not the kernel's top-level Makefile):
#
#   make run      [KSM=rust|c]      boot a kernel and show KSM merging a workload
#   make test     [KSM=c|rust] [FLAVOUR=debug]   what CI runs first
#   make test-debug   KSM=rust FLAVOUR=debug suites and a 2-minute stress: CI's second stage
#   make vm       KSM=rust|c [FLAVOUR=debug] CMD='...' [FILES=dir] [MEM=2G] [SMP=2] [TIMEOUT=s] [VMLINUX=path]
#   make bench    [BENCH_REPS=3] [BENCH_ARGS=quick]   C and Rust side by side
#   make stress   [KSM=rust|c] [FLAVOUR=debug] [STRESS_SECONDS=600] [FAULTS=3]
#   make kernel   [KSM=...] [FLAVOUR=...]   only build vmlinux
#   make setup    toolchain and kernel source
#   make patches  git format-patch series of the project against the kernel
#   make rustfmt  format the Rust sources with the kernel's rustfmt config
#
# Caches (kernel source, build trees, toolchain pieces, logs) live in
# $(XDG_CACHE_HOME)/ksm-rs, default ~/.cache/ksm-rs; KSRC=/path uses an
# existing kernel tree instead of Debian's linux-source-7.2.

S := scripts/ksm-rs
# CMD reaches the guest shell verbatim: make must not expand its `$`.
override CMD := $(value CMD)
export KSM FLAVOUR CMD FILES MEM SMP TIMEOUT ACCEL KSRC VMLINUX STRESS_SECONDS FAULTS STRESS_ARGS

.PHONY: help setup kernel vm run test test-debug bench stress patches rustfmt
help:
	@sed -n '3,19p' Makefile | sed 's/^# \{0,1\}//'

setup:
	@$(S)/setup-toolchain.sh && $(S)/prepare-tree.sh >/dev/null

kernel:
	@$(S)/build-kernel.sh $(or $(KSM),rust) $(or $(FLAVOUR),base) >/dev/null

# make exits 2 whenever a recipe fails; `make vm` promises CMD's status.
vm:
	@$(S)/vm.sh || exec $(S)/exit-status.sh $$? $(MAKELEVEL)

run:
	@CMD='ksm-rs-run 4 64 75' $(S)/vm.sh

test:
	@$(S)/test.sh

test-debug:
	@KSM=rust FLAVOUR=debug TEST_BOTH=0 TEST_MERGEALL=0 TEST_STRESS=120 $(S)/test.sh

bench:
	@$(S)/bench.sh

stress:
	@$(S)/stress.sh || exec $(S)/exit-status.sh $$? $(MAKELEVEL)

patches:
	@$(S)/patches.sh

rustfmt:
	@$(S)/rustfmt.sh
