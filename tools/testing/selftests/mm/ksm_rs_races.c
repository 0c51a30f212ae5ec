// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_races: KSM on the paths where the rest of mm runs at the same time
 * as ksmd, or interrupts it. Every test checks that no process reads a byte
 * it did not write and that KSM's counters come back to zero once every
 * process is gone and run=2 unmerged the rest (nothing is left behind in the
 * trees):
 *
 *  - migration: two processes merge 4096 distinct pages with each other;
 *    one rewrites random pages while the other bounces its pages between
 *    NUMA nodes with move_pages(MPOL_MF_MOVE_ALL), so KSM folios migrate
 *    while ksmd sleeps on their lock (a KSM folio that migrated keeps its
 *    stable node: ksm_get_folio() re-reads kpfn);
 *  - large folios: with use_zero_pages=1 and a zero-filled KSM page already
 *    in the stable tree, zero-filled THPs are split and every subpage maps
 *    the zero page, within a few full scans; every subpage then takes
 *    writes of its own;
 *  - an interrupted run=2 (the writer is killed while it unmerges), then
 *    the process ksmd was scanning exits, ksmd runs again and the others
 *    exit: no stale item outlives its mm (new processes, which may get the
 *    exited one's mm_struct, count exactly their own rmap items);
 *  - fork during run=2: children forked while run=2 unmerges are unmerged
 *    too (mm/ksm.c adds their slots at the tail of the list it walks), so
 *    max_page_sharing can be changed right after;
 *  - exit: the KSM pages of processes that exited stop being counted
 *    before ksmd finishes its full scan (mm/ksm.c moves an exiting mm's
 *    slot right after the cursor);
 *  - THPs whose subpages alternate two contents (one a copy of the other)
 *    are split and every page merged within a few full scans;
 *  - MADV_COLLAPSE racing ksmd: THP-sized ranges of pages that merge with
 *    each other are rewritten and collapsed again and again while ksmd
 *    splits and merges them; every page reads back as last written;
 *  - chains: pages of two contents whose 32-bit xxh64 with seed 0 (mm/ksm.c's
 *    checksum) is the same, made to collide here, are not a chain;
 *    stable_node_chains and stable_node_dups count KSM pages of equal
 *    contents only, as mm/ksm.c, whose trees are ordered by the contents;
 *  - ksmd runs at nice 5, as set_user_nice(current, 5) in ksm_scan_thread.
 *  - zero pages and fork: with use_zero_pages=1, a process forks again and
 *    again while ksmd maps the zero page into it; the children write to
 *    some of the zero pages they got and exit. ksm_zero_pages never reads
 *    below 0, a process's count is the number of zero pages it maps, and
 *    all is 0 once the process is gone (upstream's ksm_fork() added a copy
 *    of the parent's count taken before fork() locked the parent's mmap, so
 *    it went negative on mm/ksm.c too: fixed in include/linux/ksm.h by
 *    counting the zero pages fork() copies, in copy_present_ptes()).
 *
 * KSM_RS_RACE_SECONDS sets how long the migration and collapse tests run
 * (default 20).
 * Every attribute of /sys/kernel/mm/ksm that is changed is put back.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest.h"
#include "vm_util.h"
#include "ksm_rs_util.h"

#define NR_TESTS		10
#define SCAN_TIMEOUT_MS		120000

#ifndef MPOL_MF_MOVE_ALL
#define MPOL_MF_MOVE_ALL	(1 << 2)
#endif

/* /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h). */
#define KPF_BIT_KSM		(1ULL << 21)
#define KPF_BIT_THP		(1ULL << 22)
#define KPF_BIT_ZERO_PAGE	(1ULL << 24)

static unsigned long page_size;
static pid_t main_pid;

static struct saved_attr saved_attrs[] = {
	{ .name = "max_page_sharing" },
	{ .name = "merge_across_nodes" },
	{ .name = "use_zero_pages" },
	{ .name = "smart_scan" },
	{ .name = "pages_to_scan" },
	{ .name = "sleep_millisecs" },
	{ .name = "advisor_mode" },
	{ .name = "run" },
};

static bool set_attr(const char *attr, const char *val)
{
	return saved_attr_set(saved_attrs, ARRAY_SIZE(saved_attrs), attr, val);
}

static void restore_at_exit(void)
{
	if (getpid() == main_pid)
		saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
}

/* ---- patterns ---- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void fill_page(char *page, uint64_t seed)
{
	uint64_t *p = (uint64_t *)page;
	unsigned long j;

	for (j = 0; j < page_size / sizeof(*p); j++)
		p[j] = mix64(seed * 0x100000001b3ULL + j);
}

/* Whether @page holds the pattern of @seed; volatile reads, one by one. */
static bool page_is(const char *page, uint64_t seed)
{
	const volatile uint64_t *p = (const volatile uint64_t *)page;
	unsigned long j;

	for (j = 0; j < page_size / sizeof(*p); j++)
		if (p[j] != mix64(seed * 0x100000001b3ULL + j))
			return false;
	return true;
}

static bool page_is_zero(const char *page)
{
	const volatile uint64_t *p = (const volatile uint64_t *)page;
	unsigned long j;

	for (j = 0; j < page_size / sizeof(*p); j++)
		if (p[j])
			return false;
	return true;
}

static char *map_area(unsigned long npages, bool huge)
{
	unsigned long size = npages * page_size, align = huge ? 2UL << 20 : 0;
	char *p = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		ksft_exit_fail_msg("mmap of %lu pages: %s\n", npages,
				   strerror(errno));
	if (align) {
		char *a = (char *)(((uintptr_t)p + align - 1) & ~(align - 1));

		if (a > p)
			munmap(p, a - p);
		munmap(a + size, p + align - a);
		p = a;
	}
	madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return p;
}

/* A MAP_SHARED anonymous area for control words between processes. */
static volatile long *map_shared(unsigned long words)
{
	void *p = mmap(NULL, words * sizeof(long), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		ksft_exit_fail_msg("shared mmap: %s\n", strerror(errno));
	return p;
}

/* ---- counters ---- */

static long proc_merging_pages(pid_t pid)
{
	char path[64], buf[64];
	long v = -1;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/ksm_merging_pages", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		v = strtol(buf, NULL, 10);
	}
	return v;
}

static bool wait_for(bool (*cond)(void *), void *arg, unsigned long ms)
{
	unsigned long start = now_ms();

	while (now_ms() - start < ms) {
		if (cond(arg))
			return true;
		usleep(10000);
	}
	return cond(arg);
}

static bool sharing_at_least(void *arg)
{
	unsigned long v = ksm_ul("pages_sharing");

	return v != ULONG_MAX && v >= *(unsigned long *)arg;
}

static bool wait_full_scans(int n)
{
	unsigned long start = now_ms();
	long full0 = ksm_get_full_scans();

	while (now_ms() - start < SCAN_TIMEOUT_MS) {
		if (ksm_get_full_scans() >= full0 + n)
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * After every process of the test exited: run=2 leaves nothing in either
 * tree, and all counters of merged and tracked pages read 0.
 */
static void expect_all_gone(bool *ok, const char *when)
{
	static const char *const attrs[] = {
		"pages_shared", "pages_sharing", "pages_unshared",
		"pages_volatile", "stable_node_chains", "stable_node_dups",
		"ksm_zero_pages",
	};
	unsigned long v;
	size_t i;

	expect(ok, sysfs_write("run", "2"), "%s: run=2: %s\n", when,
	       strerror(errno));
	for (i = 0; i < ARRAY_SIZE(attrs); i++) {
		v = ksm_ul(attrs[i]);
		expect(ok, v == 0, "%s: %s is %lu after run=2, expected 0\n",
		       when, attrs[i], v);
	}
}

static void kill_wait(pid_t *pids, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	for (i = 0; i < n; i++)
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
}

/* Exit status 0 of @pid, else a message. */
static void expect_child_ok(bool *ok, pid_t pid, const char *who)
{
	int status;

	if (waitpid(pid, &status, 0) != pid) {
		expect(ok, false, "%s: waitpid: %s\n", who, strerror(errno));
		return;
	}
	expect(ok, WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "%s: status 0x%x (a page did not read back)\n", who, status);
}

/* KSM_RS_RACE_SECONDS, default 20. */
static unsigned int race_seconds(void)
{
	const char *e = getenv("KSM_RS_RACE_SECONDS");

	return e && atoi(e) > 0 ? atoi(e) : 20;
}

static int online_nodes(void)
{
	char buf[64];
	int a, b, fd;
	ssize_t n;

	fd = open("/sys/devices/system/node/online", O_RDONLY);
	if (fd < 0)
		return 1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	if (sscanf(buf, "%d-%d", &a, &b) == 2)
		return b - a + 1;
	return 1;
}

/* ---- migration of KSM folios while ksmd waits on them ---- */

#define MIG_PAGES	4096
#define MIG_BATCH	512

static volatile long *ctl;	/* [0]: stop, [1]: rewrites, [2]: moves, [4]: not moved */

struct writer_arg {
	char *area;
	uint64_t *seeds;
};

static void *rewriter(void *p)
{
	struct writer_arg *w = p;
	uint64_t x = 12345, gen = 1;

	while (!ctl[0]) {
		unsigned long i;

		x = mix64(x);
		i = x % MIG_PAGES;
		/*
		 * The seed is set after the page: the checker runs once this
		 * thread stopped.
		 */
		fill_page(w->area + i * page_size, (gen << 32) | i);
		w->seeds[i] = (gen << 32) | i;
		gen++;
		__atomic_add_fetch(&ctl[1], 1, __ATOMIC_RELAXED);
		if (!(gen & 63))
			usleep(1000);
	}
	return NULL;
}

/* The rewriting process: returns 0 if every page holds what it last wrote. */
static int mig_writer(void)
{
	char *area = map_area(MIG_PAGES, false);
	uint64_t *seeds = calloc(MIG_PAGES, sizeof(*seeds));
	struct writer_arg w = { area, seeds };
	unsigned long i, bad = 0;
	pthread_t t;

	for (i = 0; i < MIG_PAGES; i++) {
		seeds[i] = i;
		fill_page(area + i * page_size, i);
	}
	if (madvise(area, MIG_PAGES * page_size, MADV_MERGEABLE))
		return 2;
	while (!ctl[3])
		usleep(10000);
	pthread_create(&t, NULL, rewriter, &w);
	pthread_join(t, NULL);
	for (i = 0; i < MIG_PAGES; i++)
		if (!page_is(area + i * page_size, seeds[i]) && bad++ < 5)
			printf("#    writer: page %lu does not hold seed %#llx\n",
			       i, (unsigned long long)seeds[i]);
	return bad ? 1 : 0;
}

/* The migrating process: its pages never change. */
static int mig_mover(int nodes)
{
	char *area = map_area(MIG_PAGES, false);
	void *pages[MIG_BATCH];
	int node[MIG_BATCH], status[MIG_BATCH];
	unsigned long i, bad = 0, round = 0;
	long ret;

	for (i = 0; i < MIG_PAGES; i++)
		fill_page(area + i * page_size, i);
	if (madvise(area, MIG_PAGES * page_size, MADV_MERGEABLE))
		return 2;
	while (!ctl[3])
		usleep(10000);
	while (!ctl[0]) {
		unsigned long first = (round * MIG_BATCH) % MIG_PAGES, j;

		for (j = 0; j < MIG_BATCH; j++) {
			pages[j] = area + (first + j) * page_size;
			node[j] = (round / (MIG_PAGES / MIG_BATCH)) % nodes;
		}
		ret = syscall(__NR_move_pages, 0, MIG_BATCH, pages, node, status,
			      MPOL_MF_MOVE_ALL);
		if (ret >= 0) {
			__atomic_add_fetch(&ctl[2], 1, __ATOMIC_RELAXED);
			/*
			 * Pages busy (a reference held elsewhere) are not moved:
			 * counted in the return value when their migration
			 * failed, in their status when they were not isolated.
			 */
			__atomic_add_fetch(&ctl[4], ret, __ATOMIC_RELAXED);
			for (j = 0; j < MIG_BATCH; j++)
				if (status[j] < 0)
					__atomic_add_fetch(&ctl[4], 1, __ATOMIC_RELAXED);
		}
		round++;
	}
	for (i = 0; i < MIG_PAGES; i++)
		if (!page_is(area + i * page_size, i) && bad++ < 5)
			printf("#    mover: page %lu changed\n", i);
	return bad ? 1 : 0;
}

static void test_migration(void)
{
	unsigned long secs = race_seconds();
	unsigned long want = MIG_PAGES / 2, sharing_max = 0, start;
	int nodes = online_nodes();
	pid_t pids[2];
	bool ok = true;

	if (nodes < 2) {
		ksft_test_result_skip("migration: one NUMA node only\n");
		return;
	}
	ctl = map_shared(5);
	if (!set_attr("run", "2") || !set_attr("smart_scan", "0") ||
	    !set_attr("pages_to_scan", "1000") ||
	    !set_attr("sleep_millisecs", "0") ||
	    !set_attr("merge_across_nodes", "1") ||
	    !set_attr("run", "1")) {
		ksft_test_result_fail("migration: set-up of ksm attributes\n");
		return;
	}
	pids[0] = fork();
	if (!pids[0])
		_exit(mig_writer());
	pids[1] = fork();
	if (!pids[1])
		_exit(mig_mover(nodes));
	expect(&ok, wait_for(sharing_at_least, &want, SCAN_TIMEOUT_MS),
	       "migration: pages_sharing %lu, expected >= %lu before the race\n",
	       ksm_ul("pages_sharing"), want);
	ctl[3] = 1;
	start = now_ms();
	while (now_ms() - start < secs * 1000) {
		unsigned long s = ksm_ul("pages_sharing");

		if (s != ULONG_MAX && s > sharing_max)
			sharing_max = s;
		usleep(100000);
	}
	ctl[0] = 1;
	expect_child_ok(&ok, pids[0], "writer");
	expect_child_ok(&ok, pids[1], "mover");
	ksft_print_msg("migration: %lu s, %ld rewrites, %ld move_pages calls of %d pages (%ld pages not moved), pages_sharing up to %lu\n",
		       secs, ctl[1], ctl[2], MIG_BATCH, ctl[4], sharing_max);
	expect(&ok, ctl[2] > 0, "migration: no move_pages call succeeded\n");
	expect_all_gone(&ok, "migration");
	munmap((void *)ctl, 5 * sizeof(long));
	ksft_test_result(ok, "migration: KSM folios migrating under ksmd, every byte kept, nothing left behind\n");
}

/* ---- large folios: split, then merged with the zero page ---- */

#define ZERO_SMALL	64
#define THP_PAGES	512
#define NR_THP		4

static bool range_flags(char *area, unsigned long npages, uint64_t bit,
			unsigned long *count)
{
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int kpf = open("/proc/kpageflags", O_RDONLY);
	unsigned long i;

	*count = 0;
	if (pm < 0 || kpf < 0) {
		if (pm >= 0)
			close(pm);
		if (kpf >= 0)
			close(kpf);
		return false;
	}
	for (i = 0; i < npages; i++) {
		uint64_t ent, flags;
		off_t off = ((uintptr_t)area / page_size + i) * 8;

		if (pread(pm, &ent, 8, off) != 8 || !(ent & (1ULL << 63)))
			continue;
		if (pread(kpf, &flags, 8, (ent & ((1ULL << 55) - 1)) * 8) != 8)
			continue;
		if (flags & bit)
			(*count)++;
	}
	close(pm);
	close(kpf);
	return true;
}

struct zero_arg {
	char *area;
	unsigned long npages;
};

static bool all_zero_pages(void *p)
{
	struct zero_arg *z = p;
	unsigned long n;

	return range_flags(z->area, z->npages, KPF_BIT_ZERO_PAGE, &n) &&
	       n == z->npages;
}

static void test_thp_zero(void)
{
	unsigned long want = ZERO_SMALL - 1, n, thp = 0, i, bad = 0;
	unsigned long npages = NR_THP * THP_PAGES;
	struct zero_arg z;
	char *small, *huge;
	bool ok = true;

	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK)) {
		ksft_test_result_skip("thp zero: no THP\n");
		return;
	}
	if (!set_attr("run", "2") || !set_attr("smart_scan", "0") ||
	    !set_attr("use_zero_pages", "0") ||
	    !set_attr("pages_to_scan", "1000") ||
	    !set_attr("sleep_millisecs", "10") || !set_attr("run", "1")) {
		ksft_test_result_fail("thp zero: set-up of ksm attributes\n");
		return;
	}
	/* A zero-filled KSM page in the stable tree. */
	small = map_area(ZERO_SMALL, false);
	for (i = 0; i < ZERO_SMALL; i++)
		small[i * page_size] = 0;
	madvise(small, ZERO_SMALL * page_size, MADV_MERGEABLE);
	expect(&ok, wait_for(sharing_at_least, &want, SCAN_TIMEOUT_MS),
	       "thp zero: zero-filled small pages: pages_sharing %lu, expected >= %lu\n",
	       ksm_ul("pages_sharing"), want);
	/* From now on zero-filled pages go to the zero page. */
	expect(&ok, set_attr("use_zero_pages", "1"), "use_zero_pages=1\n");

	huge = map_area(npages, true);
	for (i = 0; i < NR_THP; i++)
		huge[i * THP_PAGES * page_size] = 0;
	for (i = 0; i < npages; i++)
		huge[i * page_size] = 0;
	range_flags(huge, npages, KPF_BIT_THP, &thp);
	ksft_print_msg("thp zero: %lu of %lu pages in THPs\n", thp, npages);
	if (!thp) {
		munmap(small, ZERO_SMALL * page_size);
		munmap(huge, npages * page_size);
		ksft_test_result_skip("thp zero: no THP could be faulted in\n");
		return;
	}
	madvise(huge, npages * page_size, MADV_MERGEABLE);
	z.area = huge;
	z.npages = npages;
	wait_for(all_zero_pages, &z, 0);
	/* mm/ksm.c: the first pass hashes, the second splits and merges. */
	for (i = 0; i < 8 && !all_zero_pages(&z); i++)
		wait_full_scans(1);
	range_flags(huge, npages, KPF_BIT_ZERO_PAGE, &n);
	ksft_print_msg("thp zero: %lu of %lu pages map the zero page after %lu more full scans\n",
		       n, npages, i);
	expect(&ok, n == npages,
	       "thp zero: %lu of %lu subpages map the zero page after 8 full scans\n",
	       n, npages);
	for (i = 0; i < npages; i++)
		if (!page_is_zero(huge + i * page_size) && bad++ < 5)
			printf("#    thp zero: page %lu is not zero\n", i);
	/* Every subpage takes writes of its own. */
	for (i = 0; i < npages; i++)
		fill_page(huge + i * page_size, 0x7468700000000000ULL + i);
	wait_full_scans(2);
	for (i = 0; i < npages; i++)
		if (!page_is(huge + i * page_size, 0x7468700000000000ULL + i) &&
		    bad++ < 5)
			printf("#    thp zero: page %lu lost its write\n", i);
	for (i = 0; i < ZERO_SMALL; i++)
		if (!page_is_zero(small + i * page_size) && bad++ < 5)
			printf("#    thp zero: small page %lu is not zero\n", i);
	expect(&ok, !bad, "thp zero: %lu pages read back wrong\n", bad);
	munmap(small, ZERO_SMALL * page_size);
	munmap(huge, npages * page_size);
	expect_all_gone(&ok, "thp zero");
	set_attr("use_zero_pages", "0");
	ksft_test_result(ok, "thp zero: zero-filled THPs split and merged with the zero page, writes stay private\n");
}

/* ---- large folios: how many full scans until their pages merge ---- */

#define PACE_THP	2
#define PACE_SCANS	6

struct pace_arg {
	char *area;
	unsigned long npages;
	unsigned long want;
};

static bool pace_merged(void *p)
{
	struct pace_arg *a = p;
	unsigned long n;

	return range_flags(a->area, a->npages, KPF_BIT_KSM, &n) && n >= a->want;
}

/*
 * Two THPs whose subpages alternate two contents, the second a copy of the
 * first: mm/ksm.c splits them as their pages merge and merges every page in
 * the same pass. Returns the full scans it took, -1 if not within
 * PACE_SCANS.
 */
static int thp_pace(bool *ok, unsigned long *thp)
{
	unsigned long npages = PACE_THP * THP_PAGES, i, bad = 0;
	struct pace_arg a;
	char *huge = map_area(npages, true);
	int scans;

	for (i = 0; i < npages; i++)
		fill_page(huge + i * page_size, 0x7061636500000000ULL + (i & 1));
	range_flags(huge, npages, KPF_BIT_THP, thp);
	madvise(huge, npages * page_size, MADV_MERGEABLE);
	a.area = huge;
	a.npages = npages;
	a.want = npages;
	/* The scan in progress, then whole ones. */
	wait_full_scans(1);
	for (scans = 0; scans < PACE_SCANS && !pace_merged(&a); scans++)
		wait_full_scans(1);
	if (!pace_merged(&a))
		scans = -1;
	for (i = 0; i < npages; i++)
		if (!page_is(huge + i * page_size, 0x7061636500000000ULL + (i & 1)) &&
		    bad++ < 5)
			printf("#    thp pace: page %lu changed\n", i);
	expect(ok, !bad, "thp pace: %lu pages read back wrong\n", bad);
	munmap(huge, npages * page_size);
	return scans;
}

static void test_thp_pace(void)
{
	unsigned long thp = 0;
	bool ok = true;
	int scans;

	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK)) {
		ksft_test_result_skip("thp pace: no THP\n");
		return;
	}
	if (!set_attr("run", "2") || !set_attr("smart_scan", "0") ||
	    !set_attr("use_zero_pages", "0") ||
	    !set_attr("pages_to_scan", "1000") ||
	    !set_attr("sleep_millisecs", "10") || !set_attr("run", "1")) {
		ksft_test_result_fail("thp pace: set-up of ksm attributes\n");
		return;
	}
	scans = thp_pace(&ok, &thp);
	ksft_print_msg("thp pace: %lu of %d pages in THPs; all merged after %d more full scans\n",
		       thp, PACE_THP * THP_PAGES, scans);
	expect(&ok, thp > 0, "thp pace: no THP could be faulted in\n");
	expect(&ok, scans >= 0,
	       "thp pace: THP pages not all merged after %d full scans\n",
	       PACE_SCANS);
	expect_all_gone(&ok, "thp pace");
	ksft_test_result(ok, "thp pace: THPs of alternating contents merge within %d full scans\n",
			 PACE_SCANS);
}

