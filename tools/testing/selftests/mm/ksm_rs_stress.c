// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_stress: a long, randomised run of KSM with the rest of mm around it,
 * for `make stress`. It is not one of the selftests `make test` runs
 * (ksm-rs-selftests leaves it out).
 *
 * Worker processes (--procs, default 4) own a few regions of private
 * anonymous memory (--mib in all, default 256), mostly pages of contents
 * other pages also hold (in the same region, in other regions, in other
 * workers, and in runs of SAME_RUN neighbours), some changing all the
 * time. Each page's contents are a pure
 * function of (region class, page index, generation): the shadow of a
 * process is a per-page (index, generation, state) kept in a MAP_SHARED
 * mapping of its own (never mergeable, not even with PR_SET_MEMORY_MERGE),
 * and a page is checked by generating it again. Every page a process still
 * maps is checked after every operation on it, every ~2 s, when the run
 * stops, and once more after ksmd settled.
 *
 * At random, each worker: writes pages (back to duplicated contents or to
 * new ones); forks (the child writes, runs operations, then exits or execs);
 * exits (and the controller starts a new worker); munmaps whole regions
 * (a new one takes the place) and parts of them; maps new memory into the
 * holes; mremaps (move, grow, shrink); splits VMAs with mprotect;
 * MADV_MERGEABLE / MADV_UNMERGEABLE; PR_SET_MEMORY_MERGE on and off;
 * MADV_PAGEOUT and faults the pages back; THP regions (MADV_HUGEPAGE
 * faults) and MADV_COLLAPSE; move_pages() between the NUMA nodes;
 * MADV_SOFT_OFFLINE of a merged page; MADV_HWPOISON of a merged page in a
 * child of its own on pages of its own (it must get SIGBUS; its other pages
 * must read back intact); userfaultfd write-protect of a merged range and
 * writes into it (resolved by a handler thread); soft-dirty (clear_refs 4,
 * writes, the bit must show).
 *
 * --faults PERCENT: failslab and fail_page_alloc (task-filter, debugfs) fail
 * that share of ksmd's allocations for the whole run, and of the workers'
 * allocations around MADV_UNMERGEABLE and PR_SET_MEMORY_MERGE 0 calls made
 * for it. Those must succeed, or fail with upstream's errno (EAGAIN from
 * madvise, ENOMEM from prctl) and leave nothing half done: every page
 * intact, PR_GET_MEMORY_MERGE still 1 after a failed prctl, and a retry
 * without faults must succeed. The errno counts are printed.
 *
 * The controller (the parent), unless --no-global: ksmd unthrottled
 * (sleep_millisecs=0, pages_to_scan 4000), NUMA balancing on, and at random
 * intervals run=0 then 1, run=2 then 1, max_page_sharing and
 * merge_across_nodes and (ksm_rs) merge_scope changes (run=2 first, then back
 * to run=1), smart_scan,
 * use_zero_pages and numa_balancing flips, a memory block offlined and
 * onlined again; always: echo 1 > /proc/sys/vm/compact_memory. At the end,
 * run=2 must leave every counter of the trees at 0. Every attribute changed
 * is put back (run=2 first).
 *
 * Exits 0 only without mismatches and errors (a process that died of a
 * signal, a poisoned page that did not raise SIGBUS, ksm_zero_pages below
 * 0 in the samples the controller takes every 100 ms, or not back to its
 * value at start once every process of the run exited). Prints a table of the
 * operations, then "### stress: ops=N mismatches=N errors=N bytes_checked=N".
 *
 * KSM_RS_STRESS_SELFTEST=1 changes the expected contents of one page of
 * worker 0 (not the page): the run must report one mismatch and fail.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "kselftest.h"
#include "ksm_rs_util.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT		21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif
#ifndef MADV_HWPOISON
#define MADV_HWPOISON		100
#endif
#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE	101
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE	67
#endif
#ifndef PR_GET_MEMORY_MERGE
#define PR_GET_MEMORY_MERGE	68
#endif
#ifndef MPOL_MF_MOVE_ALL
#define MPOL_MF_MOVE_ALL	(1 << 2)
#endif

/* /proc/self/pagemap and /proc/kpageflags bits. */
#define PM_PFN			((1ULL << 55) - 1)
#define PM_SOFTDIRTY		(1ULL << 55)
#define PM_SWAPPED		(1ULL << 62)
#define PM_PRESENT_BIT		(1ULL << 63)
#define KPF_KSM_BIT		(1ULL << 21)
#define KPF_THP_BIT		(1ULL << 22)
#define KPF_ZERO_BIT		(1ULL << 24)

#define REGIONS_PER_PROC	4
#define MAX_REGIONS		REGIONS_PER_PROC
#define MAX_CHILDREN		8
#define MAX_FORK_CHILDREN	2
#define PERIOD			64	/* pages of one region class repeat */
#define ZERO_SLOT		5	/* index % PERIOD of zero-filled pages */
#define SAME_RUN		4	/* neighbours of equal contents */
#define NR_CLASSES		3	/* contents classes shared by workers */
#define THP_BYTES		(2UL << 20)
#define VERIFY_ALL_MS		2000
#define REPORTS_PER_PROC	8
#define REPORTS_ALL		40
#define HWPOISON_MAX		12
#define HWPOISON_GAP_MS		3000
#define SOFT_OFFLINE_MAX	512
#define SETTLE_TIMEOUT_MS	120000
#define RETIRED			42	/* exit code of a worker that retired */
#define EXEC_MISMATCH		7	/* exit code of the exec'd image */
#define FAULT_ERRNOS		136	/* errno values tallied */
#define FAULT_TIMES		1000000000L
#define OFFLINE_TIMEOUT_S	10

enum op {
	OP_WRITE, OP_VERIFY, OP_MMAP, OP_THP_REGION, OP_FORK, OP_CHILD_EXIT,
	OP_EXEC, OP_EXIT, OP_MUNMAP_WHOLE, OP_MUNMAP_PARTIAL, OP_REFILL,
	OP_MREMAP_MOVE, OP_MREMAP_GROW, OP_MREMAP_SHRINK, OP_MPROTECT,
	OP_MERGEABLE, OP_UNMERGEABLE, OP_PRCTL_ON, OP_PRCTL_OFF, OP_PAGEOUT,
	OP_COLLAPSE, OP_MOVE_PAGES, OP_SOFT_OFFLINE, OP_HWPOISON, OP_UFFD_WP,
	OP_SOFT_DIRTY, OP_UNMERGE_FAULT, OP_PRCTL_OFF_FAULT,
	/* the controller's */
	OP_RUN_0, OP_RUN_2, OP_MAX_PAGE_SHARING, OP_MERGE_ACROSS_NODES,
	OP_SMART_SCAN, OP_USE_ZERO_PAGES, OP_COMPACT, OP_NUMA_BALANCING,
	OP_MEM_OFFLINE, OP_MERGE_SCOPE,
	NR_OPS
};

static const char *const op_names[NR_OPS] = {
	[OP_WRITE] = "write pages",
	[OP_VERIFY] = "verify all pages",
	[OP_MMAP] = "mmap region",
	[OP_THP_REGION] = "THP region (faults)",
	[OP_FORK] = "fork",
	[OP_CHILD_EXIT] = "child exit",
	[OP_EXEC] = "child exec",
	[OP_EXIT] = "worker exit",
	[OP_MUNMAP_WHOLE] = "munmap whole",
	[OP_MUNMAP_PARTIAL] = "munmap partial",
	[OP_REFILL] = "mmap into hole",
	[OP_MREMAP_MOVE] = "mremap move",
	[OP_MREMAP_GROW] = "mremap grow",
	[OP_MREMAP_SHRINK] = "mremap shrink",
	[OP_MPROTECT] = "mprotect split",
	[OP_MERGEABLE] = "MADV_MERGEABLE",
	[OP_UNMERGEABLE] = "MADV_UNMERGEABLE",
	[OP_PRCTL_ON] = "PR_SET_MEMORY_MERGE 1",
	[OP_PRCTL_OFF] = "PR_SET_MEMORY_MERGE 0",
	[OP_PAGEOUT] = "MADV_PAGEOUT+fault",
	[OP_COLLAPSE] = "MADV_COLLAPSE",
	[OP_MOVE_PAGES] = "move_pages",
	[OP_SOFT_OFFLINE] = "MADV_SOFT_OFFLINE",
	[OP_HWPOISON] = "MADV_HWPOISON child",
	[OP_UFFD_WP] = "uffd write-protect",
	[OP_SOFT_DIRTY] = "soft-dirty",
	[OP_UNMERGE_FAULT] = "MADV_UNMERGEABLE+faults",
	[OP_PRCTL_OFF_FAULT] = "PR_SET_MEMORY_MERGE 0+faults",
	[OP_RUN_0] = "run=0 then 1",
	[OP_RUN_2] = "run=2 then 1",
	[OP_MAX_PAGE_SHARING] = "max_page_sharing",
	[OP_MERGE_ACROSS_NODES] = "merge_across_nodes",
	[OP_SMART_SCAN] = "smart_scan flip",
	[OP_USE_ZERO_PAGES] = "use_zero_pages flip",
	[OP_COMPACT] = "compact_memory",
	[OP_NUMA_BALANCING] = "numa_balancing flip",
	[OP_MEM_OFFLINE] = "memory offline+online",
	[OP_MERGE_SCOPE] = "merge_scope (ksm_rs)",
};

/* Observations, not failures: counted and printed. */
enum extra {
	X_THP_BACKED, X_COLLAPSED_PAGES, X_MOVED, X_SWAPPED, X_SOFTOFF_KSM,
	X_HWP_KSM, X_HWP_SIGBUS, X_HWP_SHARER_SIGBUS, X_UFFD_WRITES,
	X_UFFD_FAULTS, X_UFFD_KSM, X_SD_WRITES, X_SD_MISSING, X_KSM_SEEN,
	X_FINAL_MERGING, X_KSM_LEFT, X_UNMERGE_RETRIED, X_OFFLINED_PAGES, X_OFFLINE_POISONED,
	NR_EXTRA
};

static const char *const extra_names[NR_EXTRA] = {
	[X_THP_BACKED] = "THP regions whose first page was a THP",
	[X_COLLAPSED_PAGES] = "pages in successful MADV_COLLAPSE",
	[X_MOVED] = "pages moved by move_pages",
	[X_SWAPPED] = "pages seen swapped after MADV_PAGEOUT",
	[X_SOFTOFF_KSM] = "soft-offlined pages that were KSM pages",
	[X_HWP_KSM] = "poisoned pages that were KSM pages",
	[X_HWP_SIGBUS] = "SIGBUS on the poisoned page",
	[X_HWP_SHARER_SIGBUS] = "SIGBUS on the page that shared it",
	[X_UFFD_WRITES] = "writes into uffd-wp pages",
	[X_UFFD_FAULTS] = "uffd-wp faults handled",
	[X_UFFD_KSM] = "uffd-wp pages found merged before the write",
	[X_SD_WRITES] = "writes after clear_refs",
	[X_SD_MISSING] = "written pages without soft-dirty",
	[X_KSM_SEEN] = "KSM pages seen by the operations",
	[X_FINAL_MERGING] = "ksm_merging_pages of the workers at the end",
	[X_KSM_LEFT] = "KSM pages left by MADV_UNMERGEABLE (shared)",
	[X_UNMERGE_RETRIED] = "unmerges retried after an injected failure",
	[X_OFFLINED_PAGES] = "pages in memory blocks offlined",
	[X_OFFLINE_POISONED] = "blocks offlined, poisoned, left offline",
};

