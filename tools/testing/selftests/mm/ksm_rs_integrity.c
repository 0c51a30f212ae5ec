// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_integrity: KSM must never change what a process reads. 512 private
 * anonymous pages are filled with per-page patterns (every byte derived from
 * a seed): groups of identical pages, zero-filled pages and unique pages.
 * While ksmd merges them, copies them on write, unmerges, forks and unmaps,
 * every byte of every page is compared with the pattern generated again.
 * Alongside, the counters are checked against what mm/ksm.c does:
 *
 *  - merging: ksm_merging_pages (/proc/self/ksm_stat and
 *    /proc/self/ksm_merging_pages) is the number of pages whose content is
 *    shared by another mergeable page, pages_sharing > 0, and the merged
 *    pages map one KSM page per content (/proc/self/pagemap, kpageflags);
 *  - COW: a write into a merged page (one byte, a whole page) lands in that
 *    page only;
 *  - fork(): the child reads the parent's data, its writes stay its own;
 *  - MADV_UNMERGEABLE breaks the KSM pages of the range at once and ksmd
 *    drops them from ksm_merging_pages; MADV_MERGEABLE merges them again;
 *  - run=2 unmerges everything: pages_sharing and pages_shared go to 0;
 *  - use_zero_pages=1: zero-filled pages map the zero page (ksm_zero_pages),
 *    a write gives a private page, munmap drops ksm_zero_pages;
 *  - munmap of the middle of a merged range and of all of it: the rest
 *    reads back intact, and once ksmd went over the process (it then drops
 *    the mm, which has no VM_MERGEABLE VMA left) pages_sharing is back to
 *    where it was;
 *  - runs: 1024 pages, most of them identical with other pages in between,
 *    merge with max_page_sharing=40 (no KSM page mapped more than 40 times,
 *    whatever number of pages ksmd merges at once), and while ksmd merges
 *    them a thread keeps changing some of them: no write is lost;
 *  - max_page_sharing=2: 8 identical pages make a stable_node chain of 4
 *    KSM pages mapped twice each.
 *
 * The expectations come from mm/ksm.c (cmp_and_merge_page,
 * try_to_merge_with_zero_page, stable_tree_search, stable_tree_insert,
 * stable_tree_append, remove_rmap_item_from_tree, get_next_rmap_item,
 * ksm_madvise, break_ksm, unmerge_and_remove_all_rmap_items,
 * max_page_sharing_store, merge_across_nodes_store), mm/memory.c
 * (wp_page_copy, zap_present_ptes: ksm_might_unmap_zero_page) and
 * fs/proc/{base,page,task_mmu}.c.
 *
 * Every attribute of /sys/kernel/mm/ksm that is changed is put back to its
 * value at start, at the end of the run and on exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "vm_util.h"
#include "ksm_rs_util.h"

#define NR_TESTS		21

/*
 * The area: page i < GROUP_END holds the pattern of group i % NR_GROUPS,
 * pages [GROUP_END, ZERO_END) zeroes, the others a pattern of their own.
 */
#define NR_PAGES		512
#define NR_GROUPS		16
#define GROUP_END		384
#define ZERO_END		448
#define HALF			(NR_PAGES / 2)
/* The munmapped middle: group pages and zero-filled pages. */
#define HOLE_START		160
#define HOLE_END		400
#define CHAIN_PAGES		8
#define CHAIN_MAX_SHARING	"2"

#define SCAN_WAIT		3	/* full scans: a partial one + 2 */
#define SCAN_TIMEOUT_MS		120000

/* /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h). */
#define KPF_BIT_KSM		BIT_ULL(21)
#define KPF_BIT_ZERO_PAGE	BIT_ULL(24)

#define SEED_GROUP(g)		(0x67726f7570000000ULL + (g) + 1)
#define SEED_UNIQUE(i)		(0x756e697175650000ULL + (i))
#define SEED_NEW(n)		(0x6e65770000000000ULL + (n))
#define SEED_CHAIN		0x636861696e000000ULL
#define SEED_RUN		0x72756e0000000000ULL
#define SEED_RUN_OTHER		0x72756e3200000000ULL

/* The runs area: mostly identical pages, with others in between. */
#define RUN_PAGES		1024
#define RUN_MAX_SHARING		40
#define RUN_MAX_SHARING_STR	"40"
#define RUN_WRITER_ROUNDS	400

#define MAX_REPORTS		5

/* What a page must read: the pattern of @seed (0: zeroes), one byte poked. */
struct page_model {
	uint64_t seed;
	int poke_off;		/* -1: none */
	unsigned char poke_val;
	bool mapped;
};

static unsigned long page_size;
static pid_t main_pid;
static char *area;
static struct page_model model[NR_PAGES];
static unsigned char *scratch;	/* one page, malloc'd: never mergeable */
static int pagemap_fd = -1;
static int kpageflags_fd = -1;
static unsigned long sharing_at_start, shared_at_start, zero_at_start;

/* ---- /sys/kernel/mm/ksm ---- */

/*
 * In the order they are put back, after run=2: max_page_sharing and
 * merge_across_nodes need no KSM page, pages_to_scan needs advisor_mode
 * none, run comes last.
 */
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

/* Writes @val to @attr, saving its first value to put it back later. */
static bool set_attr(const char *attr, const char *val)
{
	return saved_attr_set(saved_attrs, ARRAY_SIZE(saved_attrs), attr, val);
}

/* Puts every saved attribute back; run=2 first, so that none is EBUSY. */
static bool restore_attrs(void)
{
	if (getpid() != main_pid)
		return true;
	return saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
}

static void restore_at_exit(void)
{
	restore_attrs();
}

/* Waits until full_scans has grown by @n: ksmd went over every page. */
static bool wait_full_scans(bool *ok, int n, const char *when)
{
	unsigned long start = now_ms(), waited;
	long full0 = ksm_get_full_scans(), full = full0;

	if (full0 < 0) {
		expect(ok, false, "%s: cannot read full_scans\n", when);
		return false;
	}
	while (now_ms() - start < SCAN_TIMEOUT_MS) {
		full = ksm_get_full_scans();
		if (full < 0 || full >= full0 + n)
			break;
		usleep(10000);
	}
	waited = now_ms() - start;
	ksft_print_msg("%s: full_scans %ld -> %ld in %lu ms\n", when, full0,
		       full, waited);
	expect(ok, full >= full0 + n,
	       "%s: full_scans went from %ld to %ld in %lu ms, expected +%d\n",
	       when, full0, full, waited, n);
	return full >= full0 + n;
}