/* ---- MADV_COLLAPSE racing ksmd ---- */

#define COLLAPSE_THP	4
#define COLLAPSE_VARIANTS	4

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

/*
 * COLLAPSE_THP THP-sized ranges whose page i holds the same pattern in every
 * range, so that ksmd merges them with each other (splitting the THPs). Over
 * and over, one range is rewritten whole, with that pattern again or with
 * new contents, and MADV_COLLAPSE makes a THP of it (copying the KSM pages
 * still in it into a private THP), which ksmd splits and merges again; a few
 * random pages are rewritten with one of a few patterns (which ksmd merges
 * too). A shadow of every page's pattern is checked at the end, and once a
 * second during the run.
 */
static void test_thp_collapse(void)
{
	unsigned long npages = COLLAPSE_THP * THP_PAGES, i, bad = 0;
	unsigned long collapses = 0, collapsed = 0, writes = 0, max_sharing = 0;
	unsigned long start, last_check;
	unsigned int secs = race_seconds();
	uint64_t *shadow, rnd = 0x636f6c6cULL;
	char *area;
	bool ok = true;

	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK)) {
		ksft_test_result_skip("thp collapse: no THP\n");
		return;
	}
	if (!set_attr("run", "2") || !set_attr("smart_scan", "0") ||
	    !set_attr("use_zero_pages", "0") ||
	    !set_attr("pages_to_scan", "1000") ||
	    !set_attr("sleep_millisecs", "0") || !set_attr("run", "1")) {
		ksft_test_result_fail("thp collapse: set-up of ksm attributes\n");
		return;
	}
	shadow = calloc(npages, sizeof(*shadow));
	if (!shadow)
		ksft_exit_fail_msg("thp collapse: no memory for the shadow\n");
	area = map_area(npages, true);
	for (i = 0; i < npages; i++) {
		shadow[i] = 0x636f6c0000000000ULL + i % THP_PAGES;
		fill_page(area + i * page_size, shadow[i]);
	}
	madvise(area, npages * page_size, MADV_MERGEABLE);
	start = last_check = now_ms();
	while (now_ms() - start < secs * 1000UL) {
		unsigned long r, j, v;
		uint64_t base;

		rnd = mix64(rnd);
		r = rnd % COLLAPSE_THP;
		base = rnd & 0x100 ? 0x636f6c0000000000ULL :
			0x636f6c6e00000000ULL + ((rnd >> 32) & 0xffff) * THP_PAGES;
		for (j = 0; j < THP_PAGES; j++) {
			i = r * THP_PAGES + j;
			shadow[i] = base + j;
			fill_page(area + i * page_size, shadow[i]);
		}
		collapses++;
		if (!madvise(area + r * THP_PAGES * page_size,
			     THP_PAGES * page_size, MADV_COLLAPSE))
			collapsed++;
		for (j = 0; j < 16; j++) {
			rnd = mix64(rnd);
			i = rnd % npages;
			shadow[i] = 0x636f6c7700000000ULL + (rnd >> 32) % COLLAPSE_VARIANTS;
			fill_page(area + i * page_size, shadow[i]);
			writes++;
		}
		v = ksm_ul("pages_sharing");
		if (v != ULONG_MAX && v > max_sharing)
			max_sharing = v;
		if (now_ms() - last_check >= 1000) {
			for (j = 0; j < npages; j++)
				if (!page_is(area + j * page_size, shadow[j]) &&
				    bad++ < 5)
					printf("#    thp collapse: page %lu lost its contents\n", j);
			last_check = now_ms();
		}
		usleep(2000);
	}
	wait_full_scans(2);
	for (i = 0; i < npages; i++)
		if (!page_is(area + i * page_size, shadow[i]) && bad++ < 5)
			printf("#    thp collapse: page %lu lost its contents\n", i);
	ksft_print_msg("thp collapse: %lu MADV_COLLAPSE (%lu collapsed), %lu page writes, pages_sharing up to %lu, %lu pages wrong\n",
		       collapses, collapsed, writes, max_sharing, bad);
	expect(&ok, !bad, "thp collapse: %lu pages read back wrong\n", bad);
	expect(&ok, max_sharing > 0, "thp collapse: nothing merged\n");
	munmap(area, npages * page_size);
	free(shadow);
	expect_all_gone(&ok, "thp collapse");
	ksft_test_result(ok, "thp collapse: MADV_COLLAPSE racing ksmd, every byte kept, nothing left behind\n");
}