struct op_stat {
	unsigned long ok, failed, unsupported, pages;
	int last_errno;
};

enum phase { PH_RUN, PH_QUIESCE, PH_FINAL };

/* Shared by every process of the run (MAP_SHARED, never mergeable). */
struct shared {
	struct op_stat op[NR_OPS];
	unsigned long extra[NR_EXTRA];
	unsigned long mismatches, errors, bytes_checked, pages_checked;
	unsigned long reports;
	int phase, quiesced;
	unsigned long hwpoison_started, last_hwpoison_ms, soft_offlined;
	/* errno of the unmerges under fault injection (0: success) */
	unsigned long fault_errno[2][FAULT_ERRNOS];
};

enum { S_HOLE, S_ZERO, S_DATA };
#define F_RO			1

/* What page i of a region must hold. */
struct shadow {
	uint32_t lidx;		/* logical index: the contents follow it */
	uint16_t gen;		/* generation: changed by every write */
	uint8_t state;		/* S_HOLE: not mapped; S_ZERO: never written */
	uint8_t flags;		/* F_RO: mprotect(PROT_READ) */
};

struct region {
	bool used, thp;
	char *addr;
	unsigned long n;	/* pages from addr, holes included */
	unsigned long cap;	/* room of sh */
	unsigned long holes, ro;
	uint32_t next_lidx;
	uint64_t class, salt;
	struct shadow *sh;	/* MAP_SHARED, this process's own */
	unsigned long id;
};

enum { CH_FORK, CH_HWPOISON };

struct child {
	pid_t pid;
	int kind;
};

/* One per process (MAP_SHARED, copied after fork: never mergeable). */
struct proc_state {
	struct region r[MAX_REGIONS];
	struct child ch[MAX_CHILDREN];
	int nch, nfork;
	int worker;
	bool is_child, merge_any;
	uint64_t rng;
	unsigned long reports, last_verify_ms, region_ids;
	bool selftest_pending;
};

static unsigned long page_size;
static unsigned long region_pages;
static struct shared *sh;
static struct proc_state *ps;
static pid_t main_pid;
static int nr_nodes;
static bool have_swap;

static struct {
	unsigned long seconds, procs, mib;
	uint64_t seed;
	unsigned long faults;	/* percent of allocations failed, 0: none */
	bool global, selftest;
} opt = { .seconds = 60, .procs = 4, .mib = 256, .seed = 0x6b736d7273ULL,
	  .global = true };

static int nr_mem_blocks;
static unsigned long memory_block_pages;

/* ---- small helpers ---- */

