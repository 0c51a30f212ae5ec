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
 *   thp_passes NTHP [TIMEOUT]    NTHP THPs (2 MiB, MADV_HUGEPAGE, checked in
 *                                /proc/self/smaps), every 4 KiB page of a THP
 *                                of the same contents: how many full scans
 *                                until /proc/self/ksm_merging_pages counts
 *                                every page, smart_scan=1, one batch a full
 *                                scan. Three layouts: each THP of its own
 *                                contents (merge_thp_passes), all THPs of one
 *                                (merge_thp_passes_same), and every page of
 *                                its own but each THP present twice: pages of
 *                                two THPs merged (merge_thp_passes_pairs).
 *
 * The worst cases: what an adversary (page contents, sharers, VMAs, address
 * space) can make ksmd or the rest of mm pay. Each gives up after TIMEOUT
 * seconds (default 600) and prints "### bench: KEY fail" rather than hang.
 *
 *   unshare NPROC SIZE_MIB [TIMEOUT]
 *                                max_page_sharing=1000000; NPROC processes of
 *                                SIZE_MIB filled with one byte, merged into
 *                                one KSM page (with a page of this process,
 *                                which keeps it alive), then rewritten page
 *                                by page, in turn, with ksmd stopped (run=0)
 *                                between two full scans: ksmd's wall time for
 *                                the two full scans after run=1, which drop
 *                                every mapping but one from the KSM page
 *                                (unshare_many_sharers).
 *   scan_pages collide|anyseed|random NPAGES [TIMEOUT]
 *                                ksmd CPU per full scan of NPAGES distinct
 *                                pages, unthrottled, smart_scan=0
 *                                (scan_cpu_collide_Nk, scan_cpu_anyseed_Nk,
 *                                scan_cpu_random_Nk); "collide" pages all
 *                                have the same 64-bit xxh64 with seed 0
 *                                (construction (a) of ksm_rs_collide.c),
 *                                "anyseed" pages the same xxh64 whatever the
 *                                seed but for a 2^-31 chance per correction
 *                                (construction (c)): checked here.
 *   merge_collide NPAGES [TIMEOUT]
 *   merge_collide_anyseed NPAGES [TIMEOUT]
 *                                NPAGES distinct colliding contents ("collide"
 *                                or "anyseed" pages), each in two pages:
 *                                seconds until all pairs are merged
 *                                (merge_collide, merge_anyseed).
 *   sparse SIZE_GIB SECONDS [TIMEOUT]
 *                                one MAP_NORESERVE mapping of SIZE_GIB with
 *                                one page populated: ksmd CPU per full scan,
 *                                unthrottled, over SECONDS (scan_cpu_sparse).
 *   pressure MODE PERCENT SECONDS CYCLES
 *                                memory pressure that comes and goes: a 32 MiB
 *                                mergeable area (half of it duplicates) is
 *                                there throughout; CYCLES times, SECONDS idle,
 *                                then a child writes PERCENT % of MemTotal of
 *                                identical mergeable pages (THPs, as
 *                                fake-qemu) and holds them SECONDS, then
 *                                SECONDS after it is gone. advisor_mode MODE
 *                                (pressure: interval 1 s, the other
 *                                advisor_pressure_* at ksmtuned's defaults;
 *                                none: ksmd always on), pages_to_scan 100,
 *                                sleep 20 ms: ksmd's CPU over it all and the
 *                                most pages_sharing seen (pressure_*, or
 *                                pressure_always_on_* for none).
 *   merge_now SIZE_MIB [TIMEOUT] two processes of SIZE_MIB each, of the same
 *                                contents (every page of its own): seconds
 *                                until pages_sharing counts 99 % of a
 *                                process's pages, first with one write of
 *                                /sys/kernel/mm/ksm/merge_now per process,
 *                                ksmd stopped (run=0; merge_now_seconds, "n/a"
 *                                where there is no merge_now: mm/ksm.c), then
 *                                with ksmd alone at the scan-time advisor's
 *                                defaults (advisor_mode=scan-time, default
 *                                tunables; merge_now_ksmd_seconds).
 *   rmap_vmas NVMAS [TIMEOUT]    one KSM page in a region of NVMAS one-page
 *                                VMAs (mprotect() of every other page) of one
 *                                anon_vma: milliseconds of one move_pages()
 *                                of it to the other NUMA node, the median of
 *                                5 moves (rmap_walk_many_vmas).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
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