/* ---- chains are of equal contents, not of equal hashes ---- */

#define XXH_P1	11400714785074694791ULL
#define XXH_P2	14029467366897019727ULL
#define XXH_P3	1609587929392839161ULL
#define XXH_P4	9650029242287828579ULL

static uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t xxh_round(uint64_t acc, uint64_t in)
{
	acc += in * XXH_P2;
	return rotl64(acc, 31) * XXH_P1;
}

static uint64_t xxh_merge(uint64_t h, uint64_t v)
{
	h ^= xxh_round(0, v);
	return h * XXH_P1 + XXH_P4;
}

static uint64_t le64(const uint64_t *p)
{
	const unsigned char *b = (const unsigned char *)p;
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

/*
 * xxh64 with seed 0 (lib/xxhash.c) of a page whose 32-byte stripes but the
 * last were folded into @v, with the last stripe @last: the hash that
 * mm/ksm.c keeps as its checksum (32 bits of it).
 */
static uint64_t xxh64_last_stripe(const uint64_t v_in[4], const uint64_t *last)
{
	uint64_t v[4], h;
	int j;

	for (j = 0; j < 4; j++)
		v[j] = xxh_round(v_in[j], le64(&last[j]));
	h = rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) +
	    rotl64(v[3], 18);
	for (j = 0; j < 4; j++)
		h = xxh_merge(h, v[j]);
	h += page_size;
	h ^= h >> 33;
	h *= XXH_P2;
	h ^= h >> 29;
	h *= XXH_P3;
	h ^= h >> 32;
	return h;
}