#define ADD(field, v)	__atomic_fetch_add(&(field), (v), __ATOMIC_RELAXED)
#define LOAD(field)	__atomic_load_n(&(field), __ATOMIC_ACQUIRE)
#define STORE(field, v)	__atomic_store_n(&(field), (v), __ATOMIC_RELEASE)

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t rnd(void)
{
	uint64_t x = ps->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	ps->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static unsigned long rnd_below(unsigned long n)
{
	return n ? rnd() % n : 0;
}

static bool chance(unsigned int percent)
{
	return rnd_below(100) < percent;
}

/* The last operation this process finished, for the reports. */
static const char *last_op = "-";

static void op_ok(enum op k, unsigned long pages)
{
	last_op = op_names[k];
	ADD(sh->op[k].ok, 1);
	ADD(sh->op[k].pages, pages);
}

static void op_fail(enum op k, int err)
{
	last_op = op_names[k];
	ADD(sh->op[k].failed, 1);
	STORE(sh->op[k].last_errno, err);
}

static void op_unsup(enum op k, int err)
{
	ADD(sh->op[k].unsupported, 1);
	STORE(sh->op[k].last_errno, err);
}

static bool unsupported_errno(int err)
{
	return err == EINVAL || err == EPERM || err == ENOSYS ||
	       err == EOPNOTSUPP || err == EACCES;
}

static __printf(1, 2) void report(const char *fmt, ...)
{
	va_list ap;

	if (ps && ps->reports++ >= REPORTS_PER_PROC)
		return;
	if (ADD(sh->reports, 1) >= REPORTS_ALL)
		return;
	va_start(ap, fmt);
	printf("# [pid %d] ", getpid());
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static void error(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ADD(sh->errors, 1);
	report("ERROR: %s", buf);
}

static void *map_shared(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* ---- pagemap, kpageflags ---- */

static int pagemap_fd = -1, kpageflags_fd = -1;
static pid_t pagemap_pid;

static uint64_t pagemap_entry(const void *addr)
{
	uint64_t e = 0;

	if (pagemap_pid != getpid()) {
		if (pagemap_fd >= 0)
			close(pagemap_fd);
		pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
		pagemap_pid = getpid();
	}
	if (pagemap_fd < 0 ||
	    pread(pagemap_fd, &e, sizeof(e),
		  (uintptr_t)addr / page_size * sizeof(e)) != sizeof(e))
		return 0;
	return e;
}

static uint64_t kpageflags_of(uint64_t pfn)
{
	uint64_t f = 0;

	if (kpageflags_fd < 0)
		return 0;
	if (pread(kpageflags_fd, &f, sizeof(f), pfn * sizeof(f)) != sizeof(f))
		return 0;
	return f;
}

/* The page's kpageflags, 0 when it is not present. */
static uint64_t page_flags(const void *addr, uint64_t *pfn)
{
	uint64_t e = pagemap_entry(addr);

	if (!(e & PM_PRESENT_BIT) || !(e & PM_PFN))
		return 0;
	if (pfn)
		*pfn = e & PM_PFN;
	return kpageflags_of(e & PM_PFN);
}

static bool page_is_ksm(const void *addr)
{
	uint64_t f = page_flags(addr, NULL);

	return (f & KPF_KSM_BIT) && !(f & KPF_ZERO_BIT);
}

/* ---- the contents ---- */

/* Word j of the page of key k (k != 0; key 0 is a zero-filled page). */
static inline uint64_t word_of(uint64_t k, unsigned long j)
{
	return (k ^ (j * 0x9e3779b97f4a7c15ULL)) * 0xd6e8feb86659fd93ULL;
}

static uint64_t key_of(const struct region *r, const struct shadow *e)
{
	uint64_t k;

	if (e->state != S_DATA)
		return 0;
	if (e->gen == 0 && e->lidx % PERIOD == ZERO_SLOT)
		return 0;
	if (e->lidx % 16 == 15)		/* one page in 16: this region's own */
		k = mix64(r->salt ^ ((uint64_t)e->lidx << 20) ^ e->gen);
	else	/* runs of SAME_RUN equal pages: ksm_rs merges them in one go */
		k = mix64(r->class ^
			  mix64(((uint64_t)(e->lidx % PERIOD / SAME_RUN) << 16) |
				e->gen));
	return k ? k : 1;
}

static char *page_at(const struct region *r, unsigned long i)
{
	return r->addr + i * page_size;
}

static void fill_page(struct region *r, unsigned long i)
{
	uint64_t *p = (uint64_t *)page_at(r, i);
	uint64_t k = key_of(r, &r->sh[i]);
	unsigned long j, words = page_size / 8;

	if (!k) {
		memset(p, 0, page_size);
		return;
	}
	for (j = 0; j < words; j++)
		p[j] = word_of(k, j);
}

static unsigned long local_bytes, local_pages;

static void flush_checked(void)
{
	ADD(sh->bytes_checked, local_bytes);
	ADD(sh->pages_checked, local_pages);
	local_bytes = local_pages = 0;
}

/* Compares page i with its shadow; on a mismatch, reports and rewrites it. */
static bool verify_page(struct region *r, unsigned long i, const char *when)
{
	struct shadow *e = &r->sh[i];
	const volatile uint64_t *p = (const volatile uint64_t *)page_at(r, i);
	unsigned long j, words = page_size / 8;
	uint64_t k, want = 0, got = 0;

	if (e->state == S_HOLE)
		return true;
	k = key_of(r, e);
	for (j = 0; j < words; j++) {
		got = p[j];
		want = k ? word_of(k, j) : 0;
		if (got != want)
			break;
	}
	local_bytes += page_size;
	local_pages++;
	if (j == words)
		return true;
	ADD(sh->mismatches, 1);
	report("MISMATCH (%s): worker %d region %lu page %lu of %lu (lidx %u gen %u state %d%s%s) word %lu: %#" PRIx64 ", expected %#" PRIx64 "; word 0 %#" PRIx64 ", expected %#" PRIx64 "\n",
	       when, ps->worker, r->id, i, r->n, e->lidx, e->gen, e->state,
	       e->flags & F_RO ? " ro" : "", page_is_ksm(page_at(r, i)) ?
	       " ksm" : "", j, got, want, (uint64_t)p[0],
	       k ? word_of(k, 0) : 0);
	if (!(e->flags & F_RO))
		fill_page(r, i);
	return false;
}

static unsigned long verify_range(struct region *r, unsigned long a,
				  unsigned long b, const char *when)
{
	unsigned long i, bad = 0;

	if (b > r->n)
		b = r->n;
	for (i = a; i < b; i++)
		bad += !verify_page(r, i, when);
	flush_checked();
	return bad;
}

static void maybe_selftest_corrupt(void)
{
	struct region *r = &ps->r[1];
	unsigned long i;

	if (!ps->selftest_pending || ps->is_child || !r->used)
		return;
	for (i = 0; i < r->n; i++) {
		if (r->sh[i].state == S_DATA && !(r->sh[i].flags & F_RO)) {
			r->sh[i].gen ^= 0x4000;
			ps->selftest_pending = false;
			ksft_print_msg("selftest: worker %d region %lu page %lu: expected contents changed (gen %u), not the page\n",
				       ps->worker, r->id, i, r->sh[i].gen);
			return;
		}
	}
}

static void verify_all(const char *when)
{
	int k;

	maybe_selftest_corrupt();
	for (k = 0; k < MAX_REGIONS; k++)
		if (ps->r[k].used)
			verify_range(&ps->r[k], 0, ps->r[k].n, when);
	op_ok(OP_VERIFY, 0);
	ps->last_verify_ms = now_ms();
}

/* ---- regions ---- */

static struct region *pick_region(void)
{
	int k, start = rnd_below(MAX_REGIONS);

	for (k = 0; k < MAX_REGIONS; k++) {
		struct region *r = &ps->r[(start + k) % MAX_REGIONS];

		if (r->used && r->holes < r->n)
			return r;
	}
	return NULL;
}

/* A random run of at most @max mapped pages: [*a, *a + *len). */
static bool pick_run(struct region *r, unsigned long max, unsigned long *a,
		     unsigned long *len)
{
	unsigned long i, n, tries;

	if (!max)
		max = 1;
	for (tries = 0; tries < 8; tries++) {
		i = rnd_below(r->n);
		if (r->sh[i].state == S_HOLE)
			continue;
		n = 1 + rnd_below(max);
		*a = i;
		for (*len = 0; *len < n && i < r->n && r->sh[i].state != S_HOLE;
		     i++)
			++*len;
		return true;
	}
	return false;
}

typedef int (*run_fn)(struct region *r, unsigned long a, unsigned long len,
		      long arg);

/* Calls fn on every run of mapped pages of the region. */
static int for_each_run(struct region *r, run_fn fn, long arg)
{
	unsigned long i = 0, j;
	int ret = 0;

	while (i < r->n) {
		if (r->sh[i].state == S_HOLE) {
			i++;
			continue;
		}
		for (j = i; j < r->n && r->sh[j].state != S_HOLE; j++)
			;
		if (fn(r, i, j - i, arg))
			ret = errno ? errno : -1;
		i = j;
	}
	return ret;
}

static int run_madvise(struct region *r, unsigned long a, unsigned long len,
		       long advice)
{
	return madvise(page_at(r, a), len * page_size, advice);
}

static int run_munmap(struct region *r, unsigned long a, unsigned long len,
		      long unused)
{
	return munmap(page_at(r, a), len * page_size);
}

/* @bytes of address space aligned to @align, or NULL. */
static char *map_aligned(size_t bytes, size_t align, int prot)
{
	char *raw, *p;
	size_t extra = align > page_size ? align : 0;

	raw = mmap(NULL, bytes + extra, prot,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	if (!extra)
		return raw;
	p = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	if (p > raw)
		munmap(raw, p - raw);
	if (p + bytes < raw + bytes + extra)
		munmap(p + bytes, raw + bytes + extra - (p + bytes));
	return p;
}

static uint64_t global_class(int c)
{
	return mix64(opt.seed ^ (0x636c617373ULL + c));
}

static void region_create(struct region *r, bool thp)
{
	unsigned long i, n = region_pages;
	enum op k = thp ? OP_THP_REGION : OP_MMAP;

	memset(r, 0, sizeof(*r));
	if (thp)
		n = (n + THP_BYTES / page_size - 1) / (THP_BYTES / page_size) *
		    (THP_BYTES / page_size);
	r->cap = n + n / 2;
	r->sh = map_shared(r->cap * sizeof(*r->sh));
	if (!r->sh) {
		op_fail(k, errno);
		return;
	}
	r->addr = map_aligned(n * page_size, thp ? THP_BYTES : page_size,
			      PROT_READ | PROT_WRITE);
	if (!r->addr) {
		op_fail(k, errno);
		munmap(r->sh, r->cap * sizeof(*r->sh));
		return;
	}
	madvise(r->addr, n * page_size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	r->thp = thp;
	r->n = n;
	r->id = ++ps->region_ids;
	r->class = chance(85) ? global_class(rnd_below(NR_CLASSES)) :
				mix64(rnd() | 1);
	r->salt = mix64(rnd() ^ getpid());
	for (i = 0; i < n; i++) {
		r->sh[i] = (struct shadow){ .lidx = i, .state = S_DATA,
					    .gen = chance(10) ? rnd_below(4) : 0 };
		fill_page(r, i);
	}
	r->next_lidx = n;
	r->used = true;
	if (chance(90))
		madvise(r->addr, n * page_size, MADV_MERGEABLE);
	if (thp && (page_flags(r->addr, NULL) & KPF_THP_BIT))
		ADD(sh->extra[X_THP_BACKED], 1);
	op_ok(k, n);
}

static void region_destroy(struct region *r)
{
	for_each_run(r, run_munmap, 0);
	munmap(r->sh, r->cap * sizeof(*r->sh));
	r->used = false;
}

/* One VMA for the whole region (no holes): every page RW and mergeable. */
static void region_normalize(struct region *r)
{
	unsigned long i;

	if (r->ro) {
		mprotect(r->addr, r->n * page_size, PROT_READ | PROT_WRITE);
		for (i = 0; i < r->n; i++)
			r->sh[i].flags &= ~F_RO;
		r->ro = 0;
	}
	madvise(r->addr, r->n * page_size, MADV_MERGEABLE);
}

/* ---- worker operations ---- */

static void op_write(struct region *r)
{
	unsigned long a, len, i, n = 0;

	if (!pick_run(r, 64, &a, &len))
		return;
	for (i = a; i < a + len; i++) {
		struct shadow *e = &r->sh[i];

		if (e->flags & F_RO)
			continue;
		e->state = S_DATA;
		e->gen = chance(80) ? rnd_below(4) : 4 + rnd_below(60000);
		fill_page(r, i);
		n++;
	}
	verify_range(r, a, a + len, "after write");
	op_ok(OP_WRITE, n);
}

static void op_munmap_whole(struct region *r)
{
	bool thp = chance(25);

	region_destroy(r);
	op_ok(OP_MUNMAP_WHOLE, 0);
	region_create(r, thp);
}

static void op_munmap_partial(struct region *r)
{
	unsigned long a, len, i;

	if (!pick_run(r, r->n / 4, &a, &len))
		return;
	if (munmap(page_at(r, a), len * page_size)) {
		op_fail(OP_MUNMAP_PARTIAL, errno);
		return;
	}
	for (i = a; i < a + len; i++) {
		r->ro -= !!(r->sh[i].flags & F_RO);
		r->sh[i].state = S_HOLE;
		r->sh[i].flags = 0;
	}
	r->holes += len;
	op_ok(OP_MUNMAP_PARTIAL, len);
	verify_range(r, a ? a - 1 : 0, a + len + 1, "around munmap");
	if (r->holes == r->n) {
		region_destroy(r);
		region_create(r, chance(25));
	}
}

/* New memory in a hole: MAP_FIXED_NOREPLACE, nothing else is replaced. */
static void op_refill(struct region *r)
{
	unsigned long start = rnd_below(r->n), i, a, len;
	char *p;

	if (!r->holes)
		return;
	for (i = 0; i < r->n; i++)
		if (r->sh[(start + i) % r->n].state == S_HOLE)
			break;
	if (i == r->n)
		return;
	a = (start + i) % r->n;
	for (len = 0; a + len < r->n && r->sh[a + len].state == S_HOLE &&
		      len < 256; len++)
		;
	p = mmap(page_at(r, a), len * page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED) {
		op_fail(OP_REFILL, errno);
		return;
	}
	if (p != page_at(r, a)) {
		munmap(p, len * page_size);
		op_fail(OP_REFILL, EEXIST);
		return;
	}
	for (i = a; i < a + len; i++)
		r->sh[i] = (struct shadow){ .lidx = r->next_lidx++,
					    .state = S_ZERO };
	r->holes -= len;
	if (chance(70))
		madvise(p, len * page_size, MADV_MERGEABLE);
	if (chance(50))
		for (i = a; i < a + len; i++) {
			r->sh[i].state = S_DATA;
			fill_page(r, i);
		}
	verify_range(r, a, a + len, "after mmap into hole");
	op_ok(OP_REFILL, len);
}

static void op_mremap_move(struct region *r)
{
	size_t bytes = r->n * page_size;
	char *dst, *p;

	if (r->holes)
		return;
	region_normalize(r);
	dst = map_aligned(bytes, r->thp && chance(50) ? THP_BYTES : page_size,
			  PROT_NONE);
	if (!dst) {
		op_fail(OP_MREMAP_MOVE, errno);
		return;
	}
	p = mremap(r->addr, bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	if (p == MAP_FAILED) {
		op_fail(OP_MREMAP_MOVE, errno);
		munmap(dst, bytes);
		return;
	}
	r->addr = p;
	op_ok(OP_MREMAP_MOVE, r->n);
	verify_range(r, 0, r->n, "after mremap move");
}

static void op_mremap_grow(struct region *r)
{
	unsigned long k, i, room = r->cap - r->n;
	char *p;

	if (r->holes || !room)
		return;
	k = 1 + rnd_below(room < r->n / 4 ? room : r->n / 4);
	region_normalize(r);
	p = mremap(r->addr, r->n * page_size, (r->n + k) * page_size,
		   MREMAP_MAYMOVE);
	if (p == MAP_FAILED) {
		op_fail(OP_MREMAP_GROW, errno);
		return;
	}
	r->addr = p;
	for (i = r->n; i < r->n + k; i++)
		r->sh[i] = (struct shadow){ .lidx = r->next_lidx++,
					    .state = S_ZERO };
	r->n += k;
	op_ok(OP_MREMAP_GROW, k);
	verify_range(r, 0, r->n, "after mremap grow");
	for (i = r->n - k; i < r->n; i++)
		if (chance(50)) {
			r->sh[i].state = S_DATA;
			fill_page(r, i);
		}
}

static void op_mremap_shrink(struct region *r)
{
	unsigned long k;
	char *p;

	if (r->holes || r->n < 8)
		return;
	k = 1 + rnd_below(r->n / 4);
	region_normalize(r);
	p = mremap(r->addr, r->n * page_size, (r->n - k) * page_size, 0);
	if (p == MAP_FAILED) {
		op_fail(OP_MREMAP_SHRINK, errno);
		return;
	}
	r->n -= k;
	op_ok(OP_MREMAP_SHRINK, k);
	verify_range(r, 0, r->n, "after mremap shrink");
}

static void op_mprotect(struct region *r)
{
	unsigned long a, len, i;
	bool ro = chance(60);

	if (!pick_run(r, r->n / 8, &a, &len))
		return;
	if (mprotect(page_at(r, a), len * page_size,
		     ro ? PROT_READ : PROT_READ | PROT_WRITE)) {
		op_fail(OP_MPROTECT, errno);
		return;
	}
	for (i = a; i < a + len; i++) {
		bool was = r->sh[i].flags & F_RO;

		if (ro && !was) {
			r->sh[i].flags |= F_RO;
			r->ro++;
		} else if (!ro && was) {
			r->sh[i].flags &= ~F_RO;
			r->ro--;
		}
	}
	op_ok(OP_MPROTECT, len);
	verify_range(r, a, a + len, "after mprotect");
}

static unsigned long ksm_pages_in(struct region *r, unsigned long a,
				  unsigned long len);

/* The VmFlags of the VMA that maps @addr, from /proc/self/smaps. */
static const char *vma_flags_of(const void *addr)
{
	static char flags[256];
	char line[256];
	unsigned long lo, hi;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	snprintf(flags, sizeof(flags), "no VMA");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(flags, sizeof(flags), "%.*s", (int)strcspn(line, "\n"), line);
			break;
		}
	}
	if (f)
		fclose(f);
	return flags;
}

/*
 * After MADV_UNMERGEABLE succeeded on [a, a + len): KSM pages still mapped
 * there (looked at before anything faults a swapped-out page back:
 * do_swap_page() may map a KSM page of the swap cache as it is). Counted,
 * not an error: a page that fork() shares becomes a KSM page for every
 * process that maps it when ksmd merges it in one of them
 * (try_to_merge_one_page() with no kpage), even where that process's VMA is
 * no longer VM_MERGEABLE, and a child that exited shares its pages until
 * its mm is torn down, which ksmd may hold off. Seen on mm/ksm.c as on
 * ksm_rs; MADV_MERGEABLE then MADV_UNMERGEABLE again unmerges them.
 */
static void expect_unmerged(struct region *r, unsigned long a,
			    unsigned long len)
{
	unsigned long left, i;

	left = ksm_pages_in(r, a, len);
	if (!left)
		return;
	ADD(sh->extra[X_KSM_LEFT], left);
	for (i = a; i < a + len; i++)
		if (r->sh[i].state != S_HOLE && page_is_ksm(page_at(r, i)))
			break;
	report("%lu KSM pages still mapped where MADV_UNMERGEABLE succeeded, the first at %p (%s, page %lu of [%lu, %lu) of a %s region, %s, last op %s): %s\n",
	      left, page_at(r, i), r->sh[i].flags & F_RO ? "read-only" : "writable",
	      i, a, a + len, r->thp ? "THP" : "small-page",
	      ps->is_child ? "fork child" : "worker", last_op,
	      vma_flags_of(page_at(r, i)));
	/* Can they be unmerged at all? */
	if (!madvise(page_at(r, a), len * page_size, MADV_MERGEABLE) &&
	    !madvise(page_at(r, a), len * page_size, MADV_UNMERGEABLE))
		report("after MADV_MERGEABLE and MADV_UNMERGEABLE again: %lu KSM pages\n",
		       ksm_pages_in(r, a, len));
}

static void op_madvise_merge(struct region *r, bool merge)
{
	enum op k = merge ? OP_MERGEABLE : OP_UNMERGEABLE;
	int advice = merge ? MADV_MERGEABLE : MADV_UNMERGEABLE;
	unsigned long a, len;

	if (chance(30)) {
		int err = for_each_run(r, run_madvise, advice);

		if (err)
			op_fail(k, err);
		else
			op_ok(k, r->n - r->holes);
		if (!merge && !err)
			expect_unmerged(r, 0, r->n);
		if (!merge)
			verify_range(r, 0, r->n, "after MADV_UNMERGEABLE");
		return;
	}
	if (!pick_run(r, r->n / 4, &a, &len))
		return;
	if (madvise(page_at(r, a), len * page_size, advice)) {
		op_fail(k, errno);
		return;
	}
	op_ok(k, len);
	if (!merge) {
		expect_unmerged(r, a, len);
		verify_range(r, a, a + len, "after MADV_UNMERGEABLE");
	}
}

static void op_prctl(void)
{
	bool on = !ps->merge_any;
	enum op k = on ? OP_PRCTL_ON : OP_PRCTL_OFF;

	if (prctl(PR_SET_MEMORY_MERGE, on, 0, 0, 0)) {
		if (unsupported_errno(errno))
			op_unsup(k, errno);
		else
			op_fail(k, errno);
		return;
	}
	ps->merge_any = on;
	op_ok(k, 0);
	if (!on)
		verify_all("after PR_SET_MEMORY_MERGE 0");
}

/* ---- unmerging under injected allocation failures (--faults) ---- */

/*
 * This task's allocations fail at the rate the controller set in failslab
 * and fail_page_alloc (task-filter): only between inject(true) and
 * inject(false), around one system call, which must then fail with the
 * errno upstream gives (madvise() turns ENOMEM into EAGAIN) or succeed,
 * and leave nothing half done.
 *
 * The file is opened before the failures start and written through that
 * descriptor to stop them: an open() with make-it-fail set may itself fail
 * (failslab on the struct file), which would leave every later allocation
 * of this task, and of the children it forks (task_struct is copied), failing
 * at random: page faults, swap-out, fork.
 */
static int inject_fd = -1;

static bool inject(bool on)
{
	if (on) {
		inject_fd = open("/proc/thread-self/make-it-fail", O_WRONLY);
		if (inject_fd < 0)
			return false;
		if (write(inject_fd, "1", 1) == 1)
			return true;
		close(inject_fd);
		inject_fd = -1;
		return false;
	}
	if (inject_fd < 0)
		return true;
	/* Writing "0" allocates nothing (proc_fault_inject_write()). */
	while (write(inject_fd, "0", 1) != 1) {
		if (errno != EINTR && errno != EAGAIN) {
			error("cannot stop the injected failures: %s\n", strerror(errno));
			_exit(1);
		}
	}
	close(inject_fd);
	inject_fd = -1;
	return true;
}

static void tally_fault(int which, int err)
{
	ADD(sh->fault_errno[which][err >= 0 && err < FAULT_ERRNOS ?
				   err : FAULT_ERRNOS - 1], 1);
}

/* Mapped KSM pages of [a, a + len): read before anything faults them in. */
static unsigned long ksm_pages_in(struct region *r, unsigned long a,
				  unsigned long len)
{
	unsigned long i, n = 0;

	for (i = a; i < a + len; i++)
		if (r->sh[i].state != S_HOLE && page_is_ksm(page_at(r, i)))
			n++;
	return n;
}

static void op_unmerge_fault(struct region *r)
{
	unsigned long a, len;
	int err = 0;

	if (!pick_run(r, r->n / 2, &a, &len))
		return;
	if (!inject(true)) {
		op_unsup(OP_UNMERGE_FAULT, errno);
		return;
	}
	if (madvise(page_at(r, a), len * page_size, MADV_UNMERGEABLE))
		err = errno;
	inject(false);
	tally_fault(0, err);
	if (err && err != EAGAIN && err != ENOMEM) {
		error("MADV_UNMERGEABLE under injected failures: %s\n",
		      strerror(err));
		op_fail(OP_UNMERGE_FAULT, err);
		verify_range(r, a, a + len, "after MADV_UNMERGEABLE+faults");
		return;
	}
	if (err) {
		/* Nothing lost, and the range can still be unmerged. */
		verify_range(r, a, a + len, "after a failed MADV_UNMERGEABLE");
		ADD(sh->extra[X_UNMERGE_RETRIED], 1);
		if (madvise(page_at(r, a), len * page_size, MADV_UNMERGEABLE)) {
			error("MADV_UNMERGEABLE after an injected failure: %s\n",
			      strerror(errno));
			op_fail(OP_UNMERGE_FAULT, errno);
			return;
		}
	}
	expect_unmerged(r, a, len);
	verify_range(r, a, a + len, "after MADV_UNMERGEABLE+faults");
	op_ok(OP_UNMERGE_FAULT, len);
}

static void op_prctl_off_fault(void)
{
	int err = 0, got;

	if (!ps->merge_any) {
		if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
			op_unsup(OP_PRCTL_OFF_FAULT, errno);
			return;
		}
		ps->merge_any = true;
	}
	if (!inject(true)) {
		op_unsup(OP_PRCTL_OFF_FAULT, errno);
		return;
	}
	if (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0))
		err = errno;
	inject(false);
	tally_fault(1, err);
	if (err && err != ENOMEM && err != EAGAIN)
		error("PR_SET_MEMORY_MERGE 0 under injected failures: %s\n",
		      strerror(err));
	/* ksm_disable_merge_any(): on failure, every VMA mergeable again. */
	got = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	if (got != (err ? 1 : 0))
		error("PR_GET_MEMORY_MERGE reads %d after PR_SET_MEMORY_MERGE 0 %s\n",
		      got, err ? "failed" : "succeeded");
	if (err) {
		verify_all("after a failed PR_SET_MEMORY_MERGE 0");
		ADD(sh->extra[X_UNMERGE_RETRIED], 1);
		if (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0)) {
			error("PR_SET_MEMORY_MERGE 0 after an injected failure: %s\n",
			      strerror(errno));
			op_fail(OP_PRCTL_OFF_FAULT, errno);
			return;
		}
	}
	ps->merge_any = false;
	verify_all("after PR_SET_MEMORY_MERGE 0+faults");
	op_ok(OP_PRCTL_OFF_FAULT, 0);
}

static void op_pageout(struct region *r)
{
	unsigned long a, len, i, swapped = 0;

	if (!pick_run(r, 256, &a, &len))
		return;
	for (i = a; i < a + len; i++)
		ADD(sh->extra[X_KSM_SEEN], page_is_ksm(page_at(r, i)));
	if (madvise(page_at(r, a), len * page_size, MADV_PAGEOUT)) {
		if (unsupported_errno(errno) && errno != EINVAL)
			op_unsup(OP_PAGEOUT, errno);
		else
			op_fail(OP_PAGEOUT, errno);
		return;
	}
	if (have_swap)
		for (i = a; i < a + len; i++)
			swapped += !!(pagemap_entry(page_at(r, i)) & PM_SWAPPED);
	ADD(sh->extra[X_SWAPPED], swapped);
	op_ok(OP_PAGEOUT, len);
	verify_range(r, a, a + len, "after MADV_PAGEOUT");
}

static void op_collapse(struct region *r)
{
	unsigned long per = THP_BYTES / page_size, first, i, w, nw, a;
	uintptr_t base = (uintptr_t)r->addr;

	if (!r->thp)
		return;
	first = ((base + THP_BYTES - 1) & ~(THP_BYTES - 1)) - base;
	first /= page_size;
	if (first + per > r->n)
		return;
	nw = (r->n - first) / per;
	w = rnd_below(nw);
	a = first + w * per;
	for (i = a; i < a + per; i++)
		if (r->sh[i].state == S_HOLE)
			return;
	if (madvise(page_at(r, a), THP_BYTES, MADV_COLLAPSE)) {
		if (errno == ENOSYS)
			op_unsup(OP_COLLAPSE, errno);
		else
			op_fail(OP_COLLAPSE, errno);
	} else {
		op_ok(OP_COLLAPSE, per);
		ADD(sh->extra[X_COLLAPSED_PAGES], per);
	}
	verify_range(r, a, a + per, "after MADV_COLLAPSE");
}

static void op_move_pages(struct region *r)
{
	void *pages[64];
	int nodes[64], status[64];
	unsigned long a, len, i, moved = 0;
	int node;
	long ret;

	if (nr_nodes < 2) {
		op_unsup(OP_MOVE_PAGES, 0);
		return;
	}
	if (!pick_run(r, 64, &a, &len))
		return;
	node = rnd_below(nr_nodes);
	for (i = 0; i < len; i++) {
		pages[i] = page_at(r, a + i);
		nodes[i] = node;
		status[i] = -1;
		ADD(sh->extra[X_KSM_SEEN], page_is_ksm(pages[i]));
	}
	ret = syscall(__NR_move_pages, 0, len, pages, nodes, status,
		      MPOL_MF_MOVE_ALL);
	if (ret < 0) {
		if (errno == ENOSYS)
			op_unsup(OP_MOVE_PAGES, errno);
		else
			op_fail(OP_MOVE_PAGES, errno);
	} else {
		for (i = 0; i < len; i++)
			moved += status[i] == node;
		ADD(sh->extra[X_MOVED], moved);
		op_ok(OP_MOVE_PAGES, len);
	}
	verify_range(r, a, a + len, "after move_pages");
}

/* A page with contents of its own (not zero-filled) and present. */
static bool data_page(struct region *r, unsigned long i)
{
	uint64_t f;

	if (r->sh[i].state != S_DATA || !key_of(r, &r->sh[i]))
		return false;
	f = page_flags(page_at(r, i), NULL);
	return f && !(f & KPF_ZERO_BIT);
}

static void op_soft_offline(struct region *r)
{
	unsigned long a, len, i, pick = ULONG_MAX;

	if (LOAD(sh->soft_offlined) >= SOFT_OFFLINE_MAX)
		return;
	if (!pick_run(r, 64, &a, &len))
		return;
	verify_range(r, a, a + len, "before MADV_SOFT_OFFLINE");
	for (i = a; i < a + len; i++) {
		if (!data_page(r, i))
			continue;
		if (pick == ULONG_MAX)
			pick = i;
		if (page_is_ksm(page_at(r, i))) {
			pick = i;
			ADD(sh->extra[X_SOFTOFF_KSM], 1);
			break;
		}
	}
	if (pick == ULONG_MAX)
		return;
	ADD(sh->soft_offlined, 1);
	if (madvise(page_at(r, pick), page_size, MADV_SOFT_OFFLINE)) {
		if (unsupported_errno(errno))
			op_unsup(OP_SOFT_OFFLINE, errno);
		else
			op_fail(OP_SOFT_OFFLINE, errno);
	} else {
		op_ok(OP_SOFT_OFFLINE, 1);
	}
	verify_range(r, a, a + len, "after MADV_SOFT_OFFLINE");
}

/* -- userfaultfd write-protect -- */

struct uffd_handler {
	int fd;
	volatile int done;
	unsigned long faults;
};

static void *uffd_handler_thread(void *arg)
{
	struct uffd_handler *h = arg;
	struct uffd_msg msg;

	while (!h->done) {
		struct pollfd pfd = { .fd = h->fd, .events = POLLIN };

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		while (read(h->fd, &msg, sizeof(msg)) == sizeof(msg)) {
			struct uffdio_writeprotect wp = { 0 };

			if (msg.event != UFFD_EVENT_PAGEFAULT)
				continue;
			wp.range.start = msg.arg.pagefault.address &
					 ~(uint64_t)(page_size - 1);
			wp.range.len = page_size;
			wp.mode = 0;	/* un-protect and wake the writer */
			ioctl(h->fd, UFFDIO_WRITEPROTECT, &wp);
			if (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)
				h->faults++;
		}
	}
	return NULL;
}

static void op_uffd_wp(struct region *r)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	struct uffdio_writeprotect wp = { 0 };
	struct uffd_handler h = { 0 };
	unsigned long a, len, i, writes = 0, merged = 0;
	pthread_t t;
	int fd;

	if (!pick_run(r, 32, &a, &len))
		return;
	fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM)
		fd = syscall(__NR_userfaultfd,
			     O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		op_unsup(OP_UFFD_WP, errno);
		return;
	}
	if (ioctl(fd, UFFDIO_API, &api) ||
	    !(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		op_unsup(OP_UFFD_WP, errno);
		close(fd);
		return;
	}
	/* Every page present (the zero page for the unwritten ones). */
	verify_range(r, a, a + len, "before uffd-wp");
	reg.range.start = (uintptr_t)page_at(r, a);
	reg.range.len = len * page_size;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	if (ioctl(fd, UFFDIO_REGISTER, &reg)) {
		if (errno == EINVAL)
			op_unsup(OP_UFFD_WP, errno);
		else
			op_fail(OP_UFFD_WP, errno);
		close(fd);
		return;
	}
	wp.range = reg.range;
	wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
	if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp)) {
		op_fail(OP_UFFD_WP, errno);
		goto out;
	}
	/* Let ksmd merge write-protected pages. */
	usleep(50000 + rnd_below(250000));
	verify_range(r, a, a + len, "uffd-wp");
	h.fd = fd;
	if (pthread_create(&t, NULL, uffd_handler_thread, &h)) {
		op_fail(OP_UFFD_WP, errno);
		goto out;
	}
	for (i = a; i < a + len; i++) {
		struct shadow *e = &r->sh[i];

		if (e->flags & F_RO || !chance(70))
			continue;
		merged += page_is_ksm(page_at(r, i));
		e->state = S_DATA;
		e->gen = rnd_below(4);
		fill_page(r, i);
		writes++;
	}
	h.done = 1;
	pthread_join(t, NULL);
	ADD(sh->extra[X_UFFD_WRITES], writes);
	ADD(sh->extra[X_UFFD_FAULTS], h.faults);
	ADD(sh->extra[X_UFFD_KSM], merged);
	op_ok(OP_UFFD_WP, len);