/* xxh64 of @len bytes, a multiple of 32 (a page), as lib/xxhash.c. */
static uint64_t xxh64(const void *buf, size_t len, uint64_t seed)
{
	const uint64_t *p = buf, *end = p + len / 8;
	uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1, h;

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
			sink += xxh64(p + i, page_size, 0);
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

/* The worst cases. */

/* Prints the failure line of @key, then why, for bench-report.py. */
static void bench_fail(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("### bench: %s fail\n#   %s: ", key, key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* fork(), the child killed with its parent (a bench that died or gave up). */
static pid_t fork_child(void)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %s\n", strerror(errno));
	if (!pid)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	return pid;
}

/* Waits until full_scans moves past @from: its new value, 0 past @deadline. */
static unsigned long scan_boundary(unsigned long from, double deadline)
{
	unsigned long v;

	while ((v = ksm_read("full_scans")) == from) {
		if (now() > deadline)
			return 0;
		usleep(1000);
	}
	return v;
}

/*
 * ksmd's CPU seconds per full scan from the end of the scan in progress (the
 * warm-up) to the end of a later one, over at least @min_scans full scans and
 * @min_wall seconds; -1 past @deadline. *@scans: how many were measured.
 */
static double cpu_per_scan(unsigned long min_scans, double min_wall,
			   double deadline, unsigned long *scans)
{
	unsigned long f0, f;
	double c0, t0;

	f0 = scan_boundary(ksm_read("full_scans"), deadline);
	if (!f0)
		return -1;
	c0 = ksmd_cpu();
	t0 = now();
	f = f0;
	do {
		f = scan_boundary(f, deadline);
		if (!f)
			return -1;
	} while (f - f0 < min_scans || now() - t0 < min_wall);
	*scans = f - f0;
	return (ksmd_cpu() - c0) / *scans;
}

/* Large folios. */

/* This process's ksm_merging_pages. */
static long merging_pages(void)
{
	FILE *f = fopen("/proc/self/ksm_merging_pages", "r");
	long v = -1;

	if (!f || fscanf(f, "%ld", &v) != 1)
		die("cannot read /proc/self/ksm_merging_pages\n");
	fclose(f);
	return v;
}

/* AnonHugePages of the VMA that starts at @p, in kB; -1 if there is none. */
static long anon_huge_kb(void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	unsigned long s, e;
	char line[512];
	long kb = -1;
	int in = 0;

	while (f && fgets(line, sizeof(line), f)) {
		/* A VMA's first line; the others start with a field name. */
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			in = s == (unsigned long)p;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	if (f)
		fclose(f);
	return kb;
}

/* The layouts of thp_passes: which contents page @i of @pages has. */
enum thp_layout { THP_OWN, THP_SAME, THP_PAIRS };

static uint64_t thp_pattern(enum thp_layout layout, long i, long pages)
{
	long per_thp = 2 * MIB / page_size;

	switch (layout) {
	case THP_OWN:
		return 1 + i / per_thp;
	case THP_SAME:
		return 1;
	default:
		return 1000 + i % (pages / 2);
	}
}

/*
 * Full scans until @nthp THPs of @layout are merged: the number of full scans
 * after which ksm_merging_pages counts every page. A batch is one full scan
 * (pages_to_scan above the pages), and ksmd sleeps between two batches, so
 * the counters are read between two scans: the count does not depend on
 * timing. -1 and the failure printed when it is not measured.
 */
static long thp_passes(const char *key, long nthp, enum thp_layout layout,
		       double timeout)
{
	const size_t thp = 2 * MIB, size = nthp * thp;
	long pages = size / page_size, merged = -1, n, kb, passes = -1, i;
	unsigned long f0, f;
	char *raw, *p;
	double deadline;

	raw = mmap(NULL, size + thp, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap %zu: %s\n", size + thp, strerror(errno));
	/* 2 MiB aligned, the slack unmapped: the VMA is the area. */
	p = (char *)(((unsigned long)raw + thp - 1) & ~(thp - 1));
	if (p > raw)
		munmap(raw, p - raw);
	munmap(p + size, raw + thp - p);
	if (madvise(p, size, MADV_HUGEPAGE)) {
		bench_fail(key, "MADV_HUGEPAGE: %s\n", strerror(errno));
		goto out;
	}
	for (i = 0; i < pages; i++)
		fill_pattern(p + i * page_size, thp_pattern(layout, i, pages));
	kb = anon_huge_kb(p);
	if (kb != (long)(size / 1024)) {
		bench_fail(key, "%ld kB of %zu in THPs (AnonHugePages; transparent_hugepage/enabled not madvise or always?)\n",
			   kb, size / 1024);
		goto out;
	}
	deadline = now() + timeout;
	f0 = f = ksm_read("full_scans");
	if (madvise(p, size, MADV_MERGEABLE))
		die("MADV_MERGEABLE: %s\n", strerror(errno));
	ksm_write("run", 1);
	for (;;) {
		f = scan_boundary(f, deadline);
		if (!f) {
			bench_fail(key, "%ld of %ld pages merged after %lu full scans in %.0f s\n",
				   merged, pages, ksm_read("full_scans") - f0, timeout);
			goto out;
		}
		n = f - f0;
		merged = merging_pages();
		printf("#   %s: after %ld full scans: %ld of %ld pages merged, %ld kB in THPs, pages_sharing %lu\n",
		       key, n, merged, pages, anon_huge_kb(p), ksm_read("pages_sharing"));
		if (merged == pages) {
			passes = n;
			break;
		}
		if (n >= 50) {
			bench_fail(key, "%ld of %ld pages merged after %ld full scans\n", merged,
				   pages, n);
			goto out;
		}
	}
	/* The merge kept every page's contents. */
	for (i = 0; i < pages; i++) {
		uint64_t *w = (uint64_t *)(p + i * page_size);
		uint64_t pat = thp_pattern(layout, i, pages);

		if (w[0] != pat * 0x9e3779b97f4a7c15ULL ||
		    w[page_size / 8 - 1] != pat * 0x9e3779b97f4a7c15ULL + page_size / 8 - 1) {
			bench_fail(key, "page %ld changed by the merge\n", i);
			passes = -1;
			goto out;
		}
	}
	printf("### bench: %s %ld scans\n", key, passes);
out:
	munmap(p, size);
	ksm_write("run", 2);
	return passes;
}

static int cmd_thp_passes(long nthp, double timeout)
{
	int rc = 0;

	/* smart_scan as by default; ksmd sleeps 100 ms between two full scans. */
	ksm_setup(1000000, 100, 1);
	rc |= thp_passes("merge_thp_passes", nthp, THP_OWN, timeout) < 0;
	rc |= thp_passes("merge_thp_passes_same", nthp, THP_SAME, timeout) < 0;
	/* Two of each THP: an even number of THPs. */
	rc |= thp_passes("merge_thp_passes_pairs", nthp & ~1L, THP_PAIRS, timeout) < 0;
	ksm_write("pages_to_scan", 100);
	ksm_write("sleep_millisecs", 20);
	return rc;
}

static uint64_t rotr(uint64_t x, int r)
{
	return (x >> r) | (x << (64 - r));
}

/* The inverse of an odd @a modulo 2^64 (Newton; a * a == 1 mod 8). */
static uint64_t inverse64(uint64_t a)
{
	uint64_t x = a;
	int i;

	for (i = 0; i < 5; i++)
		x *= 2 - a * x;
	return x;
}

/*
 * Fills @page with contents of its own (the number @n, then pseudo-random
 * words) except for the last 32-byte stripe, chosen so that xxh64's four
 * lanes (seed 0) end at @target: all such pages have one 64-bit xxh64. A
 * lane's round, rotl(v + lane * P2, 31) * P1, is a bijection of the lane:
 * lane = (rotr(target * P1^-1, 31) - v) * P2^-1.
 */
static void fill_collide(char *page, uint64_t n, const uint64_t target[4])
{
	uint64_t *w = (uint64_t *)page, v[4] = { P1 + P2, P2, 0, -P1 };
	uint64_t inv1 = inverse64(P1), inv2 = inverse64(P2);
	long words = page_size / 8, i;
	int j;

	w[0] = n;
	for (i = 1; i < words - 4; i++)
		w[i] = next_rand();
	for (i = 0; i < words - 4; i += 4)
		for (j = 0; j < 4; j++)
			v[j] = round64(v[j], w[i + j]);
	for (j = 0; j < 4; j++)
		w[words - 4 + j] = (rotr(target[j] * inv1, 31) - v[j]) * inv2;
}

/* Fills @n pages at @p with fill_collide(), one target for all. */
static void fill_collide_pages(char *p, long n)
{
	uint64_t target[4];
	long i;
	int j;

	for (j = 0; j < 4; j++)
		target[j] = next_rand();
	for (i = 0; i < n; i++)
		fill_collide(p + i * page_size, i, target);
}

/*
 * Construction (c) of ksm_rs_collide.c, pages of one xxh64 whatever the
 * seed: one base page of pseudo-random words and variants of it corrected at
 * positions w < words - 4. A correction adds A = 2^33 * P2^-1 to word w,
 * which adds 2^33 to its lane's sum s = v + x * P2, +1 after rotl(s, 31) and
 * +P1 after the round (unless the top 31 bits of s are all ones: a 2^-31
 * chance for a random seed), and subtracts P1 * P2^-1 from word w + 4, the
 * same lane in the next stripe, which takes the P1 off again: the lanes, so
 * the xxh64, are the base page's for any seed. Corrections whose words do
 * not overlap (positions neither equal nor 4 apart) are independent. Page 0
 * is the base, then the pages of one correction (508 with 4 KiB pages), of
 * two, of three, the sets of positions in lexicographic order: distinct
 * sets change distinct sets of words, so the pages are distinct.
 */
static long anyseed_corrections[4];

/* The next set of @k positions below @npos after @pos (sorted); 0 at the end. */
static int next_positions(long *pos, int k, long npos)
{
	int i = k - 1, j;

	while (i >= 0 && pos[i] == npos - k + i)
		i--;
	if (i < 0)
		return 0;
	pos[i]++;
	for (j = i + 1; j < k; j++)
		pos[j] = pos[j - 1] + 1;
	return 1;
}

/* Whether the corrections at the sorted positions @pos touch distinct words. */
static int positions_apart(const long *pos, int k)
{
	int i, j;

	for (i = 0; i < k; i++)
		for (j = i + 1; j < k; j++)
			if (pos[j] - pos[i] == 4)
				return 0;
	return 1;
}

/* Fills @n pages at @p with the base page and its corrected variants. */
static void fill_anyseed_pages(char *p, long n)
{
	uint64_t add = (1ULL << 33) * inverse64(P2), sub = P1 * inverse64(P2);
	long words = page_size / 8, npos = words - 4, pos[3], i, j;
	uint64_t *w = (uint64_t *)p;
	int k, c;

	memset(anyseed_corrections, 0, sizeof(anyseed_corrections));
	for (j = 0; j < words; j++)
		w[j] = next_rand();
	anyseed_corrections[0] = 1;
	for (i = 1, k = 1; i < n && k <= 3; k++) {
		for (c = 0; c < k; c++)
			pos[c] = c;
		do {
			if (!positions_apart(pos, k))
				continue;
			w = (uint64_t *)(p + i * page_size);
			memcpy(w, p, page_size);
			for (c = 0; c < k; c++) {
				w[pos[c]] += add;
				w[pos[c] + 4] -= sub;
			}
			anyseed_corrections[k]++;
			i++;
		} while (i < n && next_positions(pos, k, npos));
	}
	if (i < n)
		die("anyseed: no more than %ld distinct pages\n", i);
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * A 64-bit hash of a page that is not xxh64 (whose collisions are the
 * point): sorts the pages to find equal ones, checks contents kept.
 */
static uint64_t page_sum(const char *page)
{
	const uint64_t *w = (const uint64_t *)page;
	uint64_t h = 0;
	long i;

	for (i = 0; i < page_size / 8; i++)
		h = rotl(h ^ mix64(w[i] + i), 29) * P1;
	return h;
}

struct page_key {
	uint64_t hash;
	long page;
};

static int page_key_cmp(const void *a, const void *b)
{
	const struct page_key *x = a, *y = b;

	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/*
 * Checks that the @n pages at @p have one xxh64 with seed 0 (mm/ksm.c's
 * checksum; ksm_rs's trees are keyed by an xxh64 with a seed drawn at boot)
 * and, with @anyseed, also with two random seeds on 1000 random pages (the
 * last page among them), and pairwise distinct contents; otherwise prints
 * @key's failure.
 */
static int check_collide(const char *key, char *p, long n, int anyseed)
{
	struct page_key *k = malloc(n * sizeof(*k));
	uint64_t h0 = xxh64(p, page_size, 0), h, seeds[2] = { 0, 0 };
	long i, j;
	int s;

	if (!k)
		die("out of memory\n");
	for (i = 0; i < n; i++) {
		h = xxh64(p + i * page_size, page_size, 0);
		if (h != h0) {
			bench_fail(key, "page %ld has xxh64 %016llx, page 0 %016llx\n",
				   i, (unsigned long long)h, (unsigned long long)h0);
			free(k);
			return -1;
		}
		/* A hash of another kind sorts them: equal contents, equal sums. */
		k[i].hash = page_sum(p + i * page_size);
		k[i].page = i;
	}
	for (s = 0; anyseed && s < 2; s++) {
		uint64_t hs;

		seeds[s] = mix64(next_rand() ^ (uint64_t)(now() * 1e9));
		hs = xxh64(p, page_size, seeds[s]);
		for (j = 0; j < 1000; j++) {
			i = j ? (long)(next_rand() % n) : n - 1;
			h = xxh64(p + i * page_size, page_size, seeds[s]);
			if (h != hs) {
				bench_fail(key, "seed %016llx: page %ld has xxh64 %016llx, page 0 %016llx\n",
					   (unsigned long long)seeds[s], i,
					   (unsigned long long)h, (unsigned long long)hs);
				free(k);
				return -1;
			}
		}
	}
	qsort(k, n, sizeof(*k), page_key_cmp);
	for (i = 1; i < n; i++) {
		if (k[i].hash == k[i - 1].hash &&
		    !memcmp(p + k[i].page * page_size, p + k[i - 1].page * page_size,
			    page_size)) {
			bench_fail(key, "pages %ld and %ld are equal\n", k[i - 1].page,
				   k[i].page);
			free(k);
			return -1;
		}
	}
	free(k);
	printf("#   %s: %ld distinct pages, all of xxh64 %016llx (seed 0)\n", key, n,
	       (unsigned long long)h0);
	if (anyseed)
		printf("#   %s: 1 base page, %ld of 1 correction, %ld of 2, %ld of 3; 1000 of them with seeds %016llx and %016llx: the base page's xxh64\n",
		       key, anyseed_corrections[1], anyseed_corrections[2],
		       anyseed_corrections[3], (unsigned long long)seeds[0],
		       (unsigned long long)seeds[1]);
	return 0;
}

static void unshare_child(size_t size, int id, int ready, int go, int done)
{
	char *p = map(size);
	size_t i;
	char c;

	memset(p, 0x5a, size);
	if (madvise(p, size, MADV_MERGEABLE))
		die("MADV_MERGEABLE: %s\n", strerror(errno));
	if (write(ready, "r", 1) != 1)
		die("ready pipe\n");
	if (read(go, &c, 1) != 1)
		_exit(1);
	/* Data of its own in every page: one COW fault each. */
	for (i = 0; i < size; i += page_size)
		*(uint64_t *)(p + i) = (uint64_t)id << 48 | i / page_size;
	if (write(done, "d", 1) != 1)
		die("done pipe\n");
	for (;;)
		pause();
}

static int cmd_unshare(int nproc, size_t mib, double timeout)
{
	const char *key = "unshare_many_sharers";
	unsigned long prev_run = ksm_read("run"), f0, f, merged = 0;
	/* The processes' pages and one of our own, which keeps the KSM page. */
	unsigned long total = nproc * mib * MIB / page_size + 1;
	char *keep = map(page_size);
	int ready[2], done[2], (*go)[2] = calloc(nproc, sizeof(*go)), i, rc = 1;
	pid_t *pids = calloc(nproc, sizeof(*pids));
	double t0, c0, deadline;
	char c;

	if (!go || !pids)
		die("out of memory\n");
	/*
	 * max_page_sharing only changes while no KSM page exists: after run=2.
	 * A batch ends with its full scan at the latest: while there are more
	 * pages to scan than pages, every batch is one full scan, and a write
	 * to run (which waits for ksmd's batch) stops ksmd between two scans.
	 */
	ksm_setup(1000000, 0, 0);
	ksm_write("max_page_sharing", 1000000);
	ksmd_cpu();
	if (pipe(ready) || pipe(done))
		die("pipe\n");
	for (i = 0; i < nproc; i++) {
		if (pipe(go[i]))
			die("pipe\n");
		pids[i] = fork_child();
		if (!pids[i])
			unshare_child(mib * MIB, i, ready[1], go[i][0], done[1]);
	}
	for (i = 0; i < nproc; i++)
		if (read(ready[0], &c, 1) != 1)
			die("workload failed\n");
	memset(keep, 0x5a, page_size);
	if (madvise(keep, page_size, MADV_MERGEABLE))
		die("MADV_MERGEABLE: %s\n", strerror(errno));
	t0 = now();
	deadline = t0 + timeout;
	ksm_write("run", 1);
	/* All in one KSM page: pages_shared 1, pages_sharing the rest. */
	while ((merged = ksm_read("pages_sharing") + ksm_read("pages_shared")) < total) {
		if (now() > deadline) {
			bench_fail(key, "%lu of %lu pages merged after %.0f s\n", merged,
				   total, timeout);
			goto out;
		}
		usleep(20000);
	}
	printf("#   %s: %lu pages merged in %.1f s, pages_shared %lu\n", key, total,
	       now() - t0, ksm_read("pages_shared"));
	/* Stop ksmd at the end of its full scan; run=0 keeps the KSM page. */
	ksm_write("run", 0);
	/* Batches of 10000 pages again, as for the other keys. */
	ksm_write("pages_to_scan", 10000);
	t0 = now();
	for (i = 0; i < nproc; i++) {
		if (write(go[i][1], "g", 1) != 1 || read(done[0], &c, 1) != 1)
			die("workload failed\n");
	}
	printf("#   %s: rewritten in %.1f s\n", key, now() - t0);
	f0 = f = ksm_read("full_scans");
	c0 = ksmd_cpu();
	t0 = now();
	deadline = t0 + timeout;
	ksm_write("run", 1);
	while (f < f0 + 2) {
		f = scan_boundary(f, deadline);
		if (!f) {
			bench_fail(key, "%lu of 2 full scans after the rewrite in %.0f s\n",
				   ksm_read("full_scans") - f0, timeout);
			goto out;
		}
	}
	printf("### bench: %s %.3f s\n", key, now() - t0);
	printf("#   %s: ksmd CPU %.2f s; then pages_shared %lu, pages_sharing %lu\n",
	       key, ksmd_cpu() - c0, ksm_read("pages_shared"), ksm_read("pages_sharing"));
	rc = 0;
out:
	for (i = 0; i < nproc; i++)
		kill(pids[i], SIGKILL);
	while (wait(NULL) > 0)
		;
	munmap(keep, page_size);
	ksm_write("run", 2);
	ksm_write("max_page_sharing", 256);
	ksm_write("run", prev_run);
	return rc;
}

static int cmd_scan_pages(const char *mode, long n, double timeout)
{
	int collide = !strcmp(mode, "collide"), anyseed = !strcmp(mode, "anyseed");
	size_t size = n * page_size;
	unsigned long scans = 0;
	char key[64], *p;
	double cpu;

	if (!collide && !anyseed && strcmp(mode, "random"))
		die("scan_pages: collide, anyseed or random, not %s\n", mode);
	snprintf(key, sizeof(key), "scan_cpu_%s_%ldk", mode, n / 1024);
	ksm_setup(10000, 0, 0);
	ksmd_cpu();
	p = map(size);
	if (collide || anyseed) {
		if (anyseed)
			fill_anyseed_pages(p, n);
		else
			fill_collide_pages(p, n);
		if (check_collide(key, p, n, anyseed)) {
			munmap(p, size);
			return 1;
		}
	} else {
		fill_random(p, size);
	}
	if (madvise(p, size, MADV_MERGEABLE))
		die("MADV_MERGEABLE: %s\n", strerror(errno));
	ksm_write("run", 1);
	/* The first full scan creates the items: measure later ones. */
	cpu = cpu_per_scan(2, 3, now() + timeout, &scans);
	if (cpu < 0) {
		bench_fail(key, "fewer than 3 full scans in %.0f s (full_scans %lu)\n",
			   timeout, ksm_read("full_scans"));
	} else {
		printf("### bench: %s %.4f s\n", key, cpu);
		printf("#   %s: over %lu full scans\n", key, scans);
	}
	/* Unmapped first: run=2 waits for ksmd's batch, which sees the mm go. */
	munmap(p, size);
	ksm_write("run", 2);
	return cpu < 0;
}

static int cmd_merge_collide(long n, double timeout, int anyseed)
{
	const char *key = anyseed ? "merge_anyseed" : "merge_collide";
	size_t size = n * page_size;
	char *p = map(2 * size);
	uint64_t *sums = malloc(n * sizeof(*sums));
	double t0, t = -1;
	long i;

	if (!sums)
		die("out of memory\n");
	ksm_setup(10000, 0, 0);
	if (anyseed)
		fill_anyseed_pages(p, n);
	else
		fill_collide_pages(p, n);
	if (check_collide(key, p, n, anyseed))
		goto out;
	for (i = 0; i < n; i++)
		sums[i] = page_sum(p + i * page_size);
	memcpy(p + size, p, size);
	t0 = now();
	if (madvise(p, 2 * size, MADV_MERGEABLE))
		die("MADV_MERGEABLE: %s\n", strerror(errno));
	ksm_write("run", 1);
	/* One KSM page per pair: pages_sharing n. */
	while (now() - t0 < timeout) {
		if ((long)ksm_read("pages_sharing") >= n) {
			t = now() - t0;
			break;
		}
		usleep(5000);
	}
	if (t < 0) {
		bench_fail(key, "pages_sharing %lu of %ld after %.0f s\n",
			   ksm_read("pages_sharing"), n, timeout);
		goto out;
	}
	/* Every page kept its contents, in both copies. */
	for (i = 0; i < n; i++)
		if (page_sum(p + i * page_size) != sums[i])
			break;
	if (i < n || memcmp(p, p + size, size)) {
		bench_fail(key, "contents changed by the merge (page %ld)\n", i);
		t = -1;
		goto out;
	}
	printf("### bench: %s %.3f s\n", key, t);
out:
	munmap(p, 2 * size);
	free(sums);
	ksm_write("run", 2);
	return t < 0;
}

static int cmd_sparse(unsigned long gib, double secs, double timeout)
{
	const char *key = "scan_cpu_sparse";
	size_t size = gib << 30;
	unsigned long scans = 0;
	double cpu = -1, c0;
	int fds[2];
	pid_t pid;
	char c;

	ksm_setup(10000, 0, 0);
	ksmd_cpu();
	if (pipe(fds))
		die("pipe\n");
	pid = fork_child();
	if (!pid) {
		char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p == MAP_FAILED) {
			fprintf(stderr, "ksm-rs-bench-tool: mmap %lu GiB: %s\n", gib,
				strerror(errno));
			_exit(1);
		}
		madvise(p, size, MADV_NOHUGEPAGE);
		if (madvise(p, size, MADV_MERGEABLE)) {
			fprintf(stderr, "ksm-rs-bench-tool: MADV_MERGEABLE: %s\n",
				strerror(errno));
			_exit(1);
		}
		/* One page, in the middle. */
		fill_random(p + size / 2, page_size);
		if (write(fds[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1) {
		bench_fail(key, "no MADV_MERGEABLE mapping of %lu GiB\n", gib);
		goto out;
	}
	c0 = ksmd_cpu();
	ksm_write("run", 1);
	cpu = cpu_per_scan(1, secs, now() + timeout, &scans);
	if (cpu < 0) {
		bench_fail(key, "no full scan in %.0f s (ksmd CPU %.1f s meanwhile)\n",
			   timeout, ksmd_cpu() - c0);
	} else {
		printf("### bench: %s %.4g s\n", key, cpu);
		printf("#   %s: %lu full scans in %.0f s\n", key, scans, secs);
	}
out:
	/* Killed first: run=2 waits for ksmd's batch, which sees the mm exit. */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ksm_write("run", 2);
	return cpu < 0;
}

/* move_pages() of one page to @node, or where it is for @node < 0. */
static long move_page(void *addr, int node)
{
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, &addr, node < 0 ? NULL : &node,
		    &status, node < 0 ? 0 : 1 << 2 /* MPOL_MF_MOVE_ALL */))
		return -errno;
	return status;
}

static int double_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int cmd_rmap_vmas(long nvmas, double timeout)
{
	const char *key = "rmap_walk_many_vmas";
	size_t size = nvmas * page_size;
	char *p = map(size), line[512];
	long i, vmas = 0, st, node;
	double t0, ms[5];
	int r, rc = 1;
	FILE *f;

	ksm_setup(10000, 0, 0);
	if (madvise(p, size, MADV_MERGEABLE))
		die("MADV_MERGEABLE: %s\n", strerror(errno));
	/* Faulted before the split: every VMA gets the one anon_vma. */
	fill_random(p, size);
	memcpy(p + 2 * page_size, p, page_size);
	for (i = 1; i < nvmas; i += 2)
		if (mprotect(p + i * page_size, page_size, PROT_READ))
			die("mprotect: %s\n", strerror(errno));
	f = fopen("/proc/self/maps", "r");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s >= (unsigned long)p &&
		    e <= (unsigned long)p + size)
			vmas++;
	}
	if (f)
		fclose(f);
	if (vmas != nvmas) {
		bench_fail(key, "%ld VMAs, not %ld\n", vmas, nvmas);
		goto out;
	}
	t0 = now();
	ksm_write("run", 1);
	/* Pages 0 and 2 are the only equal ones. */
	while (ksm_read("pages_shared") < 1 || ksm_read("pages_sharing") < 1) {
		if (now() - t0 > timeout) {
			bench_fail(key, "pages 0 and 2 not merged after %.0f s\n", timeout);
			goto out;
		}
		usleep(5000);
	}
	/* ksmd out of the way; run=0 keeps the KSM page. */
	ksm_write("run", 0);
	node = move_page(p, -1);
	if (node < 0) {
		bench_fail(key, "move_pages (query): %s\n", strerror(-node));
		goto out;
	}
	/* Back and forth between the two nodes. */
	for (r = 0; r < 5; r++) {
		t0 = now();
		st = move_page(p, !node);
		ms[r] = (now() - t0) * 1000;
		if (st != !node) {
			bench_fail(key, "move_pages to node %d: %s\n", !node,
				   st < 0 ? strerror(-st) : "not moved");
			goto out;
		}
		node = !node;
	}
	if (ksm_read("pages_shared") != 1 || memcmp(p, p + 2 * page_size, page_size)) {
		bench_fail(key, "not a KSM page of the same contents after the moves\n");
		goto out;
	}
	qsort(ms, 5, sizeof(ms[0]), double_cmp);
	printf("### bench: %s %.3f ms\n", key, ms[2]);
	printf("#   %s: %ld VMAs, 5 moves of %.3f to %.3f ms\n", key, nvmas, ms[0], ms[4]);
	/* For reference: an anonymous page of the region that is not KSM's. */
	node = move_page(p + 4 * page_size, -1);
	for (r = 0; r < 5 && node >= 0; r++) {
		t0 = now();
		st = move_page(p + 4 * page_size, !node);
		ms[r] = (now() - t0) * 1000;
		if (st != !node)
			break;
		node = !node;
	}
	if (r == 5) {
		qsort(ms, 5, sizeof(ms[0]), double_cmp);
		printf("#   %s: a page that is not KSM's: %.3f ms\n", key, ms[2]);
	}
	rc = 0;
out:
	munmap(p, size);
	ksm_write("run", 2);
	return rc;
}

static bool ksm_write_str(const char *name, const char *v)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), KSM "%s", name);
	f = fopen(path, "w");
	if (!f)
		return false;
	if (fputs(v, f) < 0) {
		fclose(f);
		return false;
	}
	return !fclose(f);
}

/* MemTotal in kB. */
static unsigned long mem_total_kb(void)
{
	char line[256];
	unsigned long kb = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %lu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* Waits @secs, noting the most pages_sharing seen in *@max_sharing. */
static void pressure_watch(double secs, unsigned long *max_sharing,
			   unsigned long *active_samples, unsigned long *samples)
{
	double end = now() + secs;

	while (now() < end) {
		unsigned long s = ksm_read("pages_sharing");

		if (s > *max_sharing)
			*max_sharing = s;
		if (!access(KSM "advisor_pressure_active", F_OK))
			*active_samples += ksm_read("advisor_pressure_active");
		(*samples)++;
		usleep(100000);
	}
}

static int cmd_pressure(const char *mode, long pct, double secs, int cycles)
{
	const char *key = strcmp(mode, "none") ? "pressure" : "pressure_always_on";
	unsigned long max_sharing = 0, active = 0, samples = 0;
	size_t area = 32 * MIB, hog = mem_total_kb() * 1024 / 100 * pct, off;
	double c0, t0, fill = 0;
	char *p;
	long i;
	int c;

	ksm_setup(100, 20, 1);
	if (!ksm_write_str("advisor_mode", "none"))
		die("advisor_mode none: %s\n", strerror(errno));
	ksm_write("pages_to_scan", 100);
	p = map(area);
	for (i = 0; i < (long)(area / page_size); i++)
		fill_pattern(p + i * page_size, i < (long)(area / page_size / 2) ? 1 : i);
	if (madvise(p, area, MADV_MERGEABLE))
		die("madvise: %s\n", strerror(errno));
	if (strcmp(mode, "none")) {
		if (!ksm_write_str("advisor_mode", mode)) {
			printf("### bench: %s_ksmd_cpu_ms n/a\n", key);
			printf("#   %s: advisor_mode %s: %s\n", key, mode, strerror(errno));
			munmap(p, area);
			return 0;
		}
		ksm_write("advisor_pressure_interval_millisecs", 1000);
	}
	c0 = ksmd_cpu();
	t0 = now();
	ksm_write("run", 1);
	for (c = 0; c < cycles; c++) {
		int pfd[2];
		double f0;
		pid_t pid;
		char b;

		pressure_watch(secs, &max_sharing, &active, &samples);
		if (pipe(pfd))
			die("pipe: %s\n", strerror(errno));
		f0 = now();
		pid = fork_child();
		if (!pid) {
			char *h = mmap(NULL, hog, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (h == MAP_FAILED)
				_exit(1);
			madvise(h, hog, MADV_HUGEPAGE);
			madvise(h, hog, MADV_MERGEABLE);
			for (off = 0; off < hog; off += page_size)
				fill_pattern(h + off, 7);
			if (write(pfd[1], "r", 1) != 1)
				_exit(1);
			for (;;)
				pause();
		}
		close(pfd[1]);
		if (read(pfd[0], &b, 1) != 1)
			die("the hog of %zu MiB died\n", hog / MIB);
		close(pfd[0]);
		fill += now() - f0;
		pressure_watch(secs, &max_sharing, &active, &samples);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pressure_watch(secs, &max_sharing, &active, &samples);
	}
	printf("### bench: %s_ksmd_cpu_ms %.0f ms\n", key, (ksmd_cpu() - c0) * 1000);
	printf("### bench: %s_pages_sharing %lu pages\n", key, max_sharing);
	printf("#   %s: %d cycles of %.0f s idle, %ld %% of MemTotal (%zu MiB) written in %.1f s on average and held %.0f s, %.0f s after; %.0f s in all; %lu of %lu samples active\n",
	       key, cycles, secs, pct, hog / MIB, fill / cycles, secs, secs, now() - t0,
	       active, samples);
	ksm_write("run", 2);
	if (strcmp(mode, "none"))
		ksm_write_str("advisor_mode", "none");
	ksm_write("pages_to_scan", 100);
	munmap(p, area);
	return 0;
}

/* Merging on demand. */

/*
 * A process holding @size bytes of MADV_MERGEABLE memory of the contents every
 * holder has (page i: pattern i + 1), until killed; *@addr: where.
 */
static pid_t holder(size_t size, unsigned long *addr)
{
	int fd[2];
	pid_t pid;

	if (pipe(fd))
		die("pipe: %s\n", strerror(errno));
	fflush(stdout);
	pid = fork_child();
	if (!pid) {
		char *p = map(size);
		size_t i;

		for (i = 0; i < size; i += page_size)
			fill_pattern(p + i, i / page_size + 1);
		if (madvise(p, size, MADV_MERGEABLE))
			_exit(1);
		*addr = (unsigned long)p;
		if (write(fd[1], addr, sizeof(*addr)) != sizeof(*addr))
			_exit(1);
		for (;;)
			pause();
	}
	close(fd[1]);
	if (read(fd[0], addr, sizeof(*addr)) != sizeof(*addr))
		die("a holder did not start\n");
	close(fd[0]);
	return pid;
}

/* Writes "@pid @start @end" to merge_now: 0 or the write's errno. */
static int merge_now(pid_t pid, unsigned long start, size_t size)
{
	char line[96];
	int fd, err = 0;

	snprintf(line, sizeof(line), "%d 0x%lx 0x%lx\n", pid, start, start + size);
	fd = open(KSM "merge_now", O_WRONLY);
	if (fd < 0)
		return errno;
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		err = errno;
	close(fd);
	return err;
}

/* Waits until pages_sharing reaches @want: the seconds since @t0, -1 past @timeout. */
static double wait_sharing(unsigned long want, double t0, double timeout)
{
	while (ksm_read("pages_sharing") < want) {
		if (now() - t0 > timeout)
			return -1;
		usleep(2000);
	}
	return now() - t0;
}

static void ksm_set_str(const char *name, const char *v)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), KSM "%s", name);
	f = fopen(path, "w");
	if (!f || fprintf(f, "%s", v) < 0 || fclose(f))
		die("cannot write %s to %s: %s\n", v, path, strerror(errno));
}