/*
 * Waits until pages_sharing and pages_shared are back to their values at
 * start, or @n full scans went by. ksmd may stop scanning before that: an mm
 * left without VM_MERGEABLE VMAs is dropped from its list after a scan.
 */
static void wait_counts_back(int n, const char *when)
{
	unsigned long start = now_ms();
	long full0 = ksm_get_full_scans(), full = full0;

	while (now_ms() - start < SCAN_TIMEOUT_MS) {
		if (ksm_ul("pages_sharing") == sharing_at_start &&
		    ksm_ul("pages_shared") == shared_at_start)
			break;
		full = ksm_get_full_scans();
		if (full < 0 || full >= full0 + n)
			break;
		usleep(10000);
	}
	ksft_print_msg("%s: full_scans %ld -> %ld in %lu ms\n", when, full0,
		       ksm_get_full_scans(), now_ms() - start);
}

/* ---- /proc/self/ksm_stat ---- */

struct ksm_stat {
	long rmap_items;
	long zero_pages;
	long merging_pages;
};

static bool read_ksm_stat(struct ksm_stat *st)
{
	char line[256];
	FILE *f;

	f = fopen("/proc/self/ksm_stat", "r");
	if (!f)
		return false;
	st->rmap_items = LONG_MIN;
	st->zero_pages = LONG_MIN;
	st->merging_pages = LONG_MIN;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "ksm_rmap_items %ld", &st->rmap_items) == 1 ||
		    sscanf(line, "ksm_zero_pages %ld", &st->zero_pages) == 1 ||
		    sscanf(line, "ksm_merging_pages %ld",
			   &st->merging_pages) == 1)
			continue;
	}
	fclose(f);
	return st->rmap_items != LONG_MIN && st->zero_pages != LONG_MIN &&
	       st->merging_pages != LONG_MIN;
}

/*
 * Expects ksm_merging_pages (in ksm_stat and in /proc/self/ksm_merging_pages)
 * and ksm_zero_pages to be what is given, those given >= 0.
 */
static void expect_self_counts(bool *ok, long merging, long zero,
			       const char *when)
{
	struct ksm_stat st;
	long file;

	if (!read_ksm_stat(&st)) {
		expect(ok, false, "%s: /proc/self/ksm_stat cannot be read or lacks a line\n",
		       when);
		return;
	}
	file = ksm_get_self_merging_pages();
	ksft_print_msg("%s: ksm_stat rmap_items %ld merging_pages %ld zero_pages %ld, ksm_merging_pages %ld; sysfs pages_shared %lu pages_sharing %lu ksm_zero_pages %lu\n",
		       when, st.rmap_items, st.merging_pages, st.zero_pages,
		       file, ksm_ul("pages_shared"), ksm_ul("pages_sharing"),
		       ksm_ul("ksm_zero_pages"));
	if (merging >= 0)
		expect(ok, st.merging_pages == merging,
		       "%s: ksm_stat ksm_merging_pages %ld, expected %ld\n",
		       when, st.merging_pages, merging);
	/*
	 * Only when the count is meant to be settled: otherwise ksmd may
	 * change it between the two reads.
	 */
	if (merging >= 0)
		expect(ok, file == st.merging_pages,
		       "%s: /proc/self/ksm_merging_pages %ld, ksm_stat says %ld\n",
		       when, file, st.merging_pages);
	if (zero >= 0)
		expect(ok, st.zero_pages == zero,
		       "%s: ksm_stat ksm_zero_pages %ld, expected %ld\n",
		       when, st.zero_pages, zero);
}

/* ---- the patterns ---- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Every byte of @buf from @seed; distinct seeds, distinct first words. */
static void gen_pattern(unsigned char *buf, uint64_t seed)
{
	unsigned long words = page_size / sizeof(uint64_t), j;
	uint64_t *p = (uint64_t *)buf;

	if (!seed) {
		memset(buf, 0, page_size);
		return;
	}
	for (j = 0; j < words; j++)
		p[j] = mix64(seed * 0x100000001b3ULL + j);
}

/* What page @m must read, in @buf. */
static void gen_page(unsigned char *buf, const struct page_model *m)
{
	gen_pattern(buf, m->seed);
	if (m->poke_off >= 0)
		buf[m->poke_off] = m->poke_val;
}

/* @n private anonymous pages, small pages only: one rmap_item per page. */
static char *map_pages(unsigned long n)
{
	char *p = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		ksft_exit_fail_msg("mmap of %lu pages failed: %s\n", n,
				   strerror(errno));
	madvise(p, n * page_size, MADV_NOHUGEPAGE);
	return p;
}

static char *page_addr(unsigned long i)
{
	return area + i * page_size;
}

static void set_page(unsigned long i, uint64_t seed)
{
	model[i].seed = seed;
	model[i].poke_off = -1;
	model[i].mapped = true;
}

static void fill_page(unsigned long i, uint64_t seed)
{
	set_page(i, seed);
	gen_page((unsigned char *)page_addr(i), &model[i]);
}

/* Writes one byte into page @i, a value that differs from what it holds. */
static void poke_page(unsigned long i, int off)
{
	unsigned char *p = (unsigned char *)page_addr(i);
	unsigned char val = p[off] ^ 0xa5;

	p[off] = val;
	model[i].poke_off = off;
	model[i].poke_val = val;
}

static const char *page_kind(const struct page_model *m, char *buf,
			     size_t size)
{
	if (!m->seed)
		snprintf(buf, size, "zero-filled");
	else if (m->seed >= SEED_GROUP(0) && m->seed < SEED_GROUP(NR_GROUPS))
		snprintf(buf, size, "group %u",
			 (unsigned int)(m->seed - SEED_GROUP(0)));
	else
		snprintf(buf, size, "seed %#llx",
			 (unsigned long long)m->seed);
	if (m->poke_off >= 0) {
		size_t len = strlen(buf);

		snprintf(buf + len, size - len, ", byte %d poked", m->poke_off);
	}
	return buf;
}

