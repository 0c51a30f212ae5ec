// SPDX-License-Identifier: GPL-2.0
/*
 * ksm-rs-outputs-tool ROLE: one process of ksm-rs-parity-outputs' workload,
 * with a deterministic page layout at a fixed address, so that its smaps
 * lines are the same on every boot. ROLE is:
 *
 *   A  256 pages at 0x100000000 made mergeable with MADV_MERGEABLE:
 *      0-99 pattern X, 100-149 pattern Y, 150-179 zero-filled, 180-255
 *      unique; pages 20-29 then made read-only (mprotect), which splits
 *      the VMA in three.
 *   B  PR_SET_MEMORY_MERGE, then 128 pages at 0x200000000: 0-49 pattern X,
 *      50-79 pattern Z, 80-99 zero-filled, 100-127 unique; its other VMAs
 *      (text, data, heap, stack) are made unmergeable again so that only
 *      the region counts. Then it forks a child, C, that shares all of
 *      them and waits to be killed.
 *
 * Then it reads commands from stdin, one a line, and answers each with
 * "done CMD ARGS rc=N" on stdout:
 *
 *   unmerge FIRST COUNT   MADV_UNMERGEABLE of pages [FIRST, FIRST + COUNT)
 *   merge FIRST COUNT     MADV_MERGEABLE of the same
 *   write FIRST COUNT     writes 8 bytes into each page, making it unique
 *
 * and exits at end of input. Only read(2)/write(2): no stdio buffers on the
 * heap.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PAGE 4096UL

static char *region;
static unsigned long npages;
static char role;

static void say(const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = write(1, s, n);

		if (w <= 0)
			_exit(3);
		s += w;
		n -= w;
	}
}

static void die(const char *what)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "error %s: %s\n", what, strerror(errno));
	say(buf);
	_exit(1);
}

/* Fills page i with a pattern: 'X', 'Y', 'Z', 0 (zero), or 'U' (unique). */
static void fill(unsigned long i, char pattern)
{
	uint64_t *p = (uint64_t *)(region + i * PAGE);
	unsigned long j;

	if (!pattern) {
		memset(p, 0, PAGE);
		return;
	}
	for (j = 0; j < PAGE / 8; j++)
		p[j] = 0x0101010101010101ULL * (unsigned char)pattern + j;
	if (pattern == 'U') {
		p[0] = ((uint64_t)role << 32) | i;
		p[1] = 0x756e69717565ULL;
	}
}

static void map_region(unsigned long addr, unsigned long n)
{
	npages = n;
	region = mmap((void *)addr, n * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (region == MAP_FAILED)
		die("mmap");
	if (region != (char *)addr) {
		errno = EEXIST;
		die("mmap address");
	}
}

/* Makes every VMA outside the region unmergeable (B's noise). */
static void unmerge_others(void)
{
	static char maps[65536];
	ssize_t len = 0, r;
	int fd = open("/proc/self/maps", O_RDONLY);
	char *line, *next;

	if (fd < 0)
		die("open maps");
	while ((r = read(fd, maps + len, sizeof(maps) - 1 - len)) > 0)
		len += r;
	close(fd);
	maps[len] = 0;
	for (line = maps; *line; line = next) {
		unsigned long start, end;

		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		if (sscanf(line, "%lx-%lx", &start, &end) != 2)
			continue;
		if (start == (unsigned long)region)
			continue;
		/* vvar, vdso and vsyscall refuse: nothing to undo there. */
		madvise((void *)start, end - start, MADV_UNMERGEABLE);
	}
}

static int command(char *cmd)
{
	unsigned long first, count, i;
	char verb[16];

	if (sscanf(cmd, "%15s %lu %lu", verb, &first, &count) != 3 ||
	    first + count > npages)
		return -EINVAL;
	if (!strcmp(verb, "unmerge") || !strcmp(verb, "merge")) {
		int advice = verb[0] == 'u' ? MADV_UNMERGEABLE : MADV_MERGEABLE;

		if (madvise(region + first * PAGE, count * PAGE, advice))
			return -errno;
		return 0;
	}
	if (!strcmp(verb, "write")) {
		for (i = first; i < first + count; i++)
			*(volatile uint64_t *)(region + i * PAGE + 16) =
				(1ULL << 63) | ((uint64_t)role << 32) | i;
		return 0;
	}
	return -EINVAL;
}

int main(int argc, char **argv)
{
	char line[128], out[192];
	size_t len = 0;
	unsigned long i;

	if (argc != 2 || (argv[1][0] != 'A' && argv[1][0] != 'B')) {
		say("usage: ksm-rs-outputs-tool A|B\n");
		return 2;
	}
	role = argv[1][0];
	if (role == 'A') {
		map_region(0x100000000UL, 256);
		for (i = 0; i < npages; i++)
			fill(i, i < 100 ? 'X' : i < 150 ? 'Y' : i < 180 ? 0 : 'U');
		if (madvise(region, npages * PAGE, MADV_MERGEABLE))
			die("madvise");
		if (mprotect(region + 20 * PAGE, 10 * PAGE, PROT_READ))
			die("mprotect");
		say("ready\n");
	} else {
		pid_t child;

		if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
			die("PR_SET_MEMORY_MERGE");
		map_region(0x200000000UL, 128);
		for (i = 0; i < npages; i++)
			fill(i, i < 50 ? 'X' : i < 80 ? 'Z' : i < 100 ? 0 : 'U');
		unmerge_others();
		/* C's exit is a step: no zombie left behind. */
		signal(SIGCHLD, SIG_IGN);
		child = fork();
		if (child < 0)
			die("fork");
		if (!child) {
			/* C: shares B's pages until it is killed. */
			for (;;)
				pause();
		}
		snprintf(out, sizeof(out), "ready child %d\n", child);
		say(out);
	}
	for (;;) {
		ssize_t r = read(0, line + len, 1);

		if (r <= 0)
			break;
		if (line[len] != '\n' && len < sizeof(line) - 2) {
			len++;
			continue;
		}
		line[len] = 0;
		len = 0;
		snprintf(out, sizeof(out), "done %s rc=%d\n", line, command(line));
		say(out);
	}
	return 0;
}