out:
	wp.mode = 0;
	ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
	ioctl(fd, UFFDIO_UNREGISTER, &reg.range);
	close(fd);
	verify_range(r, a, a + len, "after uffd-wp");
}

static void op_soft_dirty(struct region *r)
{
	unsigned long a, len, i, writes = 0, missing = 0;
	int fd;

	if (!pick_run(r, 32, &a, &len))
		return;
	fd = open("/proc/self/clear_refs", O_WRONLY);
	if (fd < 0 || write(fd, "4", 1) != 1) {
		op_unsup(OP_SOFT_DIRTY, errno);
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	verify_range(r, a, a + len, "after clear_refs");
	for (i = a; i < a + len; i++) {
		struct shadow *e = &r->sh[i];

		if (e->flags & F_RO || !chance(50))
			continue;
		ADD(sh->extra[X_KSM_SEEN], page_is_ksm(page_at(r, i)));
		e->state = S_DATA;
		e->gen = rnd_below(4);
		fill_page(r, i);
		writes++;
		missing += !(pagemap_entry(page_at(r, i)) & PM_SOFTDIRTY);
	}
	ADD(sh->extra[X_SD_WRITES], writes);
	ADD(sh->extra[X_SD_MISSING], missing);
	op_ok(OP_SOFT_DIRTY, len);
	verify_range(r, a, a + len, "after soft-dirty writes");
}

/* -- children -- */

static void add_child(pid_t pid, int kind)
{
	if (ps->nch < MAX_CHILDREN)
		ps->ch[ps->nch++] = (struct child){ pid, kind };
	if (kind == CH_FORK)
		ps->nfork++;
}

static void child_done(pid_t pid, int status)
{
	int i, kind = -1;

	for (i = 0; i < ps->nch; i++)
		if (ps->ch[i].pid == pid) {
			kind = ps->ch[i].kind;
			ps->ch[i] = ps->ch[--ps->nch];
			break;
		}
	if (kind == CH_FORK)
		ps->nfork--;
	if (WIFSIGNALED(status)) {
		error("child %d (%s) killed by signal %d\n", pid,
		      kind == CH_HWPOISON ? "hwpoison" : "fork",
		      WTERMSIG(status));
		if (kind == CH_HWPOISON)
			op_fail(OP_HWPOISON, 0);
		return;
	}
	status = WEXITSTATUS(status);
	if (kind == CH_FORK) {
		if (status == EXEC_MISMATCH)
			ADD(sh->mismatches, 1);
		else if (status)
			error("forked child %d exited with %d\n", pid, status);
		return;
	}
	switch (status) {
	case 0:
		op_ok(OP_HWPOISON, 1);
		break;
	case 3:
		op_unsup(OP_HWPOISON, 0);
		break;
	case 5:		/* its other pages differ: a mismatch, counted */
		op_fail(OP_HWPOISON, 0);
		break;
	default:
		op_fail(OP_HWPOISON, status);
		error("hwpoison child %d exited with %d\n", pid, status);
	}
}

static void reap_children(bool block)
{
	int status;
	pid_t pid;

	while (ps->nch) {
		pid = waitpid(-1, &status, block ? 0 : WNOHANG);
		if (pid <= 0)
			break;
		child_done(pid, status);
	}
}

/*
 * Before fork: a copy of this process's state and shadows, for the child
 * (ours are MAP_SHARED: the child must not see what we change after fork).
 */
static struct proc_state *clone_state(void)
{
	struct proc_state *n = map_shared(sizeof(*ps));
	int k;

	if (!n)
		return NULL;
	*n = *ps;
	for (k = 0; k < MAX_REGIONS; k++) {
		struct region *r = &n->r[k];

		if (!r->used)
			continue;
		r->sh = map_shared(r->cap * sizeof(*r->sh));
		if (!r->sh) {
			while (--k >= 0)
				if (n->r[k].used)
					munmap(n->r[k].sh,
					       n->r[k].cap * sizeof(*r->sh));
			munmap(n, sizeof(*n));
			return NULL;
		}
		memcpy(r->sh, ps->r[k].sh, r->cap * sizeof(*r->sh));
	}
	return n;
}

/* Unmaps the state @s and its shadows (from this process only). */
static void drop_state(struct proc_state *s)
{
	int k;

	for (k = 0; k < MAX_REGIONS; k++)
		if (s->r[k].used)
			munmap(s->r[k].sh, s->r[k].cap * sizeof(*s->r[k].sh));
	munmap(s, sizeof(*s));
}

/* In the child: the copy made before fork becomes our state. */
static void privatize(struct proc_state *copy)
{
	struct proc_state *old = ps;

	ps = copy;
	drop_state(old);
	ps->nch = ps->nfork = 0;
	ps->is_child = true;
	ps->selftest_pending = false;
	ps->rng = mix64(ps->rng ^ getpid());
}

static void worker_loop(unsigned long until_ms);
static char self_exe[PATH_MAX];

static void op_fork(void)
{
	struct proc_state *copy;
	unsigned long ms;
	pid_t pid;

	if (ps->is_child || ps->nfork >= MAX_FORK_CHILDREN)
		return;
	ms = 300 + rnd_below(2000);
	copy = clone_state();
	if (!copy) {
		op_fail(OP_FORK, errno);
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		op_fail(OP_FORK, errno);
		drop_state(copy);
		return;
	}
	if (pid) {
		drop_state(copy);
		add_child(pid, CH_FORK);
		op_ok(OP_FORK, 0);
		return;
	}
	privatize(copy);
	verify_all("child after fork");
	worker_loop(now_ms() + ms);
	verify_all("child at exit");
	if (chance(30) && self_exe[0]) {
		char seed[32];

		snprintf(seed, sizeof(seed), "%" PRIu64, rnd());
		op_ok(OP_EXEC, 0);
		fflush(stdout);
		execl(self_exe, "ksm_rs_stress", "--exec-child", seed, NULL);
		op_fail(OP_EXEC, errno);
	}
	op_ok(OP_CHILD_EXIT, 0);
	fflush(stdout);
	_exit(0);
}

/* The image a forked child execs: a few mergeable pages, checked. */
static int exec_child(uint64_t seed)
{
	unsigned long n = 128, i, j, words = page_size / 8, bad = 0;
	uint64_t *p = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 2;
	for (i = 0; i < n; i++)
		for (j = 0; j < words; j++)
			p[i * words + j] = word_of(mix64(seed + i % 4) | 1, j);
	madvise(p, n * page_size, MADV_MERGEABLE);
	usleep(300000);
	for (i = 0; i < n; i++)
		for (j = 0; j < words; j++)
			if (p[i * words + j] != word_of(mix64(seed + i % 4) | 1, j)) {
				bad++;
				break;
			}
	if (bad)
		printf("# [pid %d] MISMATCH: exec'd child: %lu pages of %lu differ\n",
		       getpid(), bad, n);
	return bad ? EXEC_MISMATCH : 0;
}

static sigjmp_buf hwp_env;
static volatile sig_atomic_t hwp_sigbus;

static void hwp_on_sigbus(int sig)
{
	hwp_sigbus++;
	siglongjmp(hwp_env, 1);
}

/*
 * The hwpoison child: 8 pages of its own, of contents no other process
 * has, 0-3 one contents, 4-7 another. Once 0 and 1 map one KSM page,
 * MADV_HWPOISON page 0: SIGBUS, and page 1 no longer maps the poisoned
 * page (it gets SIGBUS too); pages 4-7 read back intact.
 */
static int hwpoison_child(void)
{
	unsigned long n = 8, i, j, words = page_size / 8, start = now_ms();
	uint64_t ka = mix64(rnd() ^ getpid()) | 1, kb = mix64(ka) | 1;
	uint64_t pfn0 = 0, pfn1 = 0, e;
	struct sigaction sa = { .sa_handler = hwp_on_sigbus };
	volatile uint64_t sink;
	bool merged = false;
	uint64_t *p;

	p = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 2;
	madvise(p, n * page_size, MADV_NOHUGEPAGE);
	for (i = 0; i < n; i++)
		for (j = 0; j < words; j++)
			p[i * words + j] = word_of(i < 4 ? ka : kb, j);
	if (madvise(p, n * page_size, MADV_MERGEABLE) && errno != EINVAL)
		return 2;
	while (now_ms() - start < 8000 && LOAD(sh->phase) == PH_RUN) {
		uint64_t f0 = page_flags(p, &pfn0);
		uint64_t f1 = page_flags((char *)p + page_size, &pfn1);

		if ((f0 & KPF_KSM_BIT) && (f1 & KPF_KSM_BIT) && pfn0 == pfn1) {
			merged = true;
			break;
		}
		usleep(20000);
	}
	if (merged)
		ADD(sh->extra[X_HWP_KSM], 1);
	sigaction(SIGBUS, &sa, NULL);
	if (!sigsetjmp(hwp_env, 1)) {
		if (madvise(p, page_size, MADV_HWPOISON))
			return unsupported_errno(errno) ? 3 : 8;
		sink = p[0];	/* SIGBUS here if not already delivered */
		(void)sink;
		return 4;
	}
	ADD(sh->extra[X_HWP_SIGBUS], 1);
	if (merged) {
		e = pagemap_entry((char *)p + page_size);
		if ((e & PM_PRESENT_BIT) && (e & PM_PFN) == pfn0) {
			printf("# [pid %d] ERROR: page 1 still maps the poisoned KSM page %#" PRIx64 "\n",
			       getpid(), pfn0);
			return 6;
		}
		if (!sigsetjmp(hwp_env, 1)) {
			sink = p[words];
			(void)sink;
		} else {
			ADD(sh->extra[X_HWP_SHARER_SIGBUS], 1);
		}
	}
	for (i = 4; i < n; i++)
		for (j = 0; j < words; j++)
			if (p[i * words + j] != word_of(kb, j)) {
				ADD(sh->mismatches, 1);
				printf("# [pid %d] MISMATCH: hwpoison child: page %lu word %lu differs\n",
				       getpid(), i, j);
				return 5;
			}
	return 0;
}

static void op_hwpoison(void)
{
	struct proc_state *own;
	unsigned long now = now_ms(), last = LOAD(sh->last_hwpoison_ms);
	pid_t pid;

	if (ps->is_child || LOAD(sh->hwpoison_started) >= HWPOISON_MAX ||
	    now - last < HWPOISON_GAP_MS ||
	    !__atomic_compare_exchange_n(&sh->last_hwpoison_ms, &last, now,
					 false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return;
	ADD(sh->hwpoison_started, 1);
	/* ps is MAP_SHARED: the child gets a copy of its own, made now. */
	own = map_shared(sizeof(*ps));
	if (!own) {
		op_fail(OP_HWPOISON, errno);
		return;
	}
	*own = *ps;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		op_fail(OP_HWPOISON, errno);
		munmap(own, sizeof(*own));
		return;
	}
	if (pid)
		munmap(own, sizeof(*own));
	if (!pid) {
		int ret;

		ps = own;
		ps->rng = mix64(ps->rng ^ getpid());
		ps->is_child = true;
		ret = hwpoison_child();
		fflush(stdout);
		_exit(ret);
	}
	add_child(pid, CH_HWPOISON);
}

/* -- the loop -- */

static void one_op(void)
{
	struct region *r = pick_region();
	unsigned int x = rnd_below(1000);

	if (!r) {
		int k;

		for (k = 0; k < MAX_REGIONS; k++)
			if (ps->r[k].used && ps->r[k].holes == ps->r[k].n) {
				region_destroy(&ps->r[k]);
				region_create(&ps->r[k], chance(25));
			}
		return;
	}
	if (x < 330)
		op_write(r);
	else if (x < 360)
		op_fork();
	else if (x < 365)
		op_munmap_whole(r);
	else if (x < 395)
		op_munmap_partial(r);
	else if (x < 425)
		op_refill(r);
	else if (x < 445)
		op_mremap_move(r);
	else if (x < 465)
		op_mremap_grow(r);
	else if (x < 485)
		op_mremap_shrink(r);
	else if (x < 545)
		op_mprotect(r);
	else if (x < 615)
		op_madvise_merge(r, true);
	else if (x < 655)
		op_madvise_merge(r, false);
	else if (x < 665)
		op_prctl();
	else if (x < 705)
		op_pageout(r);
	else if (x < 745)
		op_collapse(r);
	else if (x < 795)
		op_move_pages(r);
	else if (x < 815)
		op_soft_offline(r);
	else if (x < 825)
		op_hwpoison();
	else if (x < 865)
		op_uffd_wp(r);
	else if (x < 895)
		op_soft_dirty(r);
	else if (opt.faults && x < 925)
		op_unmerge_fault(r);
	else if (opt.faults && x < 935)
		op_prctl_off_fault();
	else
		op_write(r);
}

static void worker_loop(unsigned long until_ms)
{
	while (LOAD(sh->phase) == PH_RUN && now_ms() < until_ms) {
		one_op();
		if (now_ms() - ps->last_verify_ms > VERIFY_ALL_MS)
			verify_all("periodic");
		reap_children(false);
		usleep(rnd_below(3000));
	}
}

static void read_self_merging(void)
{
	char line[128];
	FILE *f = fopen("/proc/self/ksm_stat", "r");
	long v;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "ksm_merging_pages %ld", &v) == 1 && v > 0)
			ADD(sh->extra[X_FINAL_MERGING], v);
	fclose(f);
}

