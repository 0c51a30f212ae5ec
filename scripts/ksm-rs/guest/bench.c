// SPDX-License-Identifier: GPL-2.0
/*
 * ksm-rs-bench-tool: the workloads of `make bench` that the upstream
 * ksm_tests do not cover, run in the test VM on either KSM implementation.
 * Every result is printed as one line
 *
 *	### bench: KEY VALUE UNIT
 *
 * and time series as "### series: NAME SECONDS VALUE".
 *
 *   scan SIZE_MIB SMART          ksmd CPU per GiB per full scan over SIZE_MIB
 *                                of unique (random) pages, smart_scan=SMART;
 *                                with SMART=0 also the floor: one userspace
 *                                read pass and one hash pass over the same
 *                                memory.
 *   converge NPROC SIZE_MIB DUP VOLATILE
 *                                NPROC processes of SIZE_MIB, DUP % of their
 *                                pages equal across processes, VOLATILE % of
 *                                those rewritten all the time: seconds until
 *                                pages_sharing reaches 95 % of what can be
 *                                shared, ksmd CPU to get there, slab bytes
 *                                per tracked page at the end.
 *   merge SIZE_MIB PAGES SLEEP   seconds to merge SIZE_MIB of equal pages at
 *                                pages_to_scan=PAGES, sleep_millisecs=SLEEP.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KSM "/sys/kernel/mm/ksm/"
#define MIB (1024UL * 1024)

static long page_size;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "ksm-rs-bench-tool: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	exit(1);
}

static unsigned long ksm_read(const char *name)
{
	char path[256];
	unsigned long v;
	FILE *f;

	snprintf(path, sizeof(path), KSM "%s", name);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%lu", &v) != 1)
		die("cannot read %s\n", path);
	fclose(f);
	return v;
}

static void ksm_write(const char *name, unsigned long v)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), KSM "%s", name);
	f = fopen(path, "w");
	if (!f || fprintf(f, "%lu", v) < 0 || fclose(f))
		die("cannot write %lu to %s: %s\n", v, path, strerror(errno));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ksmd's CPU time in seconds (utime + stime, clock ticks). */
static double ksmd_cpu(void)
{
	static char path[300];
	unsigned long ut, st;
	char buf[1024], *p;
	FILE *f;

	if (!path[0]) {
		struct dirent *d;
		DIR *dir = opendir("/proc");

		while (dir && (d = readdir(dir))) {
			char comm[64] = "";

			snprintf(buf, sizeof(buf), "/proc/%s/comm", d->d_name);
			f = fopen(buf, "r");
			if (!f)
				continue;
			if (fgets(comm, sizeof(comm), f) && !strcmp(comm, "ksmd\n"))
				snprintf(path, sizeof(path), "/proc/%s/stat", d->d_name);
			fclose(f);
		}
		if (dir)
			closedir(dir);
		if (!path[0])
			die("no ksmd\n");
	}
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f))
		die("cannot read %s\n", path);
	fclose(f);
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		die("cannot parse %s\n", path);
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

/* Slab and vmalloc memory in use, in bytes, from /proc/meminfo. */
static double kernel_meta_bytes(void)
{
	char line[256];
	double sum = 0;
	unsigned long kb;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Slab: %lu kB", &kb) == 1 ||
		    sscanf(line, "VmallocUsed: %lu kB", &kb) == 1)
			sum += kb * 1024.0;
	}
	if (f)
		fclose(f);
	return sum;
}

static uint64_t rng = 88172645463325252ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static char *map(size_t size)
{
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap %zu: %s\n", size, strerror(errno));
	/* Pages, not THPs: the same layout on both implementations. */
	madvise(p, size, MADV_NOHUGEPAGE);
	return p;
}

static void fill_random(char *p, size_t size)
{
	uint64_t *w = (uint64_t *)p;
	size_t i;

	for (i = 0; i < size / 8; i++)
		w[i] = next_rand();
}

/* Fills page @i of @p with pattern @pat (every byte). */
static void fill_pattern(char *page, uint64_t pat)
{
	uint64_t *w = (uint64_t *)page;
	long i;

	for (i = 0; i < page_size / 8; i++)
		w[i] = pat * 0x9e3779b97f4a7c15ULL + i;
}

/* Waits until full_scans moved @n times past its current value. */
static void wait_scans(unsigned long n, double timeout)
{
	unsigned long start = ksm_read("full_scans");
	double t0 = now();

	while (ksm_read("full_scans") < start + n) {
		if (now() - t0 > timeout)
			die("timeout waiting for %lu full scans\n", n);
		usleep(2000);
	}
}