/*
 * Compares every byte of the mapped pages in [@first, @end) with the model.
 * Returns the number of pages that differ and reports the first ones.
 */
/* Compares pages [first, end) of @base with their models @models. */
static unsigned long verify_area(const char *base,
				 const struct page_model *models,
				 unsigned long first, unsigned long end,
				 const char *when)
{
	unsigned long i, bad = 0, off;
	const unsigned char *p;
	char kind[64];

	for (i = first; i < end; i++) {
		if (!models[i].mapped)
			continue;
		p = (const unsigned char *)base + i * page_size;
		gen_page(scratch, &models[i]);
		if (!memcmp(p, scratch, page_size))
			continue;
		if (++bad > MAX_REPORTS)
			continue;
		for (off = 0; off < page_size && p[off] == scratch[off]; off++)
			;
		ksft_print_msg("   %s: page %lu (%s) differs first at byte %lu: %#04x, expected %#04x\n",
			       when, i, page_kind(&models[i], kind, sizeof(kind)),
			       off, p[off], scratch[off]);
	}
	if (bad)
		ksft_print_msg("   %s: %lu pages of [%lu, %lu) differ\n", when,
			       bad, first, end);
	return bad;
}

static unsigned long verify_pages(unsigned long first, unsigned long end,
				  const char *when)
{
	return verify_area(area, model, first, end, when);
}

static void expect_intact(bool *ok, unsigned long first, unsigned long end,
			  const char *when)
{
	unsigned long bad = verify_pages(first, end, when);

	expect(ok, !bad, "%s: %lu pages do not read back as written\n",
	       when, bad);
}

static bool same_content(unsigned long i, unsigned long j)
{
	const struct page_model *a = &model[i], *b = &model[j];

	return a->seed == b->seed && a->poke_off == b->poke_off &&
	       (a->poke_off < 0 || a->poke_val == b->poke_val);
}

static bool is_zero_filled(unsigned long i)
{
	return !model[i].seed && model[i].poke_off < 0;
}

/* The mapped pages of [first, end) with the content of page @i. */
static unsigned long copies(unsigned long i, unsigned long first,
			    unsigned long end)
{
	unsigned long j, n = 0;

	for (j = first; j < end; j++)
		n += model[j].mapped && same_content(i, j);
	return n;
}

/*
 * Whether ksmd, once settled over the mergeable pages [first, end), has
 * page @i mapped to a KSM page: its content is in another mergeable page;
 * zero-filled pages go to the zero page instead with use_zero_pages.
 */
static bool should_merge(unsigned long i, unsigned long first,
			 unsigned long end, bool zero_page)
{
	if (!model[i].mapped || i < first || i >= end)
		return false;
	if (zero_page && is_zero_filled(i))
		return false;
	return copies(i, first, end) >= 2;
}

static long expected_merging(unsigned long first, unsigned long end,
			     bool zero_page)
{
	unsigned long i;
	long n = 0;

	for (i = first; i < end; i++)
		n += should_merge(i, first, end, zero_page);
	return n;
}

static long expected_zero(unsigned long first, unsigned long end)
{
	unsigned long i;
	long n = 0;

	for (i = first; i < end; i++)
		n += model[i].mapped && is_zero_filled(i);
	return n;
}

/* The number of distinct contents among the pages that should merge. */
static long expected_ksm_pages(unsigned long first, unsigned long end,
			       bool zero_page)
{
	unsigned long i, j;
	long n = 0;

	for (i = first; i < end; i++) {
		if (!should_merge(i, first, end, zero_page))
			continue;
		for (j = first; j < i; j++)
			if (should_merge(j, first, end, zero_page) &&
			    same_content(i, j))
				break;
		n += j == i;
	}
	return n;
}

/* ---- /proc/self/pagemap and /proc/kpageflags ---- */

static bool have_kpageflags(void)
{
	return pagemap_fd >= 0 && kpageflags_fd >= 0;
}

/* The PFN and kpageflags of what @addr maps; false if not present. */
static bool page_info(char *addr, unsigned long *pfn, uint64_t *flags)
{
	*pfn = pagemap_get_pfn(pagemap_fd, addr);
	*flags = 0;
	if (*pfn == -1UL)
		return false;
	return !pageflags_get(*pfn, kpageflags_fd, flags);
}

/*
 * Expects the pages that should merge in [first, end) to map KSM pages,
 * one per content, and the other pages of [@from, @to) not to.
 */
static void expect_ksm_mapping(bool *ok, unsigned long first,
			       unsigned long end, unsigned long from,
			       unsigned long to, bool zero_page,
			       const char *when)
{
	unsigned long pfns[NR_PAGES], i, j, pfn, bad = 0;
	long distinct = 0, want;
	uint64_t flags;

	if (!have_kpageflags())
		return;
	for (i = from; i < to; i++) {
		bool merged = should_merge(i, first, end, zero_page), ksm;

		pfns[i] = -1UL;
		if (!model[i].mapped)
			continue;
		if (!page_info(page_addr(i), &pfn, &flags)) {
			expect(ok, false, "%s: page %lu not present in pagemap or kpageflags\n",
			       when, i);
			continue;
		}
		ksm = flags & KPF_BIT_KSM;
		if (ksm != merged && ++bad <= MAX_REPORTS)
			ksft_print_msg("   %s: page %lu (pfn %#lx, kpageflags %#llx) is %sa KSM page\n",
				       when, i, pfn, (unsigned long long)flags,
				       ksm ? "" : "not ");
		if (!merged)
			continue;
		pfns[i] = pfn;
		for (j = from; j < i; j++)
			if (pfns[j] == pfn)
				break;
		if (j < i) {
			if (!same_content(i, j) && ++bad <= MAX_REPORTS)
				ksft_print_msg("   %s: pages %lu and %lu map the same KSM page %#lx but hold different data\n",
					       when, j, i, pfn);
		} else {
			distinct++;
		}
	}
	expect(ok, !bad, "%s: %lu pages map the wrong kind of page (kpageflags)\n",
	       when, bad);
	want = expected_ksm_pages(first, end, zero_page);
	if (from <= first && to >= end)
		expect(ok, distinct == want,
		       "%s: the merged pages map %ld KSM pages, expected %ld (one per content)\n",
		       when, distinct, want);
}