/*
 * Fills @a and @b with two pages that differ in their last word only and
 * whose xxh64 (seed 0) agree in the low 32 bits, found by the birthday
 * bound (about 2^16.5 tries of the last stripe). Returns false if none was
 * found.
 */
static bool colliding_pages(char *a, char *b)
{
	const unsigned long slots = 1UL << 19;
	uint64_t v[4] = { XXH_P1 + XXH_P2, XXH_P2, 0, -XXH_P1 };
	uint64_t *p = (uint64_t *)a, last[4];
	unsigned long words = page_size / 8, s, j, c;
	uint64_t *table = calloc(slots, sizeof(*table));

	if (!table)
		return false;
	fill_page(a, 0x636861696e000000ULL);
	for (s = 0; s + 4 < words; s += 4)
		for (j = 0; j < 4; j++)
			v[j] = xxh_round(v[j], le64(&p[s + j]));
	memcpy(last, &p[words - 4], sizeof(last));
	for (c = 1; c < slots / 2; c++) {
		uint32_t h;
		unsigned long k;

		last[3] = c;
		h = (uint32_t)xxh64_last_stripe(v, last);
		for (k = h & (slots - 1); table[k]; k = (k + 1) & (slots - 1)) {
			if ((uint32_t)(table[k] >> 32) != h)
				continue;
			memcpy(b, a, page_size);
			((uint64_t *)a)[words - 1] = table[k] & 0xffffffff;
			((uint64_t *)b)[words - 1] = c;
			free(table);
			return true;
		}
		table[k] = ((uint64_t)h << 32) | c;
	}
	free(table);
	return false;
}

