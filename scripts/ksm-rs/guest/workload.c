// SPDX-License-Identifier: GPL-2.0
/*
 * ksm-rs-workload: NPROC processes each map SIZE MiB of anonymous memory
 * marked MADV_MERGEABLE, filled so that most pages are identical (a few
 * patterns repeated) and the rest unique, then sleep until killed.
 *
 * usage: ksm-rs-workload NPROC SIZE_MIB DUP_PERCENT
 *
 * Prints "ready" once every process has filled its memory. SIGTERM to the
 * first process ends them all.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig)
{
	signal(SIGTERM, SIG_DFL);
	kill(0, SIGKILL);
}

static void child(size_t size, int dup_percent, int id, int ready_fd)
{
	long psize = sysconf(_SC_PAGESIZE);
	size_t npages = size / psize, i;
	char *map = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (map == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	if (madvise(map, size, MADV_MERGEABLE)) {
		perror("madvise(MADV_MERGEABLE)");
		exit(1);
	}
	for (i = 0; i < npages; i++) {
		char *p = map + i * psize;

		if ((int)(i % 100) < dup_percent) {
			/* One of 8 patterns shared by every process. */
			memset(p, 'a' + (int)(i % 8), psize);
		} else {
			/* Unique to this page of this process. */
			memset(p, 0, psize);
			snprintf(p, psize, "process %d page %zu", id, i);
		}
	}
	if (write(ready_fd, "", 1) != 1)
		exit(1);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	int nproc, dup, i, fds[2];
	size_t size;
	char c;

	if (argc != 4) {
		fprintf(stderr, "usage: %s NPROC SIZE_MIB DUP_PERCENT\n", argv[0]);
		return 2;
	}
	nproc = atoi(argv[1]);
	size = (size_t)atol(argv[2]) << 20;
	dup = atoi(argv[3]);
	/* One process group, so that SIGTERM to the parent ends all. */
	setpgid(0, 0);
	signal(SIGTERM, on_term);
	if (pipe(fds)) {
		perror("pipe");
		return 1;
	}
	for (i = 0; i < nproc; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0)
			child(size, dup, i, fds[1]);
	}
	close(fds[1]);
	for (i = 0; i < nproc; i++) {
		if (read(fds[0], &c, 1) != 1) {
			fprintf(stderr, "workload: a process failed\n");
			kill(0, SIGKILL);
		}
	}
	printf("ready\n");
	fflush(stdout);
	/* Children run until SIGTERM. */
	while (wait(NULL) > 0)
		;
	return 0;
}