static void worker_main(int id, unsigned long until_ms, bool may_retire)
{
	int k;

	ps = map_shared(sizeof(*ps));
	if (!ps)
		_exit(2);
	ps->worker = id;
	ps->rng = mix64(opt.seed ^ (0x776f726bULL + id)) | 1;
	ps->selftest_pending = opt.selftest && id == 0;
	for (k = 0; k < MAX_REGIONS; k++)
		region_create(&ps->r[k], k == 0 || chance(10));
	verify_all("after setup");
	while (LOAD(sh->phase) == PH_RUN) {
		worker_loop(now_ms() + 1000);
		if (may_retire && LOAD(sh->phase) == PH_RUN &&
		    now_ms() + 10000 < until_ms && chance(2)) {
			reap_children(true);
			verify_all("worker exit");
			op_ok(OP_EXIT, 0);
			fflush(stdout);
			_exit(RETIRED);
		}
	}
	reap_children(true);
	verify_all("quiesce");
	ADD(sh->quiesced, 1);
	while (LOAD(sh->phase) != PH_FINAL)
		usleep(20000);
	read_self_merging();
	verify_all("final");
	fflush(stdout);
	_exit(0);
}

/* ---- the controller ---- */

static struct saved_attr saved_attrs[] = {
	{ .name = "max_page_sharing" },
	{ .name = "merge_across_nodes" },
	{ .name = "merge_scope" },
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

/* ---- fault injection and memory blocks (the controller's) ---- */

static const char *const fault_dirs[] = {
	"/sys/kernel/debug/failslab", "/sys/kernel/debug/fail_page_alloc",
};

static bool fault_attr(const char *dir, const char *attr, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	return write_path(path, val);
}

static bool ksmd_make_it_fail(bool on)
{
	char path[64];
	pid_t pid = ksmd_pid();

	if (!pid)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/make-it-fail", pid);
	return write_path(path, on ? "1" : "0");
}

/*
 * failslab and fail_page_alloc fail --faults percent of the allocations of
 * the tasks that ask for it (task-filter): ksmd all along, and the workers
 * around the unmerges of OP_UNMERGE_FAULT and OP_PRCTL_OFF_FAULT. "times"
 * counts down from FAULT_TIMES: what is left tells how many were failed.
 */
static bool faults_start(void)
{
	char pct[24], times[24];
	bool ok = true;
	size_t i;

	snprintf(pct, sizeof(pct), "%lu", opt.faults);
	snprintf(times, sizeof(times), "%ld", FAULT_TIMES);
	for (i = 0; i < ARRAY_SIZE(fault_dirs); i++) {
		const char *d = fault_dirs[i];

		ok = ok && fault_attr(d, "probability", "0") &&
		     fault_attr(d, "task-filter", "Y") &&
		     fault_attr(d, "verbose", "0") &&
		     fault_attr(d, "interval", "1") &&
		     fault_attr(d, "space", "0") &&
		     fault_attr(d, "times", times) &&
		     fault_attr(d, "ignore-gfp-wait", "N");
	}
	ok = ok && fault_attr(fault_dirs[1], "ignore-gfp-highmem", "N") &&
	     fault_attr(fault_dirs[1], "min-order", "0");
	for (i = 0; ok && i < ARRAY_SIZE(fault_dirs); i++)
		ok = fault_attr(fault_dirs[i], "probability", pct);
	return ok && ksmd_make_it_fail(true);
}

static void faults_stop(long *injected)
{
	char path[128];
	size_t i;

	ksmd_make_it_fail(false);
	for (i = 0; i < ARRAY_SIZE(fault_dirs); i++) {
		fault_attr(fault_dirs[i], "probability", "0");
		snprintf(path, sizeof(path), "%s/times", fault_dirs[i]);
		injected[i] = FAULT_TIMES - read_long(path);
	}
}

/*
 * A memory block offlined (its pages migrated, KSM pages among them:
 * folio_migrate_ksm()) and onlined again. In a child of its own that
 * SIGALRM ends: offline_pages() gives up on a signal.
 */
static bool offline_stopped;

static void op_mem_offline(void)
{
	char path[96], state[32] = "";
	int tries, status, blk = -1;
	pid_t pid;

	for (tries = 0; tries < 8 && blk < 0; tries++) {
		int b = 1 + rnd_below(nr_mem_blocks - 1);
		int fd;

		snprintf(path, sizeof(path),
			 "/sys/devices/system/memory/memory%d/state", b);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		if (read(fd, state, sizeof(state) - 1) > 0 &&
		    !strncmp(state, "online", 6))
			blk = b;
		close(fd);
	}
	if (blk < 0 || offline_stopped) {
		op_unsup(OP_MEM_OFFLINE, ENOENT);
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		op_fail(OP_MEM_OFFLINE, errno);
		return;
	}
	if (!pid) {
		alarm(OFFLINE_TIMEOUT_S);
		_exit(write_path(path, "offline") ? 0 : errno ? errno : 1);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
		op_fail(OP_MEM_OFFLINE, EINTR);
		return;
	}
	if (WEXITSTATUS(status)) {
		/* EBUSY: unmovable pages in the block; not ours to judge */
		op_fail(OP_MEM_OFFLINE, WEXITSTATUS(status));
		return;
	}
	if (!write_path(path, "online")) {
		/*
		 * A block with a page MADV_HWPOISON poisoned offlines (the page
		 * is skipped) but is refused online: it stays offline, and no
		 * more blocks are offlined, so that the guest keeps its memory.
		 */
		if (errno == EHWPOISON) {
			ADD(sh->extra[X_OFFLINE_POISONED], 1);
			offline_stopped = true;
			op_ok(OP_MEM_OFFLINE, 0);
			return;
		}
		error("memory block %d offlined, but not onlined again: %s\n",
		      blk, strerror(errno));
		return;
	}
	op_ok(OP_MEM_OFFLINE, 0);
	ADD(sh->extra[X_OFFLINED_PAGES], memory_block_pages);
}

static void global_result(enum op k, bool ok)
{
	if (ok)
		op_ok(k, 0);
	else
		op_fail(k, errno);
}

/* run=2, then @attr=@val, then run=1. */
static void set_with_run2(enum op k, const char *attr, const char *val)
{
	bool ok = set_attr("run", "2") && set_attr(attr, val);

	global_result(k, ok);
	set_attr("run", "1");
}

static void global_op(void)
{
	static const char *const mps[] = { "2", "3", "16", "256" };
	unsigned int x = rnd_below(100);
	char val[16];

	if (!opt.global || x >= 90) {
		int fd = open("/proc/sys/vm/compact_memory", O_WRONLY);

		if (fd < 0) {
			op_unsup(OP_COMPACT, errno);
			return;
		}
		global_result(OP_COMPACT, write(fd, "1", 1) == 1);
		close(fd);
		return;
	}
	if (x < 15) {
		bool ok = set_attr("run", "0");

		usleep(200000 + rnd_below(1300000));
		global_result(OP_RUN_0, ok && set_attr("run", "1"));
	} else if (x < 27) {
		bool ok = set_attr("run", "2");

		global_result(OP_RUN_2, ok && set_attr("run", "1"));
	} else if (x < 39) {
		set_with_run2(OP_MAX_PAGE_SHARING, "max_page_sharing",
			      mps[rnd_below(ARRAY_SIZE(mps))]);
	} else if (x < 45) {
		snprintf(val, sizeof(val), "%lu",
			 ksm_ul("merge_across_nodes") == 1 ? 0UL : 1UL);
		set_with_run2(OP_MERGE_ACROSS_NODES, "merge_across_nodes", val);
	} else if (x < 51) {
		/* ksm_rs's merge domains: workers are processes of one cgroup. */
		static const char *const scopes[] = { "global", "cgroup", "process" };

		if (access(KSM_DIR "/merge_scope", F_OK))
			op_unsup(OP_MERGE_SCOPE, errno);
		else
			set_with_run2(OP_MERGE_SCOPE, "merge_scope",
				      scopes[rnd_below(ARRAY_SIZE(scopes))]);
	} else if (x < 61) {
		snprintf(val, sizeof(val), "%lu",
			 ksm_ul("smart_scan") == 1 ? 0UL : 1UL);
		global_result(OP_SMART_SCAN, set_attr("smart_scan", val));
	} else if (x < 69) {
		long nb = read_long("/proc/sys/kernel/numa_balancing");

		if (nb == LONG_MIN)
			op_unsup(OP_NUMA_BALANCING, errno);
		else
			global_result(OP_NUMA_BALANCING,
				      write_path("/proc/sys/kernel/numa_balancing",
						 nb ? "0" : "1"));
	} else if (x < 77) {
		if (nr_mem_blocks > 1)
			op_mem_offline();
		else
			op_unsup(OP_MEM_OFFLINE, ENOENT);
	} else {
		snprintf(val, sizeof(val), "%lu",
			 ksm_ul("use_zero_pages") == 1 ? 0UL : 1UL);
		global_result(OP_USE_ZERO_PAGES, set_attr("use_zero_pages", val));
	}
}

struct samples {
	unsigned long sharing_max, shared_max, rises, falls, last, n;
	long zero_min;
};

static void sample(struct samples *s)
{
	unsigned long sharing = ksm_ul("pages_sharing");
	unsigned long shared = ksm_ul("pages_shared"), tot;

	char zero[64];

	/* A count: never below 0 (mm/ksm.c, is_ksm_zero_pte() in ksm.h). */
	if (sysfs_read("ksm_zero_pages", zero, sizeof(zero)) &&
	    strtol(zero, NULL, 10) < s->zero_min) {
		if (s->zero_min >= 0)
			error("ksm_zero_pages is %ld: below 0\n",
			      strtol(zero, NULL, 10));
		s->zero_min = strtol(zero, NULL, 10);
	}
	if (sharing == ULONG_MAX || shared == ULONG_MAX)
		return;
	tot = sharing + shared;
	if (sharing > s->sharing_max)
		s->sharing_max = sharing;
	if (shared > s->shared_max)
		s->shared_max = shared;
	if (s->n++) {
		if (tot > s->last)
			s->rises += tot - s->last;
		else
			s->falls += s->last - tot;
	}
	s->last = tot;
}

static unsigned long vmstat(const char *name)
{
	char line[128], key[64];
	unsigned long v, ret = 0;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lu", key, &v) == 2 && !strcmp(key, name))
			ret = v;
	fclose(f);
	return ret;
}

static pid_t spawn_worker(int id, unsigned long until_ms, bool may_retire)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		ksft_exit_fail_msg("fork failed: %s\n", strerror(errno));
	if (!pid)
		worker_main(id, until_ms, may_retire);
	return pid;
}