/* Expects page @i to map the zero page if @want, else not. */
static void expect_zero_page(bool *ok, unsigned long i, bool want,
			     const char *when)
{
	unsigned long pfn;
	uint64_t flags;

	if (!have_kpageflags())
		return;
	if (!page_info(page_addr(i), &pfn, &flags)) {
		expect(ok, false, "%s: page %lu not present in pagemap or kpageflags\n",
		       when, i);
		return;
	}
	expect(ok, !!(flags & KPF_BIT_ZERO_PAGE) == want,
	       "%s: page %lu (pfn %#lx, kpageflags %#llx) %s the zero page\n",
	       when, i, pfn, (unsigned long long)flags,
	       want ? "does not map" : "maps");
}

/* ---- tests ---- */

/* 1: the tunables. */
static void test_setup(void)
{
	char mode[64];
	bool ok = true;

	/* Unmerge all: merge_across_nodes and max_page_sharing need it. */
	expect(&ok, set_attr("run", "2"), "cannot set run to 2\n");
	/* pages_to_scan cannot be written under the scan-time advisor. */
	if (sysfs_read("advisor_mode", mode, sizeof(mode))) {
		selected_word(mode);
		if (strcmp(mode, "none"))
			expect(&ok, set_attr("advisor_mode", "none"),
			       "cannot set advisor_mode to none\n");
	}
	expect(&ok, set_attr("merge_across_nodes", "1"),
	       "cannot set merge_across_nodes to 1\n");
	expect(&ok, set_attr("max_page_sharing", "256"),
	       "cannot set max_page_sharing to 256\n");
	expect(&ok, set_attr("use_zero_pages", "0"),
	       "cannot set use_zero_pages to 0\n");
	expect(&ok, set_attr("smart_scan", "0"), "cannot set smart_scan to 0\n");
	expect(&ok, set_attr("pages_to_scan", "5000"),
	       "cannot set pages_to_scan to 5000\n");
	expect(&ok, set_attr("sleep_millisecs", "10"),
	       "cannot set sleep_millisecs to 10\n");
	sharing_at_start = ksm_ul("pages_sharing");
	shared_at_start = ksm_ul("pages_shared");
	zero_at_start = ksm_ul("ksm_zero_pages");
	expect(&ok, sharing_at_start == 0 && shared_at_start == 0,
	       "after run=2: pages_sharing %lu pages_shared %lu, expected 0\n",
	       sharing_at_start, shared_at_start);
	expect(&ok, set_attr("run", "1"), "cannot set run to 1\n");

	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY);
	if (!have_kpageflags())
		ksft_print_msg("no /proc/self/pagemap or /proc/kpageflags: the KSM page checks are left out\n");

	ksft_test_result(ok, "setup: run=2, then merge_across_nodes=1 max_page_sharing=256 use_zero_pages=0 smart_scan=0 pages_to_scan=5000 sleep_millisecs=10 run=1\n");
}

/* 2: the area is merged. */
static void test_merge(void)
{
	unsigned long i, sharing;
	bool ok = true;
	long want;

	area = map_pages(NR_PAGES);
	for (i = 0; i < NR_PAGES; i++) {
		if (i < GROUP_END)
			fill_page(i, SEED_GROUP(i % NR_GROUPS));
		else if (i < ZERO_END)
			fill_page(i, 0);
		else
			fill_page(i, SEED_UNIQUE(i));
	}
	expect(&ok, !madvise(area, NR_PAGES * page_size, MADV_MERGEABLE),
	       "madvise(MADV_MERGEABLE) failed: %s\n", strerror(errno));
	wait_full_scans(&ok, SCAN_WAIT, "merge");

	sharing = ksm_ul("pages_sharing");
	expect(&ok, sharing > 0 && sharing != ULONG_MAX,
	       "pages_sharing reads %lu, expected > 0\n", sharing);
	want = expected_merging(0, NR_PAGES, false);
	expect(&ok, want > 0, "the model has nothing to merge\n");
	expect_self_counts(&ok, want, 0, "merge");
	expect_ksm_mapping(&ok, 0, NR_PAGES, 0, NR_PAGES, false, "merge");

	ksft_test_result(ok, "merge: within %d full scans pages_sharing > 0, ksm_merging_pages %ld (%d group + %d zero-filled pages), one KSM page per content\n",
			 SCAN_WAIT, want, GROUP_END, ZERO_END - GROUP_END);
}

/* 3: every byte reads back. */
static void test_merged_intact(void)
{
	bool ok = true;

	expect_intact(&ok, 0, NR_PAGES, "merged");
	ksft_test_result(ok, "merged: every byte of the %d pages reads back as written\n",
			 NR_PAGES);
}

/* 4: one byte written into merged pages. */
static void test_cow_byte(void)
{
	bool ok = true;

	poke_page(3, 1234);			/* group 3 */
	poke_page(400, page_size - 1);		/* zero-filled */
	expect_intact(&ok, 0, NR_PAGES, "COW byte");
	ksft_test_result(ok, "COW: one byte written into a merged group page and a merged zero-filled page lands in that page only, all other pages unchanged\n");
}

/* 5: whole pages rewritten. */
static void test_cow_page(void)
{
	bool ok = true;

	fill_page(21, SEED_NEW(1));		/* group 5 */
	fill_page(410, SEED_NEW(2));		/* zero-filled */
	fill_page(37, SEED_GROUP(9));		/* group 5, now group 9 */
	expect_intact(&ok, 0, NR_PAGES, "COW page");
	ksft_test_result(ok, "COW: merged pages rewritten whole (new data, another group's data) hold it, all other pages unchanged\n");
}

/* The child of tests 6 and 7: bit 0 of the status for 6, bit 1 for 7. */
static void fork_child(void)
{
	bool ok = true;
	int status = 0;

	if (verify_pages(0, NR_PAGES, "child, at fork"))
		status |= 1;

	poke_page(50, 0);			/* group 2 */
	fill_page(300, SEED_NEW(100));		/* group 12 */
	fill_page(420, SEED_GROUP(7));		/* zero-filled */
	fill_page(5, SEED_NEW(101));		/* group 5 */
	if (verify_pages(0, NR_PAGES, "child, after its writes"))
		status |= 2;
	/* ksmd merges the child's pages too: 420 joins group 7. */
	if (!wait_full_scans(&ok, SCAN_WAIT, "child"))
		status |= 2;
	if (verify_pages(0, NR_PAGES, "child, after ksmd scanned it"))
		status |= 2;
	fflush(stdout);
	_exit(status);
}