static int cmd_merge_now(size_t mib, double timeout)
{
	size_t size = mib * MIB;
	unsigned long want = size / page_size * 99 / 100, a_addr, b_addr, scans;
	double t0, t;
	pid_t a, b;
	int ea, eb;

	/* ksmd stopped: merge_now alone. */
	ksm_setup(100, 20, 1);
	ksm_write("run", 0);
	if (access(KSM "merge_now", W_OK)) {
		printf("### bench: merge_now_seconds n/a\n#   no " KSM "merge_now: %s\n",
		       strerror(errno));
	} else {
		a = holder(size, &a_addr);
		b = holder(size, &b_addr);
		scans = ksm_read("full_scans");
		t0 = now();
		ea = merge_now(a, a_addr, size);
		eb = merge_now(b, b_addr, size);
		t = ea || eb ? -1 : wait_sharing(want, t0, timeout);
		if (t < 0)
			bench_fail("merge_now_seconds", "errno %d and %d, pages_sharing %lu of %lu\n",
				   ea, eb, ksm_read("pages_sharing"), want);
		else
			printf("### bench: merge_now_seconds %.3f s\n", t);
		printf("#   merge_now: pages_shared %lu, pages_sharing %lu, full_scans %lu (before: %lu)\n",
		       ksm_read("pages_shared"), ksm_read("pages_sharing"),
		       ksm_read("full_scans"), scans);
		kill(a, SIGKILL);
		kill(b, SIGKILL);
		waitpid(a, NULL, 0);
		waitpid(b, NULL, 0);
		ksm_write("run", 2);
	}

	/* ksmd alone, at the scan-time advisor's defaults. */
	ksm_set_str("advisor_mode", "scan-time");
	a = holder(size, &a_addr);
	b = holder(size, &b_addr);
	scans = ksm_read("full_scans");
	t0 = now();
	ksm_write("run", 1);
	t = wait_sharing(want, t0, timeout);
	if (t < 0)
		bench_fail("merge_now_ksmd_seconds", "pages_sharing %lu of %lu after %.0f s\n",
			   ksm_read("pages_sharing"), want, timeout);
	else
		printf("### bench: merge_now_ksmd_seconds %.3f s\n", t);
	printf("#   ksmd: %lu full scans, pages_to_scan %lu at the end\n",
	       ksm_read("full_scans") - scans, ksm_read("pages_to_scan"));
	kill(a, SIGKILL);
	kill(b, SIGKILL);
	waitpid(a, NULL, 0);
	waitpid(b, NULL, 0);
	ksm_write("run", 2);
	ksm_set_str("advisor_mode", "none");
	ksm_setup(100, 20, 1);
	return 0;
}