static void probe_system(void)
{
	char path[64], line[256];
	FILE *f;
	int n;

	for (n = 0; n < 64; n++) {
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", n);
		if (access(path, F_OK))
			break;
	}
	nr_nodes = n;
	f = fopen("/proc/swaps", "r");
	if (f) {
		n = 0;
		while (fgets(line, sizeof(line), f))
			n++;
		fclose(f);
		have_swap = n > 1;
	}
	for (n = 0; n < 1 << 16; n++) {
		snprintf(path, sizeof(path), "/sys/devices/system/memory/memory%d", n);
		if (access(path, F_OK))
			break;
	}
	nr_mem_blocks = n;
	f = fopen("/sys/devices/system/memory/block_size_bytes", "r");
	if (f) {
		unsigned long bytes = 0;

		if (fscanf(f, "%lx", &bytes) == 1)
			memory_block_pages = bytes / page_size;
		fclose(f);
	}
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY);
	if (readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1) < 0)
		self_exe[0] = '\0';
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--seconds N] [--procs N] [--seed N] [--mib N] [--no-global] [--faults PERCENT]\n",
		prog);
	exit(KSFT_FAIL);
}

static unsigned long parse_ul(const char *s, const char *prog)
{
	char *end;
	unsigned long v;

	if (!s)
		usage(prog);
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || !*s)
		usage(prog);
	return v;
}