/* 6, 7 and 8: fork(). */
static void test_fork(void)
{
	bool ok = true;
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		ksft_test_result_fail("fork: the child reads every page as the parent wrote it: fork failed: %s\n",
				      strerror(errno));
		ksft_test_result_skip("fork: the child's writes to merged pages\n");
		ksft_test_result_skip("fork: the parent's pages after the child's writes\n");
		return;
	}
	if (!pid)
		fork_child();
	if (waitpid(pid, &status, 0) != pid) {
		ksft_print_msg("waitpid: %s\n", strerror(errno));
		status = 3 << 8;
	} else if (!WIFEXITED(status)) {
		ksft_print_msg("the child did not exit: status %#x\n", status);
		status = 3 << 8;
	}
	ksft_test_result(!(WEXITSTATUS(status) & 1),
			 "fork: the child reads every byte of every page as the parent wrote it\n");
	ksft_test_result(!(WEXITSTATUS(status) & ~1),
			 "fork: the child's writes to merged pages (a byte, whole pages) read back in the child, before and after ksmd scanned it, its other pages unchanged\n");

	expect_intact(&ok, 0, NR_PAGES, "parent, after the child");
	ksft_test_result(ok, "fork: the parent's pages are unchanged by the child's writes\n");
}

/* 9: MADV_UNMERGEABLE on the first half. */
static void test_unmerge_half(void)
{
	bool ok = true;

	expect(&ok, !madvise(area, HALF * page_size, MADV_UNMERGEABLE),
	       "madvise(MADV_UNMERGEABLE) failed: %s\n", strerror(errno));
	expect_intact(&ok, 0, NR_PAGES, "MADV_UNMERGEABLE");
	/* break_ksm(): no page of the range maps a KSM page any more. */
	expect_ksm_mapping(&ok, HALF, NR_PAGES, 0, HALF, false,
			   "MADV_UNMERGEABLE");
	ksft_test_result(ok, "MADV_UNMERGEABLE on the first half: returns 0, no page of it maps a KSM page, every byte of the %d pages intact\n",
			 NR_PAGES);
}

/* 10: ksmd forgets the unmerged half. */
static void test_unmerge_counts(void)
{
	long want = expected_merging(HALF, NR_PAGES, false);
	bool ok = true;

	wait_full_scans(&ok, SCAN_WAIT, "after MADV_UNMERGEABLE");
	expect_self_counts(&ok, want, 0, "after MADV_UNMERGEABLE");
	expect_ksm_mapping(&ok, HALF, NR_PAGES, 0, NR_PAGES, false,
			   "after MADV_UNMERGEABLE");
	expect_intact(&ok, 0, NR_PAGES, "after MADV_UNMERGEABLE");
	ksft_test_result(ok, "MADV_UNMERGEABLE: after %d full scans ksm_merging_pages counts only the mergeable half (%ld), every byte intact\n",
			 SCAN_WAIT, want);
}

/* 11: MADV_MERGEABLE again. */
static void test_remerge(void)
{
	long want = expected_merging(0, NR_PAGES, false);
	bool ok = true;

	expect(&ok, !madvise(area, HALF * page_size, MADV_MERGEABLE),
	       "madvise(MADV_MERGEABLE) failed: %s\n", strerror(errno));
	wait_full_scans(&ok, SCAN_WAIT, "re-merge");
	expect_self_counts(&ok, want, 0, "re-merge");
	expect_ksm_mapping(&ok, 0, NR_PAGES, 0, NR_PAGES, false, "re-merge");
	expect_intact(&ok, 0, NR_PAGES, "re-merge");
	ksft_test_result(ok, "re-merge: MADV_MERGEABLE on the first half again, after %d full scans ksm_merging_pages %ld, every byte intact\n",
			 SCAN_WAIT, want);
}

/* 12: run=2. */
static void test_run_unmerge(void)
{
	unsigned long sharing, shared;
	bool ok = true;

	expect(&ok, set_attr("run", "2"), "cannot set run to 2\n");
	sharing = ksm_ul("pages_sharing");
	shared = ksm_ul("pages_shared");
	expect(&ok, sharing == 0 && shared == 0,
	       "after run=2: pages_sharing %lu pages_shared %lu, expected 0\n",
	       sharing, shared);
	expect_self_counts(&ok, 0, 0, "run=2");
	expect_ksm_mapping(&ok, 0, 0, 0, NR_PAGES, false, "run=2");
	expect_intact(&ok, 0, NR_PAGES, "run=2");
	ksft_test_result(ok, "run=2: pages_sharing and pages_shared 0, ksm_merging_pages 0, no page maps a KSM page, every byte intact\n");
}

/* 13: use_zero_pages=1. */
static void test_zero_pages(void)
{
	long want = expected_merging(0, NR_PAGES, true);
	long zero = expected_zero(0, NR_PAGES);
	unsigned long global, i;
	bool ok = true;

	expect(&ok, set_attr("use_zero_pages", "1"),
	       "cannot set use_zero_pages to 1\n");
	expect(&ok, set_attr("run", "1"), "cannot set run to 1\n");
	wait_full_scans(&ok, SCAN_WAIT, "use_zero_pages");
	expect_self_counts(&ok, want, zero, "use_zero_pages");
	global = ksm_ul("ksm_zero_pages");
	expect(&ok, global != ULONG_MAX && global >= zero_at_start + zero,
	       "sysfs ksm_zero_pages %lu, expected %lu + %ld at least\n",
	       global, zero_at_start, zero);
	expect_ksm_mapping(&ok, 0, NR_PAGES, 0, NR_PAGES, true,
			   "use_zero_pages");
	for (i = 0; i < NR_PAGES; i++)
		expect_zero_page(&ok, i, is_zero_filled(i), "use_zero_pages");
	expect_intact(&ok, 0, NR_PAGES, "use_zero_pages");
	ksft_test_result(ok, "use_zero_pages=1: the %ld zero-filled pages map the zero page (ksm_zero_pages %ld), ksm_merging_pages %ld, every byte intact\n",
			 zero, zero, want);
}