int main(int argc, char **argv)
{
	double timeout = 600;

	page_size = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "scan"))
		return cmd_scan(atol(argv[2]), atoi(argv[3]));
	if (argc == 6 && !strcmp(argv[1], "converge"))
		return cmd_converge(atoi(argv[2]), atol(argv[3]), atoi(argv[4]),
				    atoi(argv[5]));
	if (argc == 5 && !strcmp(argv[1], "merge"))
		return cmd_merge(atol(argv[2]), atol(argv[3]), atol(argv[4]));
	if (argc >= 3 && !strcmp(argv[1], "thp_passes")) {
		if (argc == 4)
			timeout = atof(argv[3]);
		if (argc <= 4)
			return cmd_thp_passes(atol(argv[2]), timeout);
	}
	if (argc >= 3 && !strcmp(argv[1], "rmap_vmas")) {
		if (argc == 4)
			timeout = atof(argv[3]);
		if (argc <= 4)
			return cmd_rmap_vmas(atol(argv[2]), timeout);
	}
	if (argc >= 3 && (!strcmp(argv[1], "merge_collide") ||
			  !strcmp(argv[1], "merge_collide_anyseed"))) {
		if (argc == 4)
			timeout = atof(argv[3]);
		if (argc <= 4)
			return cmd_merge_collide(atol(argv[2]), timeout,
						 !strcmp(argv[1], "merge_collide_anyseed"));
	}
	if (argc >= 4 && !strcmp(argv[1], "unshare")) {
		if (argc == 5)
			timeout = atof(argv[4]);
		if (argc <= 5)
			return cmd_unshare(atoi(argv[2]), atol(argv[3]), timeout);
	}
	if (argc >= 4 && !strcmp(argv[1], "scan_pages")) {
		if (argc == 5)
			timeout = atof(argv[4]);
		if (argc <= 5)
			return cmd_scan_pages(argv[2], atol(argv[3]), timeout);
	}
	if (argc >= 4 && !strcmp(argv[1], "sparse")) {
		if (argc == 5)
			timeout = atof(argv[4]);
		if (argc <= 5)
			return cmd_sparse(atol(argv[2]), atof(argv[3]), timeout);
	}
	if (argc == 6 && !strcmp(argv[1], "pressure"))
		return cmd_pressure(argv[2], atol(argv[3]), atof(argv[4]), atoi(argv[5]));
	if (argc >= 3 && !strcmp(argv[1], "merge_now")) {
		if (argc == 4)
			timeout = atof(argv[3]);
		if (argc <= 4)
			return cmd_merge_now(atol(argv[2]), timeout);
	}
	fprintf(stderr, "usage: ksm-rs-bench-tool scan SIZE_MIB SMART | converge NPROC SIZE_MIB DUP VOLATILE | merge SIZE_MIB PAGES SLEEP | thp_passes NTHP [TIMEOUT]\n"
		"       ksm-rs-bench-tool unshare NPROC SIZE_MIB | scan_pages collide|anyseed|random NPAGES | merge_collide[_anyseed] NPAGES | sparse SIZE_GIB SECONDS | rmap_vmas NVMAS | merge_now SIZE_MIB  [TIMEOUT]\n"
		"       ksm-rs-bench-tool pressure none|pressure PERCENT SECONDS CYCLES\n");
	return 2;
}