int main(int argc, char **argv)
{
	unsigned long start, until, next_global, full0, cow0, t, quiesce_ms;
	unsigned long total_ops = 0, id_next;
	struct samples smp = { 0 };
	char buf[64] = "0";
	long zero0, numa0 = LONG_MIN, injected[2] = { 0, 0 };
	pid_t *pids;
	const char *env;
	int i, alive;
	bool ok;

	page_size = sysconf(_SC_PAGESIZE);
	if (argc == 3 && !strcmp(argv[1], "--exec-child"))
		return exec_child(strtoull(argv[2], NULL, 0));
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds"))
			opt.seconds = parse_ul(argv[++i], argv[0]);
		else if (!strcmp(argv[i], "--procs"))
			opt.procs = parse_ul(argv[++i], argv[0]);
		else if (!strcmp(argv[i], "--seed"))
			opt.seed = parse_ul(argv[++i], argv[0]);
		else if (!strcmp(argv[i], "--mib"))
			opt.mib = parse_ul(argv[++i], argv[0]);
		else if (!strcmp(argv[i], "--no-global"))
			opt.global = false;
		else if (!strcmp(argv[i], "--faults"))
			opt.faults = parse_ul(argv[++i], argv[0]);
		else
			usage(argv[0]);
	}
	if (!opt.procs || opt.procs > 64 || !opt.mib || opt.faults > 100)
		usage(argv[0]);
	env = getenv("KSM_RS_STRESS_SELFTEST");
	opt.selftest = env && *env && strcmp(env, "0");
	setvbuf(stdout, NULL, _IOLBF, 0);
	main_pid = getpid();

	ksft_print_header();
	if (access(KSM_DIR, F_OK))
		ksft_exit_skip(KSM_DIR " is missing: no CONFIG_KSM\n");
	ksft_set_plan(1);
	probe_system();
	region_pages = opt.mib * (1UL << 20) / page_size / opt.procs /
		       REGIONS_PER_PROC;
	if (region_pages < 16)
		region_pages = 16;
	sh = map_shared(sizeof(*sh));
	pids = calloc(opt.procs, sizeof(*pids));
	if (!sh || !pids)
		ksft_exit_fail_msg("allocation failed\n");
	ps = map_shared(sizeof(*ps));	/* the controller's random state */
	if (!ps)
		ksft_exit_fail_msg("allocation failed\n");
	ps->rng = mix64(opt.seed ^ 0x676c6f62ULL) | 1;
	ps->worker = -1;

	ksft_print_msg("seed %#" PRIx64 " (--seed %" PRIu64 " to replay), %lu s, %lu workers, %lu MiB (%lu pages per region, %d regions each), %d NUMA nodes, swap %s, kpageflags %s%s%s\n",
		       opt.seed, opt.seed, opt.seconds, opt.procs, opt.mib,
		       region_pages, REGIONS_PER_PROC, nr_nodes,
		       have_swap ? "on" : "off (MADV_PAGEOUT keeps anonymous pages)",
		       kpageflags_fd >= 0 ? "yes" : "no",
		       opt.global ? "" : ", --no-global",
		       opt.selftest ? ", SELFTEST: one expected page is wrong" : "");
	if (opt.global) {
		atexit(restore_at_exit);
		if (ksm_ul("advisor_mode") != ULONG_MAX ||
		    !access(KSM_DIR "/advisor_mode", F_OK))
			set_attr("advisor_mode", "none");
		ok = set_attr("sleep_millisecs", "0") &&
		     set_attr("pages_to_scan", "4000") &&
		     set_attr("smart_scan", chance(50) ? "1" : "0") &&
		     set_attr("run", "1");
		if (!ok)
			ksft_exit_fail_msg("cannot set up ksmd\n");
		/* NUMA balancing on (the controller flips it now and then). */
		numa0 = read_long("/proc/sys/kernel/numa_balancing");
		if (numa0 != LONG_MIN)
			write_path("/proc/sys/kernel/numa_balancing", "1");
	} else if (ksm_ul("run") != 1) {
		ksft_print_msg("--no-global and run is %lu: ksmd may not merge\n",
			       ksm_ul("run"));
	}
	if (opt.faults) {
		if (!faults_start())
			ksft_exit_fail_msg("cannot set up failslab and fail_page_alloc for ksmd (CONFIG_FAULT_INJECTION_DEBUG_FS, FLAVOUR=debug): %s\n",
					   strerror(errno));
		ksft_print_msg("fault injection: %lu%% of the allocations of ksmd (pid %d) fail all along, and of the workers' unmerges\n",
			       opt.faults, ksmd_pid());
	}
	sysfs_read("ksm_zero_pages", buf, sizeof(buf));
	zero0 = strtol(buf, NULL, 10);
	full0 = ksm_ul("full_scans");
	cow0 = vmstat("cow_ksm");
	start = now_ms();
	until = start + opt.seconds * 1000;
	next_global = start + 500 + rnd_below(3000);
	for (i = 0; i < (int)opt.procs; i++)
		pids[i] = spawn_worker(i, until, true);
	id_next = opt.procs;

	/* The run: global operations, samples, new workers for retired ones. */
	while ((t = now_ms()) < until) {
		int status;
		pid_t pid;

		sample(&smp);
		if (t >= next_global) {
			global_op();
			next_global = now_ms() + 500 + rnd_below(3500);
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			for (i = 0; i < (int)opt.procs; i++)
				if (pids[i] == pid)
					break;
			if (i == (int)opt.procs)
				continue;
			pids[i] = 0;
			if (WIFEXITED(status) && WEXITSTATUS(status) == RETIRED) {
				if (now_ms() + 5000 < until)
					pids[i] = spawn_worker(id_next++, until,
							       true);
			} else {
				error("worker %d exited early (status %#x)\n",
				      pid, status);
			}
		}
		usleep(100000);
	}

	/* Quiesce: workers stop, check, wait; ksmd settles; final check. */
	STORE(sh->phase, PH_QUIESCE);
	if (opt.faults)
		faults_stop(injected);
	for (alive = 0, i = 0; i < (int)opt.procs; i++)
		alive += pids[i] > 0;
	quiesce_ms = now_ms();
	while (LOAD(sh->quiesced) < alive &&
	       now_ms() - quiesce_ms < SETTLE_TIMEOUT_MS) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid > 0) {
			for (i = 0; i < (int)opt.procs; i++)
				if (pids[i] == pid) {
					pids[i] = 0;
					alive--;
					if (!(WIFEXITED(status) &&
					      WEXITSTATUS(status) == RETIRED))
						error("worker %d exited early (status %#x)\n",
						      pid, status);
				}
		}
		usleep(50000);
	}
	if (opt.global)
		set_attr("run", "1");
	{
		unsigned long f0 = ksm_ul("full_scans"), t0 = now_ms();

		while (ksm_ul("full_scans") < f0 + 2 && ksm_ul("run") == 1 &&
		       now_ms() - t0 < SETTLE_TIMEOUT_MS)
			usleep(50000);
		sample(&smp);
		char zero[64] = "?";

		sysfs_read("ksm_zero_pages", zero, sizeof(zero));
		ksft_print_msg("settled: full_scans +%lu in %lu ms, pages_sharing %lu, pages_shared %lu, ksm_zero_pages %s\n",
			       ksm_ul("full_scans") - f0, now_ms() - t0,
			       ksm_ul("pages_sharing"), ksm_ul("pages_shared"),
			       zero);
	}
	STORE(sh->phase, PH_FINAL);
	for (i = 0; i < (int)opt.procs; i++) {
		int status;

		if (pids[i] <= 0)
			continue;
		if (waitpid(pids[i], &status, 0) == pids[i] &&
		    !(WIFEXITED(status) && !WEXITSTATUS(status)))
			error("worker %d ended with status %#x\n", pids[i],
			      status);
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	sample(&smp);
	/*
	 * Every process of ours is gone, and with it every page table that
	 * mapped a KSM zero page: ksm_zero_pages is back to its value at start
	 * (zap_present_ptes() drops each at once), give or take what other
	 * processes of the system did meanwhile (none in the test VM).
	 */
	{
		unsigned long t0 = now_ms();
		long zero;

		do {
			sysfs_read("ksm_zero_pages", buf, sizeof(buf));
			zero = strtol(buf, NULL, 10);
			if (zero == zero0)
				break;
			usleep(100000);
		} while (now_ms() - t0 < 10000);
		ksft_print_msg("every worker gone: pages_sharing %lu, pages_shared %lu, ksm_zero_pages %ld (%ld at start) after %lu ms\n",
			       ksm_ul("pages_sharing"), ksm_ul("pages_shared"),
			       zero, zero0, now_ms() - t0);
		if (zero != zero0)
			error("ksm_zero_pages %ld once every process of the run exited, %ld at start\n",
			      zero, zero0);
	}
	/* Nothing left in the trees once run=2 unmerged the rest. */
	if (opt.global) {
		static const char *const left[] = {
			"pages_shared", "pages_sharing", "pages_unshared",
			"pages_volatile", "stable_node_chains",
			"stable_node_dups",
		};
		size_t j;

		if (!set_attr("run", "2"))
			error("run=2 at the end: %s\n", strerror(errno));
		for (j = 0; j < ARRAY_SIZE(left); j++) {
			unsigned long v = ksm_ul(left[j]);

			if (v)
				error("%s is %lu after run=2 with every process of the run gone\n",
				      left[j], v);
		}
		if (numa0 != LONG_MIN)
			write_path("/proc/sys/kernel/numa_balancing",
				   numa0 ? "1" : "0");
	}

	/* The summary. */
	ksft_print_msg("%-24s %8s %8s %8s %10s  %s\n", "operation", "ok",
		       "failed", "unsupp", "pages", "last errno");
	for (i = 0; i < NR_OPS; i++) {
		struct op_stat *s = &sh->op[i];

		total_ops += s->ok;
		ksft_print_msg("%-24s %8lu %8lu %8lu %10lu  %s\n", op_names[i],
			       s->ok, s->failed, s->unsupported, s->pages,
			       s->failed || s->unsupported ?
			       (s->last_errno ? strerror(s->last_errno) : "-") : "");
	}
	for (i = 0; i < NR_EXTRA; i++)
		ksft_print_msg("%-46s %lu\n", extra_names[i], sh->extra[i]);
	ksft_print_msg("ksm: full_scans +%lu, pages_sharing max %lu, pages_shared max %lu, pages merged %lu and unmerged %lu (sum of pages_shared+pages_sharing rises and falls, %lu samples), cow_ksm +%lu, ksm_zero_pages min %ld\n",
		       ksm_ul("full_scans") - full0, smp.sharing_max,
		       smp.shared_max, smp.rises, smp.falls, smp.n,
		       vmstat("cow_ksm") - cow0, smp.zero_min);
	if (opt.faults) {
		static const char *const what[2] = {
			"MADV_UNMERGEABLE", "PR_SET_MEMORY_MERGE 0",
		};
		int w, e;

		ksft_print_msg("fault injection: failslab failed %ld allocations, fail_page_alloc %ld\n",
			       injected[0], injected[1]);
		for (w = 0; w < 2; w++)
			for (e = 0; e < FAULT_ERRNOS; e++)
				if (sh->fault_errno[w][e])
					ksft_print_msg("errno under faults: %-22s %-8s %lu\n",
						       what[w],
						       e ? strerrorname_np(e) : "0 (ok)",
						       sh->fault_errno[w][e]);
	}
	ksft_print_msg("checked %lu pages, %lu bytes; %lu mismatches, %lu errors\n",
		       sh->pages_checked, sh->bytes_checked, sh->mismatches,
		       sh->errors);
	ok = !sh->mismatches && !sh->errors;
	if (opt.global)
		ok &= saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs),
					  true);
	ksft_test_result(ok, "stress: %lu s, seed %" PRIu64 ", %lu operations, %lu mismatches, %lu errors\n",
			 opt.seconds, opt.seed, total_ops, sh->mismatches,
			 sh->errors);
	ksft_print_cnts();
	printf("### stress: ops=%lu mismatches=%lu errors=%lu bytes_checked=%lu seed=%" PRIu64 "\n",
	       total_ops, sh->mismatches, sh->errors, sh->bytes_checked,
	       opt.seed);
	fflush(stdout);
	exit(ok ? KSFT_PASS : KSFT_FAIL);
}