/* 14: writes into pages that map the zero page. */
static void test_zero_page_cow(void)
{
	long zero;
	bool ok = true;

	poke_page(390, 77);
	fill_page(391, SEED_NEW(3));
	zero = expected_zero(0, NR_PAGES);
	/* wp_page_copy(): ksm_might_unmap_zero_page() at once. */
	expect_self_counts(&ok, expected_merging(0, NR_PAGES, true), zero,
			   "zero page COW");
	expect_zero_page(&ok, 390, false, "zero page COW");
	expect_zero_page(&ok, 391, false, "zero page COW");
	expect_zero_page(&ok, 392, true, "zero page COW");
	expect_intact(&ok, 0, NR_PAGES, "zero page COW");
	ksft_test_result(ok, "use_zero_pages=1: a byte and a whole page written into zero-page mapped pages give private pages with the data, ksm_zero_pages %ld, the other pages unchanged\n",
			 zero);
}

/* 15: munmap of the middle. */
static void test_munmap_middle(void)
{
	unsigned long i;
	bool ok = true;
	long zero;

	expect(&ok, !munmap(page_addr(HOLE_START),
			    (HOLE_END - HOLE_START) * page_size),
	       "munmap failed: %s\n", strerror(errno));
	for (i = HOLE_START; i < HOLE_END; i++)
		model[i].mapped = false;
	zero = expected_zero(0, NR_PAGES);
	/* zap_present_ptes(): ksm_might_unmap_zero_page() at once. */
	/* ksmd drops the rmap_items of the hole later: not checked yet. */
	expect_self_counts(&ok, -1, zero, "munmap middle");
	expect_intact(&ok, 0, NR_PAGES, "munmap middle");
	wait_full_scans(&ok, SCAN_WAIT, "munmap middle");
	expect_self_counts(&ok, expected_merging(0, NR_PAGES, true), zero,
			   "munmap middle, after ksmd");
	expect_intact(&ok, 0, NR_PAGES, "munmap middle, after ksmd");
	ksft_test_result(ok, "munmap of pages [%d, %d) of the merged range: ksm_zero_pages %ld at once, the pages on both sides read back intact\n",
			 HOLE_START, HOLE_END, zero);
}

/* 16: munmap of everything. */
static void test_munmap_all(void)
{
	unsigned long sharing, shared, global;
	bool ok = true;

	expect(&ok, !munmap(area, HOLE_START * page_size) &&
	       !munmap(page_addr(HOLE_END),
		       (NR_PAGES - HOLE_END) * page_size),
	       "munmap failed: %s\n", strerror(errno));
	memset(model, 0, sizeof(model));
	area = NULL;
	expect_self_counts(&ok, -1, 0, "munmap all");
	wait_counts_back(SCAN_WAIT, "munmap all");
	expect_self_counts(&ok, 0, 0, "munmap all, after ksmd");
	sharing = ksm_ul("pages_sharing");
	shared = ksm_ul("pages_shared");
	global = ksm_ul("ksm_zero_pages");
	expect(&ok, sharing == sharing_at_start,
	       "pages_sharing %lu, expected %lu as at start\n",
	       sharing, sharing_at_start);
	expect(&ok, shared == shared_at_start,
	       "pages_shared %lu, expected %lu as at start\n",
	       shared, shared_at_start);
	expect(&ok, global == zero_at_start,
	       "sysfs ksm_zero_pages %lu, expected %lu as at start\n",
	       global, zero_at_start);
	ksft_test_result(ok, "munmap of all of it: ksm_zero_pages 0 at once; once ksmd went over it pages_sharing %lu, pages_shared %lu and ksm_zero_pages as at start, ksm_merging_pages 0\n",
			 sharing_at_start, shared_at_start);
}

/* Page i of the runs area: mostly one pattern, some other pages between. */
static uint64_t run_seed(unsigned long i)
{
	if (i % 37 == 36)
		return SEED_UNIQUE(NR_PAGES + i);
	if (i % 101 == 50)
		return SEED_RUN_OTHER;
	return SEED_RUN;
}

/* A page the writer thread changes while ksmd merges: run pages only. */
static bool run_written(unsigned long i)
{
	return i % 8 == 3 && run_seed(i) == SEED_RUN;
}

static char *run_area;
static struct page_model run_model[RUN_PAGES];
/* How often the writer found one of its pages merged before it wrote. */
static unsigned long run_writer_merged;
/* Rounds of the tight loop, and the writes that did not read back. */
static unsigned long run_writer_writes, run_writer_lost;

static unsigned long verify_run(const char *when)
{
	return verify_area(run_area, run_model, 0, RUN_PAGES, when);
}