struct chain_arg {
	unsigned long shared, sharing;
};

static bool merged_as(void *p)
{
	struct chain_arg *c = p;

	return ksm_ul("pages_shared") == c->shared &&
	       ksm_ul("pages_sharing") == c->sharing;
}

/*
 * @copies pages of each of the two contents, interleaved, with
 * max_page_sharing @max: once merged as mm/ksm.c merges them, the chain
 * counters must read @chains and @dups.
 */
static void chain_round(bool *ok, const char *a, const char *b, int copies,
			const char *max, unsigned long shared,
			unsigned long sharing, unsigned long chains,
			unsigned long dups)
{
	unsigned long npages = 2 * copies, i, bad = 0;
	struct chain_arg want = { shared, sharing };
	unsigned long got_chains, got_dups;
	char *area;

	expect(ok, set_attr("run", "2") && set_attr("max_page_sharing", max) &&
		   set_attr("run", "1"),
	       "chains: max_page_sharing=%s: %s\n", max, strerror(errno));
	area = map_area(npages, false);
	for (i = 0; i < npages; i++)
		memcpy(area + i * page_size, i % 2 ? b : a, page_size);
	madvise(area, npages * page_size, MADV_MERGEABLE);
	expect(ok, wait_for(merged_as, &want, SCAN_TIMEOUT_MS),
	       "chains: max_page_sharing=%s: pages_shared %lu pages_sharing %lu, expected %lu and %lu\n",
	       max, ksm_ul("pages_shared"), ksm_ul("pages_sharing"), shared,
	       sharing);
	/* One more full scan: nothing changes any more. */
	wait_full_scans(1);
	got_chains = ksm_ul("stable_node_chains");
	got_dups = ksm_ul("stable_node_dups");
	ksft_print_msg("chains: max_page_sharing=%s, %d pages of each contents: pages_shared %lu pages_sharing %lu stable_node_chains %lu stable_node_dups %lu\n",
		       max, copies, ksm_ul("pages_shared"),
		       ksm_ul("pages_sharing"), got_chains, got_dups);
	expect(ok, got_chains == chains && got_dups == dups,
	       "chains: max_page_sharing=%s: stable_node_chains %lu stable_node_dups %lu, expected %lu and %lu\n",
	       max, got_chains, got_dups, chains, dups);
	for (i = 0; i < npages; i++)
		if (memcmp(area + i * page_size, i % 2 ? b : a, page_size) &&
		    bad++ < 5)
			printf("#    chains: page %lu changed\n", i);
	expect(ok, !bad, "chains: %lu pages read back wrong\n", bad);
	munmap(area, npages * page_size);
	expect_all_gone(ok, "chains");
}