static void ksm_setup(unsigned long pages, unsigned long sleep_ms, int smart)
{
	ksm_write("run", 2);
	ksm_write("pages_to_scan", pages);
	ksm_write("sleep_millisecs", sleep_ms);
	ksm_write("smart_scan", smart);
	ksm_write("merge_across_nodes", 1);
	ksm_write("max_page_sharing", 256);
	ksm_write("use_zero_pages", 0);
}

/* xxh64 of one block, for the hash floor. */
static uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

#define P1 11400714785074694791ULL
#define P2 14029467366897019727ULL
#define P3 1609587929392839161ULL
#define P4 9650029242287828579ULL
#define P5 2870177450012600261ULL

static uint64_t round64(uint64_t acc, uint64_t in)
{
	acc += in * P2;
	return rotl(acc, 31) * P1;
}

static uint64_t merge64(uint64_t acc, uint64_t v)
{
	acc ^= round64(0, v);
	return acc * P1 + P4;
}

static uint64_t xxh64(const void *buf, size_t len)
{
	const uint64_t *p = buf, *end = p + len / 8;
	uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = -P1, h;

	while (p + 4 <= end) {
		v1 = round64(v1, p[0]);
		v2 = round64(v2, p[1]);
		v3 = round64(v3, p[2]);
		v4 = round64(v4, p[3]);
		p += 4;
	}
	h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
	h = merge64(merge64(merge64(merge64(h, v1), v2), v3), v4);
	h += len;
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	return h ^ (h >> 32);
}

static int cmd_scan(size_t mib, int smart)
{
	size_t size = mib * MIB;
	char *p = map(size);
	volatile uint64_t sink = 0;
	double c0, c1, t0, per_gib = (double)1024 / mib;
	size_t i;

	ksm_setup(10000, 0, smart);
	fill_random(p, size);
	if (madvise(p, size, MADV_MERGEABLE))
		die("MADV_MERGEABLE: %s\n", strerror(errno));
	ksm_write("run", 1);
	/* The first full scan creates the items: measure the next two. */
	wait_scans(1, 3600);
	c0 = ksmd_cpu();
	t0 = now();
	wait_scans(2, 3600);
	c1 = ksmd_cpu();
	printf("### bench: %s %.4f s\n", smart ? "scan_cpu_per_gib_smart" :
	       "scan_cpu_per_gib", (c1 - c0) / 2 * per_gib);
	printf("### bench: %s %.4f s\n", smart ? "scan_wall_per_gib_smart" :
	       "scan_wall_per_gib", (now() - t0) / 2 * per_gib);
	ksm_write("run", 2);
	if (!smart) {
		double r0, r1, h1;

		/* The floor: one read pass and one hash pass from userspace. */
		uint64_t acc = 0;

		r0 = cpu_now();
		for (i = 0; i < size / 8; i += 1)
			acc += ((uint64_t *)p)[i];
		sink = acc;
		r1 = cpu_now();
		for (i = 0; i < size; i += page_size)
			sink += xxh64(p + i, page_size);
		h1 = cpu_now();
		printf("### bench: read_cpu_per_gib %.4f s\n", (r1 - r0) * per_gib);
		printf("### bench: hash_cpu_per_gib %.4f s\n", (h1 - r1) * per_gib);
		printf("### bench: scan_read_passes %.2f passes\n",
		       (c1 - c0) / 2 / (r1 - r0));
	}
	munmap(p, size);
	return 0;
}

static void converge_child(size_t size, int dup, int vol, int id, int ready)
{
	long pages = size / page_size, dups = pages * dup / 100;
	long vols = dups * vol / 100, i, round = 0;
	char *p = map(size);

	rng += id * 7919;
	/* Duplicates first: page i holds pattern i in every process. */
	for (i = 0; i < pages; i++) {
		if (i < dups)
			fill_pattern(p + i * page_size, i);
		else
			fill_random(p + i * page_size, page_size);
	}
	if (madvise(p, size, MADV_MERGEABLE))
		die("MADV_MERGEABLE: %s\n", strerror(errno));
	if (write(ready, "r", 1) != 1)
		die("ready pipe\n");
	/* Rewrite the volatile part of the duplicates, a slice every 20 ms. */
	for (;;) {
		long slice = vols / 10 + 1, start = (round++ % 10) * slice;

		for (i = start; i < start + slice && i < vols; i++)
			((uint64_t *)(p + i * page_size))[0] = next_rand();
		usleep(20000);
	}
}