/* 17: runs of identical pages. */
static void test_runs(void)
{
	unsigned long i, j, pfn, *pfns, most = 0;
	long want = 0, n_run = 0, n_other = 0;
	uint64_t flags;
	bool ok = true;

	expect(&ok, set_attr("run", "2"), "cannot set run to 2\n");
	expect(&ok, set_attr("max_page_sharing", RUN_MAX_SHARING_STR),
	       "cannot set max_page_sharing to %d\n", RUN_MAX_SHARING);
	expect(&ok, set_attr("run", "1"), "cannot set run to 1\n");

	run_area = map_pages(RUN_PAGES);
	for (i = 0; i < RUN_PAGES; i++) {
		run_model[i] = (struct page_model){ .seed = run_seed(i),
						    .poke_off = -1,
						    .mapped = true };
		gen_page((unsigned char *)run_area + i * page_size,
			 &run_model[i]);
		n_run += run_model[i].seed == SEED_RUN;
		n_other += run_model[i].seed == SEED_RUN_OTHER;
	}
	want = n_run + (n_other > 1 ? n_other : 0);
	expect(&ok, !madvise(run_area, RUN_PAGES * page_size, MADV_MERGEABLE),
	       "madvise(MADV_MERGEABLE) failed: %s\n", strerror(errno));
	wait_full_scans(&ok, SCAN_WAIT, "runs");
	expect_self_counts(&ok, want, 0, "runs");
	expect(&ok, !verify_run("runs"), "runs: pages differ\n");

	pfns = calloc(RUN_PAGES, sizeof(*pfns));
	if (pfns && have_kpageflags()) {
		for (i = 0; i < RUN_PAGES; i++) {
			unsigned long n = 1;
			bool ksm;

			pfns[i] = -1UL;
			if (!page_info(run_area + i * page_size, &pfn, &flags))
				continue;
			ksm = flags & KPF_BIT_KSM;
			expect(&ok, ksm == (run_model[i].seed == SEED_RUN ||
					    (run_model[i].seed == SEED_RUN_OTHER &&
					     n_other > 1)),
			       "runs: page %lu (kpageflags %#llx) maps a KSM page: %d, expected the opposite\n",
			       i, (unsigned long long)flags, ksm);
			if (!ksm)
				continue;
			pfns[i] = pfn;
			for (j = 0; j < i; j++)
				n += pfns[j] == pfn;
			if (n > most)
				most = n;
		}
		expect(&ok, most <= RUN_MAX_SHARING,
		       "runs: a KSM page is mapped by %lu pages, max_page_sharing is %d\n",
		       most, RUN_MAX_SHARING);
		ksft_print_msg("runs: the most pages mapping one KSM page: %lu\n",
			       most);
	}
	free(pfns);
	ksft_test_result(ok, "runs: %d pages, %ld identical with %ld others of another content between them, max_page_sharing=%d: ksm_merging_pages %ld, no KSM page mapped more than %d times, every byte intact\n",
			 RUN_PAGES, n_run, n_other, RUN_MAX_SHARING, want,
			 RUN_MAX_SHARING);
}

/* Whether ksmd merged one of the pages the writer writes. */
static bool run_written_merged(void)
{
	unsigned long i, pfn;
	uint64_t flags;

	for (i = 0; i < RUN_PAGES; i++)
		if (run_written(i) &&
		    page_info(run_area + i * page_size, &pfn, &flags) &&
		    (flags & KPF_BIT_KSM))
			return true;
	return false;
}

/*
 * The writer of test_runs_writer: turns its pages back into the run's
 * contents (mergeable again), waits a little for ksmd, then changes one byte
 * of each; every round a new byte value, noted in the model. Every tenth
 * round it waits for ksmd to merge one of them (up to three full scans):
 * mm/ksm.c merges a page only once two scans saw the same contents, which
 * the short wait of the other rounds may not leave it time for.
 */
static void *run_writer(void *unused)
{
	unsigned char *pattern = malloc(page_size);
	unsigned long i, round;

	if (!pattern)
		return NULL;
	gen_pattern(pattern, SEED_RUN);
	for (round = 1; round <= RUN_WRITER_ROUNDS; round++) {
		for (i = 0; i < RUN_PAGES; i++)
			if (run_written(i))
				memcpy(run_area + i * page_size, pattern,
				       page_size);
		usleep(2000);
		if (round % 10 == 0 && have_kpageflags()) {
			long full = ksm_get_full_scans();

			while (!run_written_merged() &&
			       ksm_get_full_scans() < full + 3)
				usleep(500);
		}
		for (i = 0; i < RUN_PAGES; i++) {
			int off = (round * 131 + i) % page_size;
			unsigned long pfn;
			uint64_t flags;

			if (!run_written(i))
				continue;
			if (have_kpageflags() &&
			    page_info(run_area + i * page_size, &pfn, &flags) &&
			    (flags & KPF_BIT_KSM))
				run_writer_merged++;
			run_area[i * page_size + off] = pattern[off] ^
							(round | 1);
			run_model[i].poke_off = off;
			run_model[i].poke_val = pattern[off] ^ (round | 1);
		}
		usleep(500);
	}
	/*
	 * Then for 2 s without a pause: a byte of each page goes back to the
	 * run's value (the page is mergeable), then, page after page, to a new
	 * value, and then every page is read back. A merge that compared a
	 * page before no CPU could write to it any more would replace a page
	 * just written: that write would not read back.
	 */
	for (unsigned long end = now_ms() + 2000; now_ms() < end;) {
		unsigned char v = ++run_writer_writes % 255 + 1;

		for (i = 0; i < RUN_PAGES; i++) {
			int off = run_model[i].poke_off;

			if (run_written(i))
				run_area[i * page_size + off] = pattern[off];
		}
		for (i = 0; i < RUN_PAGES; i++) {
			int off = run_model[i].poke_off;

			if (!run_written(i))
				continue;
			/* Each write and read must reach memory, in order. */
			__atomic_store_n(&run_area[i * page_size + off],
					 pattern[off] ^ v, __ATOMIC_SEQ_CST);
			run_model[i].poke_val = pattern[off] ^ v;
		}
		for (i = 0; i < RUN_PAGES; i++) {
			int off = run_model[i].poke_off;

			if (run_written(i))
				run_writer_lost += __atomic_load_n(
					&run_area[i * page_size + off],
					__ATOMIC_SEQ_CST) != (char)(pattern[off] ^ v);
		}
	}
	free(pattern);
	return NULL;
}

