// SPDX-License-Identifier: GPL-2.0
/*
 * ksm-rs-merge-all PROGRAM [ARG...]: runs PROGRAM with PR_SET_MEMORY_MERGE=1,
 * so that all of its anonymous memory, and that of every process it forks or
 * execs, is KSM-mergeable while it runs. The prctl sets MMF_VM_MERGE_ANY on
 * this mm; mm_init() copies it (part of MMF_INIT_LEGACY_MASK) into the mm of
 * a fork and into the new mm of execve, where ksm_execve() registers the new
 * mm with KSM before the program's first mapping. Lets the `make test`
 * merge-everything pass run upstream selftests unmodified on merged memory.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif
#ifndef PR_GET_MEMORY_MERGE
#define PR_GET_MEMORY_MERGE 68
#endif

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PROGRAM [ARG...]\n", argv[0]);
		return 2;
	}
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
		fprintf(stderr, "ksm-rs-merge-all: PR_SET_MEMORY_MERGE: %s\n", strerror(errno));
		return 1;
	}
	/* A pass that silently merged nothing would prove nothing. */
	if (prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != 1) {
		fprintf(stderr, "ksm-rs-merge-all: PR_GET_MEMORY_MERGE is not 1 after setting it\n");
		return 1;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "ksm-rs-merge-all: %s: %s\n", argv[1], strerror(errno));
	return 127;
}
