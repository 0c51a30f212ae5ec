// SPDX-License-Identifier: GPL-2.0
/*
 * ksm-rs-fake-qemu -enable-kvm -m MIB [-sharers N]: a stand-in for a QEMU
 * guest, as ksmtuned sees one. ksmtuned counts the memory "committed to
 * qemu" as the resident size (ps -o rsz) of every process whose command
 * line matches '^qemu-system.*-enable-kvm' (pgrep -f), so this program
 * re-executes itself with argv[0] "qemu-system-x86_64" and the rest of its
 * arguments unchanged, then maps MIB MiB of anonymous memory, marks it
 * MADV_MERGEABLE (as QEMU does with guest RAM by default, mem-merge=on) and
 * writes every page.
 *
 * Every page gets contents of its own, so that ksmd, which ksmtuned starts,
 * scans the memory but merges nothing: free memory then stays where the
 * test put it, and ksmtuned's decisions do not depend on how far ksmd got.
 *
 * With -sharers N, N - 1 children are forked after the memory is written:
 * they map the same pages (copy-on-write, never written again), so the
 * committed memory ksmtuned adds up is N times what is really used. That is
 * how the test makes "much committed, plenty free".
 *
 * Prints "ready" once every process holds the memory; on SIGTERM kills the
 * children, waits for them and exits, so that the memory is free when the
 * caller's wait returns.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define NAME "qemu-system-x86_64"
#define MAX_SHARERS 16

int main(int argc, char **argv)
{
	pid_t kids[MAX_SHARERS];
	long mib = 0, sharers = 1, i;
	size_t len, off;
	sigset_t set;
	char *mem;
	int sig;

	if (strcmp(argv[0], NAME)) {
		argv[0] = NAME;
		execv("/proc/self/exe", argv);
		perror("execv /proc/self/exe");
		return 1;
	}
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-m") && i + 1 < argc)
			mib = atol(argv[++i]);
		else if (!strcmp(argv[i], "-sharers") && i + 1 < argc)
			sharers = atol(argv[++i]);
	}
	if (mib <= 0 || sharers < 1 || sharers > MAX_SHARERS) {
		fprintf(stderr, "usage: ksm-rs-fake-qemu -enable-kvm -m MIB [-sharers 1..%d]\n",
			MAX_SHARERS);
		return 2;
	}

	len = (size_t)mib << 20;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	/*
	 * THP makes writing a GiB under TCG take seconds rather than a minute
	 * of page faults; KSM scans (and would split) huge pages all the same.
	 */
	madvise(mem, len, MADV_HUGEPAGE);
	if (madvise(mem, len, MADV_MERGEABLE)) {
		perror("madvise(MADV_MERGEABLE)");
		return 1;
	}
	for (off = 0; off < len; off += 4096) {
		unsigned long *p = (unsigned long *)(mem + off);

		p[0] = off;
		p[1] = (unsigned long)getpid();
	}

	/* SIGTERM is waited for, not handled: block it before forking. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (i = 0; i < sharers - 1; i++) {
		kids[i] = fork();
		if (kids[i] < 0) {
			perror("fork");
			return 1;
		}
		if (!kids[i]) {
			/* Never outlive the parent, whatever kills it. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1)
				_exit(0);
			for (;;)
				pause();
		}
	}
	printf("ready: %ld MiB, %ld process(es)\n", mib, sharers);
	fflush(stdout);

	sigwait(&set, &sig);
	for (i = 0; i < sharers - 1; i++)
		kill(kids[i], SIGKILL);
	for (i = 0; i < sharers - 1; i++)
		waitpid(kids[i], NULL, 0);
	return 0;
}