static int cmd_converge(int nproc, size_t mib, int dup, int vol)
{
	long pages = mib * MIB / page_size, dups = pages * dup / 100;
	long vols = dups * vol / 100, possible, target;
	double meta0, t0, c0, reached = -1, cpu = 0, last = -1;
	int fds[2], i;
	pid_t *pids = calloc(nproc, sizeof(*pids));
	char c;

	/* Stable duplicates: one KSM page each, shared by every process. */
	possible = (dups - vols) * (nproc - 1);
	target = possible * 95 / 100;
	ksm_setup(10000, 0, 1);
	meta0 = kernel_meta_bytes();
	if (pipe(fds))
		die("pipe\n");
	for (i = 0; i < nproc; i++) {
		pids[i] = fork();
		if (!pids[i])
			converge_child(mib * MIB, dup, vol, i, fds[1]);
	}
	for (i = 0; i < nproc; i++)
		if (read(fds[0], &c, 1) != 1)
			die("workload failed\n");
	printf("### bench: converge_possible %ld pages\n", possible);
	c0 = ksmd_cpu();
	t0 = now();
	ksm_write("run", 1);
	for (;;) {
		double t = now() - t0;
		unsigned long sharing = ksm_read("pages_sharing");

		if (t - last >= 1.0) {
			printf("### series: converge %.1f %lu\n", t, sharing);
			last = t;
		}
		if (reached < 0 && (long)sharing >= target) {
			reached = t;
			cpu = ksmd_cpu() - c0;
			printf("### series: converge %.1f %lu\n", t, sharing);
			/* One more full scan for the metadata to settle. */
			wait_scans(1, 3600);
			break;
		}
		if (t > 3600)
			break;
		usleep(100000);
	}
	if (reached >= 0) {
		unsigned long items = ksm_read("pages_shared") +
			ksm_read("pages_sharing") + ksm_read("pages_unshared") +
			ksm_read("pages_volatile");

		printf("### bench: converge_seconds %.2f s\n", reached);
		printf("### bench: converge_ksmd_cpu %.2f s\n", cpu);
		printf("### bench: metadata_bytes_per_page %.1f bytes\n",
		       (kernel_meta_bytes() - meta0) / items);
		printf("### bench: tracked_pages %lu pages\n", items);
	} else {
		printf("### bench: converge_seconds fail\n");
	}
	for (i = 0; i < nproc; i++)
		kill(pids[i], SIGKILL);
	while (wait(NULL) > 0)
		;
	ksm_write("run", 2);
	return reached < 0;
}

static int cmd_merge(size_t mib, unsigned long pages, unsigned long sleep_ms)
{
	size_t size = mib * MIB, i;
	/* Every page merged but a straggler or two (a raised reference count). */
	long expect = size / page_size * 99 / 100;
	char *p = map(size);
	double t0;

	ksm_setup(pages, sleep_ms, 1);
	for (i = 0; i < size; i += page_size)
		fill_pattern(p + i, 1);
	t0 = now();
	if (madvise(p, size, MADV_MERGEABLE))
		die("MADV_MERGEABLE: %s\n", strerror(errno));
	ksm_write("run", 1);
	/* max_page_sharing 256: one KSM page per 256 mappings. */
	while ((long)(ksm_read("pages_sharing") + ksm_read("pages_shared")) < expect) {
		if (now() - t0 > 3600)
			die("merge timeout\n");
		usleep(5000);
	}
	printf("### bench: merge_default %.3f MiB/s\n", mib / (now() - t0));
	ksm_write("run", 2);
	ksm_write("pages_to_scan", 100);
	ksm_write("sleep_millisecs", 20);
	munmap(p, size);
	return 0;
}

int main(int argc, char **argv)
{
	page_size = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "scan"))
		return cmd_scan(atol(argv[2]), atoi(argv[3]));
	if (argc == 6 && !strcmp(argv[1], "converge"))
		return cmd_converge(atoi(argv[2]), atol(argv[3]), atoi(argv[4]),
				    atoi(argv[5]));
	if (argc == 5 && !strcmp(argv[1], "merge"))
		return cmd_merge(atol(argv[2]), atol(argv[3]), atol(argv[4]));
	fprintf(stderr, "usage: ksm-rs-bench-tool scan SIZE_MIB SMART | converge NPROC SIZE_MIB DUP VOLATILE | merge SIZE_MIB PAGES SLEEP\n");
	return 2;
}