static void test_chains_by_contents(void)
{
	char *a = malloc(page_size), *b = malloc(page_size);
	bool ok = true;

	if (!a || !b)
		ksft_exit_fail_msg("chains: no memory\n");
	if (!colliding_pages(a, b)) {
		ksft_test_result_fail("chains: no two pages of equal 32-bit xxh64 found\n");
		return;
	}
	if (!set_attr("run", "2") || !set_attr("smart_scan", "0") ||
	    !set_attr("use_zero_pages", "0") ||
	    !set_attr("pages_to_scan", "1000") ||
	    !set_attr("sleep_millisecs", "10") || !set_attr("run", "1")) {
		ksft_test_result_fail("chains: set-up of ksm attributes\n");
		return;
	}
	ksft_print_msg("chains: two pages of equal 32-bit xxh64 %s\n",
		       memcmp(a, b, page_size) ? "and different contents" : "BUT EQUAL");
	/* Two KSM pages of different contents: no chain. */
	chain_round(&ok, a, b, 2, "256", 2, 2, 0, 0);
	/* Two chains of two KSM pages each, one per contents. */
	chain_round(&ok, a, b, 4, "2", 4, 4, 2, 4);
	free(a);
	free(b);
	ksft_test_result(ok, "chains: stable_node_chains/dups count KSM pages of equal contents, not of equal hashes\n");
}

/* ---- run=2 interrupted, then the scanned process exits ---- */

#define INT_PROCS	6
#define INT_PAGES	2048
#define INT_LATE_PAGES	8192
#define INT_ROUNDS	6

/* A process with @npages pages of patterns i % INT_PAGES; waits to die. */
static pid_t spawn_holder(unsigned long npages)
{
	pid_t pid = fork();
	unsigned long i;
	char *area;

	if (pid)
		return pid;
	area = map_area(npages, false);
	for (i = 0; i < npages; i++)
		fill_page(area + i * page_size, i % INT_PAGES);
	madvise(area, npages * page_size, MADV_MERGEABLE);
	for (;;)
		pause();
}

#define PROBES		4
#define PROBE_PAGES	16

/* ksm_rmap_items and ksm_merging_pages of @pid, from /proc/<pid>/ksm_stat. */
static bool proc_ksm_stat(pid_t pid, long *rmap_items, long *merging)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	*rmap_items = *merging = LONG_MIN;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "ksm_rmap_items %ld", rmap_items) == 1 ||
		    sscanf(line, "ksm_merging_pages %ld", merging) == 1)
			continue;
	}
	fclose(f);
	return *rmap_items != LONG_MIN && *merging != LONG_MIN;
}

/*
 * New processes, likely to get the mm_struct of one that just exited: each
 * has PROBE_PAGES unique pages, so ksmd must count exactly that many rmap
 * items for it and no merged page, whatever it knew of the old mm.
 */
static void check_probes(bool *ok, int round)
{
	pid_t pids[PROBES];
	long items, merging;
	int i;

	for (i = 0; i < PROBES; i++) {
		pids[i] = fork();
		if (!pids[i]) {
			char *area = map_area(PROBE_PAGES, false);
			int j;

			for (j = 0; j < PROBE_PAGES; j++)
				fill_page(area + j * page_size,
					  0x70726f6265000000ULL + (getpid() << 8) + j);
			madvise(area, PROBE_PAGES * page_size, MADV_MERGEABLE);
			for (;;)
				pause();
		}
	}
	usleep(100000);
	wait_full_scans(2);
	for (i = 0; i < PROBES; i++) {
		if (!proc_ksm_stat(pids[i], &items, &merging)) {
			expect(ok, false, "round %d: probe %d: no ksm_stat\n",
			       round, i);
			continue;
		}
		expect(ok, items == PROBE_PAGES && merging == 0,
		       "round %d: new process %d: ksm_rmap_items %ld ksm_merging_pages %ld, expected %d and 0\n",
		       round, i, items, merging, PROBE_PAGES);
	}
	kill_wait(pids, PROBES);
}

/*
 * One round; returns what run reads after the writer of run=2 was killed:
 * 0 if the unmerge was interrupted, 2 if it finished first, 1 if the write
 * did not start.
 */
static int run_interrupted_round(bool *ok, int round, unsigned int delay_ms)
{
	unsigned long want = (INT_PROCS - 1) * INT_PAGES * 9 / 10, start;
	volatile long *writing = map_shared(1);
	pid_t pids[INT_PROCS], late, writer;
	char run[16] = "";
	long merging = 0;
	int i;

	if (!sysfs_write("run", "2") || !sysfs_write("run", "1")) {
		expect(ok, false, "round %d: run=2, run=1: %s\n", round,
		       strerror(errno));
		return false;
	}
	for (i = 0; i < INT_PROCS; i++)
		pids[i] = spawn_holder(INT_PAGES);
	expect(ok, wait_for(sharing_at_least, &want, SCAN_TIMEOUT_MS),
	       "round %d: pages_sharing %lu, expected >= %lu\n", round,
	       ksm_ul("pages_sharing"), want);
	/* A process ksmd is in its first pass over when run=2 starts. */
	late = spawn_holder(INT_LATE_PAGES);
	start = now_ms();
	while (now_ms() - start < SCAN_TIMEOUT_MS) {
		merging = proc_merging_pages(late);
		if (merging > 0)
			break;
		usleep(2000);
	}
	writer = fork();
	if (!writer) {
		int fd = open(KSM_DIR "/run", O_WRONLY);

		*writing = 1;
		_exit(fd >= 0 && write(fd, "2", 1) == 1 ? 0 : 1);
	}
	while (!*writing)
		usleep(100);
	usleep(delay_ms * 1000);
	kill(writer, SIGKILL);
	waitpid(writer, NULL, 0);
	sysfs_read("run", run, sizeof(run));
	/* The process ksmd was scanning goes first, then ksmd runs again. */
	kill_wait(&late, 1);
	expect(ok, sysfs_write("run", "1"), "round %d: run=1: %s\n", round,
	       strerror(errno));
	wait_full_scans(1);
	check_probes(ok, round);
	/* The other sharers go: their items leave the stable nodes. */
	kill_wait(pids, INT_PROCS);
	ksft_print_msg("round %d: late process had %ld merged pages, run=2 killed after %u ms: run reads %s\n",
		       round, merging, delay_ms, run);
	munmap((void *)writing, sizeof(long));
	return atoi(run);
}