/* 18: no write lost while ksmd merges. */
static void test_runs_writer(void)
{
	unsigned long merged0 = ksm_ul("pages_sharing"), merged1, written = 0;
	unsigned long i, full0 = ksm_get_full_scans(), full1;
	pthread_t t;
	bool ok = true;

	for (i = 0; i < RUN_PAGES; i++)
		written += run_written(i);
	run_writer_merged = 0;
	run_writer_writes = 0;
	run_writer_lost = 0;
	if (pthread_create(&t, NULL, run_writer, NULL)) {
		ksft_test_result_fail("runs with a writer: pthread_create failed\n");
		return;
	}
	pthread_join(t, NULL);
	full1 = ksm_get_full_scans();
	merged1 = ksm_ul("pages_sharing");
	ksft_print_msg("runs with a writer: %lu pages written %d times each over %ld full scans, %lu times into a page ksmd had merged; pages_sharing %lu -> %lu\n",
		       written, RUN_WRITER_ROUNDS, full1 - full0,
		       run_writer_merged, merged0, merged1);
	expect(&ok, full1 > full0, "ksmd did not scan while the writer ran\n");
	expect(&ok, !have_kpageflags() || run_writer_merged > 0,
	       "ksmd merged none of the pages while the writer ran\n");
	ksft_print_msg("runs with a writer: %lu rounds of writes read back, %lu writes did not\n",
		       run_writer_writes, run_writer_lost);
	expect(&ok, !run_writer_lost, "%lu writes did not read back\n",
	       run_writer_lost);
	expect(&ok, !verify_run("runs with a writer"),
	       "runs with a writer: pages differ\n");
	/* Once more, after ksmd went over the last writes. */
	wait_full_scans(&ok, SCAN_WAIT, "runs with a writer");
	expect(&ok, !verify_run("runs with a writer, after ksmd"),
	       "runs with a writer, after ksmd: pages differ\n");
	expect(&ok, !munmap(run_area, RUN_PAGES * page_size),
	       "munmap failed: %s\n", strerror(errno));
	run_area = NULL;
	wait_counts_back(SCAN_WAIT, "runs unmapped");
	expect(&ok, set_attr("run", "2"), "cannot set run to 2\n");
	ksft_test_result(ok, "runs with a writer: %lu pages changed %d times while ksmd merges them read back as last written, during and after\n",
			 written, RUN_WRITER_ROUNDS);
}

/* 19: max_page_sharing=2 and 8 identical pages. */
static void test_chain(void)
{
	unsigned long chains, dups, pfns[CHAIN_PAGES], pfn, i, j;
	long want = CHAIN_PAGES;
	uint64_t flags;
	bool ok = true;

	expect(&ok, set_attr("run", "2"), "cannot set run to 2\n");
	expect(&ok, set_attr("use_zero_pages", "0"),
	       "cannot set use_zero_pages to 0\n");
	expect(&ok, set_attr("max_page_sharing", CHAIN_MAX_SHARING),
	       "cannot set max_page_sharing to " CHAIN_MAX_SHARING "\n");
	expect(&ok, set_attr("run", "1"), "cannot set run to 1\n");

	area = map_pages(CHAIN_PAGES);
	for (i = 0; i < CHAIN_PAGES; i++)
		fill_page(i, SEED_CHAIN);
	expect(&ok, !madvise(area, CHAIN_PAGES * page_size, MADV_MERGEABLE),
	       "madvise(MADV_MERGEABLE) failed: %s\n", strerror(errno));
	wait_full_scans(&ok, SCAN_WAIT, "max_page_sharing=2");

	expect_self_counts(&ok, want, 0, "max_page_sharing=2");
	chains = ksm_ul("stable_node_chains");
	dups = ksm_ul("stable_node_dups");
	ksft_print_msg("max_page_sharing=2: stable_node_chains %lu stable_node_dups %lu\n",
		       chains, dups);
	expect(&ok, chains > 0 && chains != ULONG_MAX,
	       "stable_node_chains %lu, expected > 0\n", chains);
	expect(&ok, dups >= CHAIN_PAGES / 2 && dups != ULONG_MAX,
	       "stable_node_dups %lu, expected %d at least\n", dups,
	       CHAIN_PAGES / 2);
	/* No KSM page is mapped by more than max_page_sharing pages. */
	if (have_kpageflags()) {
		for (i = 0; i < CHAIN_PAGES; i++) {
			unsigned long n = 1;

			pfns[i] = -1UL;
			if (!page_info(page_addr(i), &pfn, &flags) ||
			    !(flags & KPF_BIT_KSM)) {
				expect(&ok, false, "page %lu (kpageflags %#llx) does not map a KSM page\n",
				       i, (unsigned long long)flags);
				continue;
			}
			pfns[i] = pfn;
			for (j = 0; j < i; j++)
				n += pfns[j] == pfn;
			expect(&ok, n <= 2,
			       "KSM page %#lx is mapped by %lu of the pages, max_page_sharing is 2\n",
			       pfn, n);
		}
	}
	expect_intact(&ok, 0, CHAIN_PAGES, "max_page_sharing=2");
	ksft_test_result(ok, "max_page_sharing=2: %d identical pages merge (ksm_merging_pages %d), stable_node_chains > 0, stable_node_dups >= %d, no KSM page mapped more than twice, every byte intact\n",
			 CHAIN_PAGES, CHAIN_PAGES, CHAIN_PAGES / 2);
}

/* 20: a write into one page of the chain. */
static void test_chain_cow(void)
{
	bool ok = true;

	poke_page(5, 4000 % page_size);
	fill_page(6, SEED_NEW(4));
	expect_intact(&ok, 0, CHAIN_PAGES, "max_page_sharing=2 COW");
	munmap(area, CHAIN_PAGES * page_size);
	memset(model, 0, sizeof(model));
	area = NULL;
	ksft_test_result(ok, "max_page_sharing=2: a byte and a whole page written into pages of the chain land there only, the other pages unchanged\n");
}

/* 21: everything put back. */
static void test_restore(void)
{
	unsigned long sharing;
	bool ok;

	ok = restore_attrs();
	sharing = ksm_ul("pages_sharing");
	ksft_print_msg("after putting the tunables back: pages_sharing %lu, run %lu\n",
		       sharing, ksm_ul("run"));
	ksft_test_result(ok, "restore: run=2, then every changed attribute of " KSM_DIR " put back\n");
}

int main(void)
{
	page_size = sysconf(_SC_PAGESIZE);
	main_pid = getpid();

	ksft_print_header();
	if (access(KSM_DIR, F_OK))
		ksft_exit_skip(KSM_DIR " is missing: no CONFIG_KSM\n");
	ksft_set_plan(NR_TESTS);
	scratch = malloc(page_size);
	if (!scratch)
		ksft_exit_fail_msg("malloc failed\n");
	atexit(restore_at_exit);

	test_setup();
	test_merge();
	test_merged_intact();
	test_cow_byte();
	test_cow_page();
	test_fork();
	test_unmerge_half();
	test_unmerge_counts();
	test_remerge();
	test_run_unmerge();
	test_zero_pages();
	test_zero_page_cow();
	test_munmap_middle();
	test_munmap_all();
	test_runs();
	test_runs_writer();
	test_chain();
	test_chain_cow();
	test_restore();

	ksft_finished();
}