static void test_interrupted_unmerge(void)
{
	unsigned int delay = 5;
	int round, interrupted = 0, run;
	bool ok = true;

	if (!set_attr("run", "2") || !set_attr("smart_scan", "0") ||
	    !set_attr("pages_to_scan", "200") ||
	    !set_attr("sleep_millisecs", "20")) {
		ksft_test_result_fail("interrupted run=2: set-up of ksm attributes\n");
		return;
	}
	for (round = 0; round < INT_ROUNDS; round++) {
		run = run_interrupted_round(&ok, round, delay);
		/* Too late: kill sooner; the write had not begun: later. */
		if (run == 0)
			interrupted++;
		else if (run == 2)
			delay = delay > 1 ? delay / 2 : 1;
		else
			delay *= 2;
		/* Nothing of any process may remain. */
		expect_all_gone(&ok, "interrupted run=2");
	}
	expect(&ok, interrupted > 0,
	       "interrupted run=2: no run=2 was interrupted in %d rounds\n",
	       INT_ROUNDS);
	ksft_print_msg("interrupted run=2: %d of %d unmerges interrupted\n",
		       interrupted, INT_ROUNDS);
	ksft_test_result(ok, "interrupted run=2, then exits: nothing left behind\n");
}

/* ---- fork while run=2 unmerges ---- */

#define FORK_PARENTS	4
#define FORK_PAGES	2048
#define FORK_CHILDREN	16

static int fork_parent(volatile long *c, int idx)
{
	char *area = map_area(FORK_PAGES, false);
	pid_t kids[FORK_CHILDREN];
	int n = 0, i;

	for (i = 0; i < FORK_PAGES; i++)
		fill_page(area + i * page_size, i);
	madvise(area, FORK_PAGES * page_size, MADV_MERGEABLE);
	while (!c[0])
		usleep(1000);
	while (!c[1] && n < FORK_CHILDREN) {
		pid_t pid = fork();

		if (!pid) {
			for (;;)
				pause();
		}
		if (pid > 0) {
			kids[n++] = pid;
			__atomic_add_fetch(&c[2], 1, __ATOMIC_RELAXED);
		}
		usleep(2000);
	}
	while (!c[3])
		usleep(1000);
	kill_wait(kids, n);
	(void)idx;
	return 0;
}

static void test_fork_during_unmerge(void)
{
	unsigned long want = (FORK_PARENTS - 1) * FORK_PAGES * 9 / 10;
	unsigned long shared, sharing, mps;
	volatile long *c = map_shared(4);
	pid_t pids[FORK_PARENTS];
	char mps_old[32], mps_new[32];
	bool ok = true;
	int i;

	if (!set_attr("run", "2") || !set_attr("smart_scan", "0") ||
	    !set_attr("pages_to_scan", "1000") ||
	    !set_attr("sleep_millisecs", "0") || !set_attr("run", "1")) {
		ksft_test_result_fail("fork during run=2: set-up of ksm attributes\n");
		return;
	}
	for (i = 0; i < FORK_PARENTS; i++) {
		pids[i] = fork();
		if (!pids[i])
			_exit(fork_parent(c, i));
	}
	expect(&ok, wait_for(sharing_at_least, &want, SCAN_TIMEOUT_MS),
	       "fork: pages_sharing %lu, expected >= %lu\n",
	       ksm_ul("pages_sharing"), want);
	c[0] = 1;
	usleep(5000);
	expect(&ok, sysfs_write("run", "2"), "fork: run=2: %s\n",
	       strerror(errno));
	c[1] = 1;
	shared = ksm_ul("pages_shared");
	sharing = ksm_ul("pages_sharing");
	ksft_print_msg("fork: %ld children forked during run=2; then pages_shared %lu pages_sharing %lu\n",
		       c[2], shared, sharing);
	expect(&ok, shared == 0 && sharing == 0,
	       "fork: pages_shared %lu pages_sharing %lu after run=2\n",
	       shared, sharing);
	/* No KSM page is left anywhere: the knob can change. */
	sysfs_read("max_page_sharing", mps_old, sizeof(mps_old));
	mps = strtoul(mps_old, NULL, 10);
	snprintf(mps_new, sizeof(mps_new), "%lu", mps + 1);
	expect(&ok, set_attr("max_page_sharing", mps_new),
	       "fork: max_page_sharing=%s right after run=2: %s\n", mps_new,
	       strerror(errno));
	sysfs_write("max_page_sharing", mps_old);
	c[3] = 1;
	for (i = 0; i < FORK_PARENTS; i++)
		waitpid(pids[i], NULL, 0);
	expect_all_gone(&ok, "fork");
	munmap((void *)c, 4 * sizeof(long));
	ksft_test_result(ok, "fork during run=2: the children are unmerged too\n");
}

/* ---- exit: reaped within the full scan in progress ---- */

#define EXIT_BIG_PAGES	16384
#define EXIT_PROCS	8
#define EXIT_PAGES	64

static pid_t spawn_exit_proc(void)
{
	pid_t pid = fork();
	char *area;
	int j;

	if (pid)
		return pid;
	area = map_area(EXIT_PAGES, false);
	for (j = 0; j < EXIT_PAGES; j++)
		fill_page(area + j * page_size, j);
	madvise(area, EXIT_PAGES * page_size, MADV_MERGEABLE);
	for (;;)
		pause();
}

static void test_exit_reaped(void)
{
	unsigned long want = (EXIT_PROCS - 1) * EXIT_PAGES, sharing, shared, start;
	pid_t pids[EXIT_PROCS], big;
	long full, full_end;
	bool ok = true;
	int i;

	if (!set_attr("run", "2") || !set_attr("smart_scan", "0") ||
	    !set_attr("pages_to_scan", "100") ||
	    !set_attr("sleep_millisecs", "20") || !set_attr("run", "1")) {
		ksft_test_result_fail("exit: set-up of ksm attributes\n");
		return;
	}
	/*
	 * Unique pages: a full scan takes a while. Created between the others,
	 * so that some are scanned before it and some after.
	 */
	for (i = 0; i < EXIT_PROCS / 2; i++)
		pids[i] = spawn_exit_proc();
	big = fork();
	if (!big) {
		char *area = map_area(EXIT_BIG_PAGES, false);
		unsigned long j;

		for (j = 0; j < EXIT_BIG_PAGES; j++)
			fill_page(area + j * page_size, 0x6269670000000000ULL + j);
		madvise(area, EXIT_BIG_PAGES * page_size, MADV_MERGEABLE);
		for (;;)
			pause();
	}
	for (; i < EXIT_PROCS; i++)
		pids[i] = spawn_exit_proc();
	expect(&ok, wait_for(sharing_at_least, &want, SCAN_TIMEOUT_MS),
	       "exit: pages_sharing %lu, expected %lu\n",
	       ksm_ul("pages_sharing"), want);
	/* Mid-scan, whatever the order the mms are scanned in. */
	usleep(500000);
	kill_wait(pids, EXIT_PROCS);
	full = ksm_get_full_scans();
	start = now_ms();
	while (ksm_get_full_scans() == full && now_ms() - start < SCAN_TIMEOUT_MS)
		usleep(5000);
	sharing = ksm_ul("pages_sharing");
	shared = ksm_ul("pages_shared");
	full_end = ksm_get_full_scans();
	ksft_print_msg("exit: once full_scans went %ld -> %ld: pages_shared %lu pages_sharing %lu\n",
		       full, full_end, shared, sharing);
	expect(&ok, sharing == 0 && shared == 0,
	       "exit: pages_shared %lu pages_sharing %lu at the end of the full scan the exits happened in\n",
	       shared, sharing);
	kill_wait(&big, 1);
	expect_all_gone(&ok, "exit");
	ksft_test_result(ok, "exit: KSM pages of exited processes are dropped within the current full scan\n");
}

/* ---- KSM zero pages across fork() ---- */

#define ZF_PAGES	4096
#define ZF_REZERO	64
#define ZF_CHILD_WRITES	16
#define ZF_MIN_FORKS	200

static long ksm_stat_zero_pages(pid_t pid)
{
	char path[64], buf[512], *p;
	long v = LONG_MIN;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return v;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return v;
	buf[n] = '\0';
	p = strstr(buf, "ksm_zero_pages ");
	if (p)
		v = strtol(p + strlen("ksm_zero_pages "), NULL, 10);
	return v;
}

/* The global count, signed: the attribute prints a long. */
static long ksm_zero_pages_now(void)
{
	char buf[64];

	if (!sysfs_read("ksm_zero_pages", buf, sizeof(buf)))
		return LONG_MIN;
	return strtol(buf, NULL, 10);
}

static void test_zero_pages_fork(void)
{
	unsigned long seconds = race_seconds(), start, forks = 0, i, mapped, bad = 0;
	long v, min = LONG_MAX, mine;
	unsigned int seed = 1;
	bool ok = true;
	char *area;

	if (!set_attr("run", "2") || !set_attr("smart_scan", "0") ||
	    !set_attr("use_zero_pages", "1") ||
	    !set_attr("pages_to_scan", "4000") ||
	    !set_attr("sleep_millisecs", "0") || !set_attr("run", "1")) {
		ksft_test_result_fail("zero fork: set-up of ksm attributes\n");
		return;
	}
	area = map_area(ZF_PAGES, false);
	for (i = 0; i < ZF_PAGES; i++)
		area[i * page_size] = 0;
	madvise(area, ZF_PAGES * page_size, MADV_MERGEABLE);
	start = now_ms();
	/* At least ZF_MIN_FORKS, however slow the machine (up to 8 times longer). */
	while ((now_ms() - start < seconds * 1000 || forks < ZF_MIN_FORKS) &&
	       now_ms() - start < 8 * seconds * 1000) {
		pid_t pid;
		int status;

		/* Some zero pages become ordinary pages, zero again. */
		for (i = 0; i < ZF_REZERO; i++) {
			char *page = area + (rand_r(&seed) % ZF_PAGES) * page_size;

			page[0] = 1;
			page[0] = 0;
		}
		pid = fork();
		if (pid < 0) {
			expect(&ok, false, "zero fork: fork: %s\n", strerror(errno));
			break;
		}
		if (!pid) {
			/* COW of some zero pages, then exit unmaps the rest. */
			for (i = 0; i < ZF_CHILD_WRITES; i++)
				area[(rand_r(&seed) % ZF_PAGES) * page_size] = 2;
			_exit(0);
		}
		waitpid(pid, &status, 0);
		forks++;
		seed += forks;
		v = ksm_zero_pages_now();
		if (v < min)
			min = v;
	}
	/* Quiet: the parent's count is the zero pages it maps. */
	expect(&ok, set_attr("run", "0"), "zero fork: run=0\n");
	range_flags(area, ZF_PAGES, KPF_BIT_ZERO_PAGE, &mapped);
	mine = ksm_stat_zero_pages(getpid());
	v = ksm_zero_pages_now();
	ksft_print_msg("zero fork: %lu forks in %lu s, ksm_zero_pages at least %ld; at the end %ld, /proc/self/ksm_stat %ld, %lu pages map the zero page\n",
		       forks, seconds, min, v, mine, mapped);
	expect(&ok, min >= 0, "zero fork: ksm_zero_pages read %ld\n", min);
	expect(&ok, mine == (long)mapped && v == (long)mapped,
	       "zero fork: ksm_zero_pages %ld, the process's %ld, %lu mapped\n",
	       v, mine, mapped);
	for (i = 0; i < ZF_PAGES; i++)
		if (!page_is_zero(area + i * page_size) && bad++ < 5)
			printf("#    zero fork: page %lu is not zero\n", i);
	expect(&ok, !bad, "zero fork: %lu pages read back wrong\n", bad);
	munmap(area, ZF_PAGES * page_size);
	v = ksm_zero_pages_now();
	expect(&ok, v == 0, "zero fork: ksm_zero_pages %ld after munmap, expected 0\n", v);
	expect_all_gone(&ok, "zero fork");
	set_attr("use_zero_pages", "0");
	ksft_test_result(ok, "zero fork: ksm_zero_pages counts the zero pages fork() copies, never below 0\n");
}

/* ---- ksmd's priority ---- */

static void test_ksmd_nice(void)
{
	struct dirent *d;
	DIR *dir = opendir("/proc");
	int nice = 100;

	while (dir && (d = readdir(dir))) {
		char path[300], buf[512], *p;
		int fd;
		ssize_t n;

		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", d->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (!strstr(buf, "(ksmd)"))
			continue;
		/* Field 19 is nice; count from the ')' that ends field 2. */
		p = strrchr(buf, ')');
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %d",
				&nice) == 1)
			break;
	}
	if (dir)
		closedir(dir);
	ksft_print_msg("ksmd: nice %d\n", nice);
	ksft_test_result(nice == 5, "ksmd runs at nice 5\n");
}

int main(void)
{
	page_size = getpagesize();
	main_pid = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	ksft_set_plan(NR_TESTS);
	if (access(KSM_DIR "/run", W_OK))
		ksft_exit_skip("no writable " KSM_DIR "/run\n");
	atexit(restore_at_exit);

	test_ksmd_nice();
	test_exit_reaped();
	test_fork_during_unmerge();
	test_interrupted_unmerge();
	test_thp_zero();
	test_thp_pace();
	test_thp_collapse();
	test_chains_by_contents();
	test_zero_pages_fork();
	test_migration();

	saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
	ksft_finished();
}
