// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_numa: a KSM page migrated to another NUMA node, and the pruning of
 * stale duplicates of a max_page_sharing chain, checked against what
 * mm/ksm.c does.
 *
 * migrate_nodes (merge_across_nodes=0, a guest with nodes 0 and 1): four
 * pages of contents X bound to node 0 (mbind MPOL_BIND before the first
 * touch) merge into one KSM page K on node 0; move_pages() moves K to node 1
 * with its four mappings (folio_migrate_ksm() gives its stable node the new
 * pfn, the node stays in node 0's tree). In mm/ksm.c the first
 * cmp_and_merge_page() of any of K's mappings after that sees
 * get_kpfn_nid(kpfn) != stable_node->nid, takes the node out of node 0's
 * tree onto the migrate_nodes list, and stable_tree_search() puts it into
 * node 1's tree: after two full scans, three new pages of X bound to node 1
 * merge into K (same pfn, pages_shared unchanged, pages_sharing + 3), and
 * three new pages of X bound to node 0 do not (merging never crosses nodes):
 * they make a KSM page of their own on node 0 (pages_shared + 1,
 * pages_sharing + 2).
 *
 * chain_prune (merge_across_nodes=1, max_page_sharing=2): ten pages of
 * contents Y make a chain of five duplicates of two mappings each. In
 * mm/ksm.c a duplicate leaves the chain
 *  - when ksmd drops the rmap_item of one of its mappings and finds its page
 *    freed (remove_rmap_item_from_tree() -> ksm_get_folio() -> stale ->
 *    remove_node_from_stable_tree()), at the next full scan: "freed";
 *  - when its page was freed after its last rmap_item went (here: the page
 *    held by a pipe through vmsplice() while its two mappings go), only
 *    when a stable tree search walks the chain: stable_tree_search() calls
 *    chain_prune() on every chain node on its path, whatever the contents
 *    searched, and stable_node_dup() calls ksm_get_folio() on every
 *    duplicate when stable_node_chains_prune_millisecs passed since the
 *    chain's last prune (chain_prune_time), else only up to the first
 *    duplicate with room. A page already mapping its KSM page does not
 *    search (cmp_and_merge_page() returns early), so with no other page
 *    scanned the stale duplicate stays counted: "idle"; with pages of other
 *    contents searching every scan and the first duplicate with room first
 *    in the chain, it stays while the prune interval (one hour) has not
 *    passed, and goes at the first search once it is 100 ms: "paced".
 *
 * Every wait is bounded by full scans and by time; an alarm ends the test,
 * the attributes put back, if it takes far longer. Every attribute of
 * /sys/kernel/mm/ksm changed is put back after run=2, and
 * /proc/sys/kernel/numa_balancing (set to 0, so that no page moves but the
 * ones moved here) too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kselftest.h"
#include "vm_util.h"
#include "ksm_rs_util.h"

#define NR_TESTS		8

/* include/uapi/linux/mempolicy.h, without libnuma. */
#define NUMA_MPOL_BIND		2
#define NUMA_MPOL_MF_MOVE_ALL	(1 << 2)

/* /proc/kpageflags (include/uapi/linux/kernel-page-flags.h). */
#define KPF_BIT_KSM		(1ULL << 21)

#define NR_A			4	/* X on node 0, then moved */
#define NR_B			3	/* X on node 1, after the move */
#define NR_C			3	/* X on node 0, after the move */
#define NR_Y			10	/* Y: five duplicates of two */
#define NR_GROUPS		(NR_Y / 2)

#define TAG_X			0x5800000000000000ULL
#define TAG_Y			0x5900000000000000ULL
#define TAG_W			0x5700000000000000ULL

/* The longest wait, and the most full scans a wait goes on for. */
#define WAIT_CAP_MS		60000UL
#define MERGE_SCANS		20
#define PRUNE_MS		"100"
#define PRUNE_NEVER_MS		"3600000"
#define NUMA_BALANCING		"/proc/sys/kernel/numa_balancing"

static unsigned long page_size;
static int pagemap_fd = -1, kpageflags_fd = -1;
static char numa_balancing[16];
static const char *volatile stage = "start";

static struct saved_attr saved_attrs[] = {
	{ .name = "max_page_sharing" },
	{ .name = "merge_across_nodes" },
	{ .name = "use_zero_pages" },
	{ .name = "stable_node_chains_prune_millisecs" },
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

static void proc_write(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return;
	n = write(fd, val, strlen(val));
	(void)n;
	close(fd);
}

static void restore_at_exit(void)
{
	saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
	if (numa_balancing[0])
		proc_write(NUMA_BALANCING, numa_balancing);
	numa_balancing[0] = '\0';
}

static void on_alarm(int sig)
{
	static const char *const attrs[] = {
		"pages_shared", "pages_sharing", "pages_unshared",
		"stable_node_chains", "stable_node_dups", "full_scans",
	};

	(void)sig;
	watchdog_report(attrs, ARRAY_SIZE(attrs), stage);
	watchdog_restore(saved_attrs, ARRAY_SIZE(saved_attrs));
	if (numa_balancing[0])
		proc_write(NUMA_BALANCING, numa_balancing);
	_exit(KSFT_FAIL);
}

/* ---- counters and waits ---- */

struct counts {
	unsigned long shared, sharing, unshared, chains, dups;
	long full_scans;
};

static void counts_read(struct counts *c)
{
	c->shared = ksm_ul("pages_shared");
	c->sharing = ksm_ul("pages_sharing");
	c->unshared = ksm_ul("pages_unshared");
	c->chains = ksm_ul("stable_node_chains");
	c->dups = ksm_ul("stable_node_dups");
	c->full_scans = ksm_get_full_scans();
}

static const char *counts_str(const struct counts *c)
{
	static char buf[4][160];
	static int next;
	char *b = buf[next++ % 4];

	snprintf(b, sizeof(buf[0]),
		 "pages_shared %lu pages_sharing %lu pages_unshared %lu stable_node_chains %lu stable_node_dups %lu (full_scans %ld)",
		 c->shared, c->sharing, c->unshared, c->chains, c->dups,
		 c->full_scans);
	return b;
}

static long merging_pages(void)
{
	long n = -1;
	FILE *f = fopen("/proc/self/ksm_merging_pages", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

static void wait_start(struct scan_wait *w, const char *what)
{
	stage = what;
	scan_wait_start(w);
}

/*
 * Sleeps a little, unless @scans full scans and @min_ms passed since
 * wait_start(), or WAIT_CAP_MS: whether to go on waiting.
 */
static bool wait_more(const struct scan_wait *w, long scans, unsigned long min_ms)
{
	unsigned long waited = now_ms() - w->start;

	if (waited >= WAIT_CAP_MS)
		return false;
	if (scan_wait_scans(w) >= scans && waited >= min_ms)
		return false;
	usleep(10000);
	return true;
}

/* Two more full scans, within MERGE_SCANS of wait_start(). */
static void settle(const struct scan_wait *w)
{
	long until = scan_wait_scans(w) + 2;

	if (until > MERGE_SCANS)
		until = MERGE_SCANS;
	while (wait_more(w, until, 0))
		;
}

/* ---- pages ---- */

static void fill(char *page, uint64_t tag)
{
	uint64_t *q = (uint64_t *)page;
	unsigned long w;

	for (w = 0; w < page_size / sizeof(*q); w++)
		q[w] = tag ^ (w * 0x9e3779b97f4a7c15ULL) ^ 0x1111;
}

/* The pfn mapped at @addr, 0 if none. */
static uint64_t pfn_of(const char *addr)
{
	uint64_t e;

	if (pread(pagemap_fd, &e, sizeof(e),
		  (uintptr_t)addr / page_size * sizeof(e)) != sizeof(e))
		return 0;
	return e & (1ULL << 63) ? e & ((1ULL << 55) - 1) : 0;
}

static bool pfn_is_ksm(uint64_t pfn)
{
	uint64_t flags;

	return pfn && pread(kpageflags_fd, &flags, sizeof(flags),
			    pfn * sizeof(flags)) == sizeof(flags) &&
	       (flags & KPF_BIT_KSM);
}

/* The node of the page at @addr (move_pages() without nodes), or -errno. */
static int node_of(char *addr)
{
	void *pages[1] = { addr };
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, pages, NULL, &status, 0))
		return -errno;
	return status;
}

/* Moves the page at @addr, with every mapping of it, to @node. */
static int move_to(char *addr, int node)
{
	void *pages[1] = { addr };
	int nodes[1] = { node }, status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, pages, nodes, &status,
		    NUMA_MPOL_MF_MOVE_ALL))
		return -errno;
	return status;
}

/*
 * @n private anonymous small pages of @tag, MADV_MERGEABLE; bound to @node
 * before the first touch, unless @node < 0.
 */
static char *map_pages(unsigned long n, uint64_t tag, int node)
{
	unsigned long mask = 1UL << (node < 0 ? 0 : node), i;
	char *p = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	madvise(p, n * page_size, MADV_NOHUGEPAGE);
	if (node >= 0 &&
	    syscall(SYS_mbind, p, n * page_size, NUMA_MPOL_BIND, &mask,
		    8 * sizeof(mask), 0))
		ksft_exit_fail_msg("mbind to node %d: %s\n", node,
				   strerror(errno));
	for (i = 0; i < n; i++)
		fill(p + i * page_size, tag);
	if (madvise(p, n * page_size, MADV_MERGEABLE))
		ksft_exit_fail_msg("MADV_MERGEABLE: %s\n", strerror(errno));
	return p;
}

/* "i:pfn(KSM,node n)" for the @n pages at @p. */
static const char *pages_str(char *p, unsigned long n)
{
	static char buf[2][512];
	static int next;
	char *b = buf[next++ % 2];
	size_t len = 0;
	unsigned long i;

	b[0] = '\0';
	for (i = 0; i < n && len < sizeof(buf[0]) - 64; i++) {
		uint64_t pfn = pfn_of(p + i * page_size);

		len += snprintf(b + len, sizeof(buf[0]) - len,
				"%s%lu:%#llx(%s,node %d)", i ? " " : "", i,
				(unsigned long long)pfn,
				pfn_is_ksm(pfn) ? "KSM" : "not KSM",
				node_of(p + i * page_size));
	}
	return b;
}

/* Whether the @n pages at @p all map the KSM page @pfn (any, if 0). */
static bool all_map(char *p, unsigned long n, uint64_t pfn)
{
	uint64_t first = pfn_of(p);
	unsigned long i;

	if (!pfn_is_ksm(first) || (pfn && first != pfn))
		return false;
	for (i = 1; i < n; i++)
		if (pfn_of(p + i * page_size) != first)
			return false;
	return true;
}

static bool none_maps(char *p, unsigned long n, uint64_t pfn)
{
	unsigned long i;

	for (i = 0; i < n; i++)
		if (pfn_of(p + i * page_size) == pfn)
			return false;
	return true;
}

/* ---- set-up ---- */

static bool have_two_nodes(void)
{
	return !access("/sys/devices/system/node/node1", F_OK) &&
	       node_of((char *)&page_size) >= 0;
}

/* ksmd unthrottled over our few pages; no skipping, no advisor. */
static bool ksm_setup(const char *merge_across_nodes, const char *mps)
{
	return set_attr("run", "2") &&
	       set_attr("merge_across_nodes", merge_across_nodes) &&
	       set_attr("max_page_sharing", mps) &&
	       set_attr("use_zero_pages", "0") &&
	       set_attr("stable_node_chains_prune_millisecs", PRUNE_MS) &&
	       set_attr("advisor_mode", "none") &&
	       set_attr("smart_scan", "0") &&
	       set_attr("pages_to_scan", "100000") &&
	       set_attr("sleep_millisecs", "20") &&
	       set_attr("run", "1");
}

/* ---- migrate_nodes ---- */

static char *area_a, *area_b, *area_c;
static uint64_t kpfn;		/* K, on node 1 once moved */
static bool migrated;

static void test_migrate_setup(void)
{
	struct counts c;
	struct scan_wait w;
	uint64_t pfn0;
	bool ok = true;
	int node, st;

	if (!have_two_nodes()) {
		ksft_test_result_skip("migrate_nodes: setup: no NUMA node 1 or no move_pages()\n");
		return;
	}
	if (!ksm_setup("0", "256"))
		ksft_exit_fail_msg("set-up of the ksm attributes failed\n");
	area_a = map_pages(NR_A, TAG_X, 0);
	wait_start(&w, "migrate_nodes: merge on node 0");
	for (;;) {
		/* The counters may follow the page tables a little later. */
		counts_read(&c);
		if (all_map(area_a, NR_A, 0) && c.shared == 1 &&
		    c.sharing == NR_A - 1)
			break;
		if (!wait_more(&w, MERGE_SCANS, 0))
			break;
	}
	settle(&w);
	scan_wait_note(&w, "migrate_nodes: merge on node 0");
	counts_read(&c);
	pfn0 = pfn_of(area_a);
	node = node_of(area_a);
	ksft_print_msg("merged: A %s; %s\n", pages_str(area_a, NR_A),
		       counts_str(&c));
	expect(&ok, all_map(area_a, NR_A, 0),
	       "the %d pages of X on node 0 do not map one KSM page: %s\n",
	       NR_A, pages_str(area_a, NR_A));
	expect(&ok, node == 0, "the KSM page %#llx is on node %d, not 0\n",
	       (unsigned long long)pfn0, node);
	expect(&ok, c.shared == 1 && c.sharing == NR_A - 1,
	       "expected pages_shared 1 pages_sharing %d: %s\n", NR_A - 1,
	       counts_str(&c));
	if (!ok) {
		ksft_test_result_fail("migrate_nodes: setup: %d pages of X bound to node 0 merge into one KSM page on node 0\n",
				      NR_A);
		return;
	}

	/*
	 * ksmd stopped while the page moves: a scan that meets the mappings
	 * as migration entries drops their rmap_items (get_next_rmap_item()
	 * frees those of pages it did not find), and the counters read low
	 * until the next scan puts them back, on either implementation.
	 */
	expect(&ok, set_attr("run", "0"), "run=0 before the move\n");
	st = move_to(area_a, 1);
	expect(&ok, set_attr("run", "1"), "run=1 after the move\n");
	kpfn = pfn_of(area_a);
	node = node_of(area_a);
	counts_read(&c);
	ksft_print_msg("moved: move_pages() status %d; A %s; %s\n", st,
		       pages_str(area_a, NR_A), counts_str(&c));
	expect(&ok, st == 1, "move_pages() of the KSM page to node 1: %d\n",
	       st);
	expect(&ok, kpfn != pfn0 && node == 1 && all_map(area_a, NR_A, kpfn),
	       "after move_pages(), the %d mappings of KSM page %#llx do not all map one KSM page on node 1: %s\n",
	       NR_A, (unsigned long long)pfn0, pages_str(area_a, NR_A));
	expect(&ok, c.shared == 1 && c.sharing == NR_A - 1,
	       "expected pages_shared 1 pages_sharing %d after the move: %s\n",
	       NR_A - 1, counts_str(&c));
	migrated = ok;
	ksft_test_result(ok, "migrate_nodes: setup: %d pages of X bound to node 0 merge into KSM page %#llx on node 0; move_pages() moves it with its %d mappings to node 1 (pfn %#llx)\n",
			 NR_A, (unsigned long long)pfn0, NR_A,
			 (unsigned long long)kpfn);
}

static void test_migrate_node1(void)
{
	struct counts c0, c;
	struct scan_wait w;
	bool ok = true;

	if (!migrated) {
		ksft_test_result_skip("migrate_nodes: no KSM page moved to node 1\n");
		return;
	}
	/*
	 * mm/ksm.c moves K's stable node into node 1's tree at the first scan
	 * of one of its mappings: two full scans, so that the new pages find
	 * it there whatever the order of the scan.
	 */
	wait_start(&w, "migrate_nodes: two scans after the move");
	while (wait_more(&w, 2, 0))
		;
	counts_read(&c0);
	area_b = map_pages(NR_B, TAG_X, 1);
	wait_start(&w, "migrate_nodes: new pages on node 1");
	for (;;) {
		counts_read(&c);
		if (all_map(area_b, NR_B, kpfn) &&
		    c.sharing == c0.sharing + NR_B)
			break;
		if (!wait_more(&w, MERGE_SCANS, 0))
			break;
	}
	/* Two more scans: what merged stays merged. */
	settle(&w);
	scan_wait_note(&w, "migrate_nodes: new pages on node 1");
	counts_read(&c);
	ksft_print_msg("new X pages on node 1: B %s; A %s; before %s; now %s\n",
		       pages_str(area_b, NR_B), pages_str(area_a, NR_A),
		       counts_str(&c0), counts_str(&c));
	expect(&ok, all_map(area_b, NR_B, kpfn),
	       "the %d new pages of X on node 1 do not all map the migrated KSM page %#llx (node %d): %s\n",
	       NR_B, (unsigned long long)kpfn, node_of(area_a),
	       pages_str(area_b, NR_B));
	expect(&ok, all_map(area_a, NR_A, kpfn),
	       "the first %d pages no longer map KSM page %#llx: %s\n", NR_A,
	       (unsigned long long)kpfn, pages_str(area_a, NR_A));
	expect(&ok, c.shared == c0.shared && c.sharing == c0.sharing + NR_B &&
		    c.chains == c0.chains && c.dups == c0.dups,
	       "expected pages_shared %lu pages_sharing %lu stable_node_chains %lu stable_node_dups %lu (X still one KSM page, %d more sharers): %s\n",
	       c0.shared, c0.sharing + NR_B, c0.chains, c0.dups, NR_B,
	       counts_str(&c));
	expect(&ok, merging_pages() == NR_A + NR_B,
	       "/proc/self/ksm_merging_pages %ld, expected %d\n",
	       merging_pages(), NR_A + NR_B);
	ksft_test_result(ok, "migrate_nodes: with merge_across_nodes=0, %d new pages of X bound to node 1 merge into the KSM page moved to node 1 (pages_shared unchanged, pages_sharing +%d), as mm/ksm.c's migrate_nodes list makes them\n",
			 NR_B, NR_B);
}

static void test_migrate_node0(void)
{
	struct counts c0, c;
	struct scan_wait w;
	uint64_t pfn;
	bool ok = true;
	int node;

	if (!migrated) {
		ksft_test_result_skip("migrate_nodes: no KSM page moved to node 1\n");
		return;
	}
	counts_read(&c0);
	area_c = map_pages(NR_C, TAG_X, 0);
	wait_start(&w, "migrate_nodes: new pages on node 0");
	for (;;) {
		counts_read(&c);
		if (all_map(area_c, NR_C, 0) && c.shared == c0.shared + 1 &&
		    c.sharing == c0.sharing + NR_C - 1)
			break;
		if (!wait_more(&w, MERGE_SCANS, 0))
			break;
	}
	settle(&w);
	scan_wait_note(&w, "migrate_nodes: new pages on node 0");
	counts_read(&c);
	pfn = pfn_of(area_c);
	node = node_of(area_c);
	ksft_print_msg("new X pages on node 0: C %s; A %s; before %s; now %s\n",
		       pages_str(area_c, NR_C), pages_str(area_a, NR_A),
		       counts_str(&c0), counts_str(&c));
	expect(&ok, none_maps(area_c, NR_C, kpfn),
	       "a new page of X on node 0 maps KSM page %#llx on node %d: merging crossed nodes: %s\n",
	       (unsigned long long)kpfn, node_of(area_a),
	       pages_str(area_c, NR_C));
	expect(&ok, all_map(area_c, NR_C, 0) && node == 0,
	       "the %d new pages of X on node 0 do not map one KSM page of their own on node 0: %s\n",
	       NR_C, pages_str(area_c, NR_C));
	expect(&ok, all_map(area_a, NR_A, kpfn) && node_of(area_a) == 1,
	       "the first %d pages no longer map KSM page %#llx on node 1: %s\n",
	       NR_A, (unsigned long long)kpfn, pages_str(area_a, NR_A));
	/*
	 * The KSM page on node 0 is alone in node 0's tree: no chain, even if
	 * the one on node 1 is still found there.
	 */
	expect(&ok, c.shared == c0.shared + 1 &&
		    c.sharing == c0.sharing + NR_C - 1 &&
		    c.chains == c0.chains && c.dups == c0.dups,
	       "expected pages_shared %lu pages_sharing %lu stable_node_chains %lu stable_node_dups %lu (one more KSM page, for the node 0 pages, alone in node 0's tree): %s\n",
	       c0.shared + 1, c0.sharing + NR_C - 1, c0.chains, c0.dups,
	       counts_str(&c));
	ksft_test_result(ok, "migrate_nodes: %d new pages of X bound to node 0 do not merge with the KSM page on node 1; they make their own on node 0 (pfn %#llx)\n",
			 NR_C, (unsigned long long)pfn);
}

/* ---- chain_prune ---- */

static char *area_y;
/* The pairs of Y pages mapping one duplicate, in the order of their pages. */
static int group_first[NR_GROUPS], group_second[NR_GROUPS];
static int nr_groups;
static bool chain_ok;

static bool counts_are(const struct counts *c, unsigned long shared,
		       unsigned long sharing, unsigned long chains,
		       unsigned long dups)
{
	return c->shared == shared && c->sharing == sharing &&
	       c->chains == chains && c->dups == dups;
}

static void expect_counts(bool *ok, const char *when, unsigned long shared,
			  unsigned long sharing, unsigned long chains,
			  unsigned long dups)
{
	struct counts c;

	counts_read(&c);
	ksft_print_msg("%s: %s\n", when, counts_str(&c));
	expect(ok, counts_are(&c, shared, sharing, chains, dups),
	       "%s: %s; mm/ksm.c: pages_shared %lu pages_sharing %lu stable_node_chains %lu stable_node_dups %lu\n",
	       when, counts_str(&c), shared, sharing, chains, dups);
}

/* Groups the Y pages by the KSM page they map. */
static bool find_groups(void)
{
	uint64_t pfn[NR_Y];
	int i, j;

	nr_groups = 0;
	for (i = 0; i < NR_Y; i++) {
		pfn[i] = pfn_of(area_y + i * page_size);
		if (!pfn_is_ksm(pfn[i]))
			return false;
	}
	for (i = 0; i < NR_Y; i++) {
		int n = 0;

		for (j = 0; j < i && pfn[j] != pfn[i]; j++)
			;
		if (j < i)
			continue;
		if (nr_groups == NR_GROUPS)
			return false;
		for (j = i; j < NR_Y; j++) {
			if (pfn[j] != pfn[i])
				continue;
			if (n == 0)
				group_first[nr_groups] = j;
			else if (n == 1)
				group_second[nr_groups] = j;
			n++;
		}
		if (n != 2)
			return false;
		nr_groups++;
	}
	return nr_groups == NR_GROUPS;
}

static void drop_page(int i)
{
	if (madvise(area_y + i * page_size, page_size, MADV_DONTNEED))
		ksft_exit_fail_msg("MADV_DONTNEED: %s\n", strerror(errno));
}

static void test_chain_setup(void)
{
	struct counts c;
	struct scan_wait w;
	bool ok = true;

	if (!ksm_setup("1", "2"))
		ksft_exit_fail_msg("set-up of the ksm attributes failed\n");
	area_y = map_pages(NR_Y, TAG_Y, -1);
	wait_start(&w, "chain_prune: merge");
	for (;;) {
		counts_read(&c);
		if (counts_are(&c, NR_GROUPS, NR_GROUPS, 1, NR_GROUPS) &&
		    find_groups())
			break;
		if (!wait_more(&w, MERGE_SCANS, 0))
			break;
	}
	scan_wait_note(&w, "chain_prune: merge");
	ksft_print_msg("Y %s\n", pages_str(area_y, NR_Y));
	expect_counts(&ok, "chain_prune: merged", NR_GROUPS, NR_GROUPS, 1,
		      NR_GROUPS);
	expect(&ok, find_groups(),
	       "the %d pages of Y do not map %d KSM pages of two each: %s\n",
	       NR_Y, NR_GROUPS, pages_str(area_y, NR_Y));
	chain_ok = ok;
	ksft_test_result(ok, "chain_prune: setup: %d pages of Y with max_page_sharing=2: one chain of %d duplicates of two mappings\n",
			 NR_Y, NR_GROUPS);
}

/*
 * Both mappings of duplicate 1 go, its page freed at once: ksmd finds it
 * freed when it drops their rmap_items, at the next full scan.
 */
static void test_chain_freed(void)
{
	struct counts c;
	struct scan_wait w;
	bool ok = true;

	if (!chain_ok) {
		ksft_test_result_skip("chain_prune: freed: no chain\n");
		return;
	}
	drop_page(group_first[1]);
	drop_page(group_second[1]);
	wait_start(&w, "chain_prune: freed");
	for (;;) {
		counts_read(&c);
		if (counts_are(&c, NR_GROUPS - 1, NR_GROUPS - 1, 1,
			       NR_GROUPS - 1) && scan_wait_scans(&w) >= 1)
			break;
		if (!wait_more(&w, 3, 0))
			break;
	}
	scan_wait_note(&w, "chain_prune: freed");
	expect_counts(&ok, "chain_prune: freed", NR_GROUPS - 1, NR_GROUPS - 1,
		      1, NR_GROUPS - 1);
	ksft_test_result(ok, "chain_prune: freed: both mappings of a duplicate unmapped (MADV_DONTNEED), its page freed: the duplicate leaves the chain within 3 full scans, no search needed (remove_rmap_item_from_tree finds it stale)\n");
}

/*
 * Duplicate 2's page is held by a pipe while both its mappings go: ksmd
 * drops their rmap_items from a live page, the duplicate stays with none.
 * Then the pipe lets the page go: the duplicate is stale, and nothing but a
 * search of the chain can find it. Nothing searches: the other pages of Y
 * map their KSM pages.
 */
static void test_chain_idle(void)
{
	struct iovec iov;
	struct scan_wait w;
	bool ok = true;
	int pipefd[2];
	ssize_t n;

	if (!chain_ok) {
		ksft_test_result_skip("chain_prune: idle: no chain\n");
		return;
	}
	if (pipe(pipefd))
		ksft_exit_fail_msg("pipe: %s\n", strerror(errno));
	iov.iov_base = area_y + group_first[2] * page_size;
	iov.iov_len = page_size;
	n = vmsplice(pipefd[1], &iov, 1, 0);
	expect(&ok, n == (ssize_t)page_size, "vmsplice: %zd (%s)\n", n,
	       n < 0 ? strerror(errno) : "short");
	drop_page(group_first[2]);
	drop_page(group_second[2]);
	wait_start(&w, "chain_prune: idle, page held");
	while (wait_more(&w, 3, 0))
		;
	scan_wait_note(&w, "chain_prune: idle, page held");
	expect_counts(&ok, "chain_prune: idle, mappings gone, page held",
		      NR_GROUPS - 2, NR_GROUPS - 2, 1, NR_GROUPS - 1);
	close(pipefd[0]);
	close(pipefd[1]);
	wait_start(&w, "chain_prune: idle, page freed");
	while (wait_more(&w, 6, 10 * atoi(PRUNE_MS)))
		;
	scan_wait_note(&w, "chain_prune: idle, page freed");
	expect_counts(&ok, "chain_prune: idle, page freed", NR_GROUPS - 2,
		      NR_GROUPS - 2, 1, NR_GROUPS - 1);
	ksft_test_result(ok, "chain_prune: idle: a duplicate whose page is freed after its last mapping went stays counted over 6 full scans and 10 x stable_node_chains_prune_millisecs while no page searches the stable tree, as in mm/ksm.c\n");
}

/*
 * One page of every live duplicate gets contents of its own: each
 * duplicate has room for one mapping again, and the three pages search the
 * stable tree at every scan, through the chain (the only node). mm/ksm.c
 * stops at the first duplicate with room unless the prune interval passed:
 * the stale duplicate (not the newest) stays while the interval is an
 * hour, and goes at the first search once it is 100 ms.
 */
static void test_chain_paced(void)
{
	int live[NR_GROUPS], nr_live = 0, i;
	unsigned long ms;
	struct counts c;
	struct scan_wait w;
	bool ok = true;

	if (!chain_ok) {
		ksft_test_result_skip("chain_prune: paced: no chain\n");
		return;
	}
	ok = set_attr("stable_node_chains_prune_millisecs", PRUNE_NEVER_MS);
	for (i = 0; i < nr_groups; i++)
		if (i != 1 && i != 2)
			live[nr_live++] = i;
	for (i = 0; i < nr_live; i++)
		fill(area_y + group_second[live[i]] * page_size, TAG_W + i + 1);
	wait_start(&w, "chain_prune: paced, interval an hour");
	while (wait_more(&w, 8, 10 * atoi(PRUNE_MS)))
		;
	scan_wait_note(&w, "chain_prune: paced, interval an hour");
	counts_read(&c);
	ksft_print_msg("Y %s\n", pages_str(area_y, NR_Y));
	expect_counts(&ok, "chain_prune: paced, searched, interval an hour",
		      NR_GROUPS - 2, 0, 1, NR_GROUPS - 1);
	expect(&ok, c.unshared == (unsigned long)nr_live,
	       "pages_unshared %lu, expected %d (the pages of their own contents)\n",
	       c.unshared, nr_live);

	ok &= set_attr("stable_node_chains_prune_millisecs", PRUNE_MS);
	wait_start(&w, "chain_prune: paced, interval 100 ms");
	for (;;) {
		counts_read(&c);
		if (c.dups == NR_GROUPS - 2)
			break;
		if (!wait_more(&w, 10, 10 * atoi(PRUNE_MS)))
			break;
	}
	ms = now_ms() - w.start;
	scan_wait_note(&w, "chain_prune: paced, interval 100 ms");
	expect(&ok, c.dups == NR_GROUPS - 2,
	       "the stale duplicate is still counted %lu ms and %ld full scans after stable_node_chains_prune_millisecs=" PRUNE_MS ", with %d pages of other contents searching the stable tree (one chain) at every scan\n",
	       ms, scan_wait_scans(&w), nr_live);
	expect_counts(&ok, "chain_prune: paced, searched, interval 100 ms",
		      NR_GROUPS - 2, 0, 1, NR_GROUPS - 2);
	ksft_test_result(ok, "chain_prune: paced: pages of other contents search through the chain every scan: the stale duplicate stays while stable_node_chains_prune_millisecs=" PRUNE_NEVER_MS ", goes once it is " PRUNE_MS " (after %lu ms), as mm/ksm.c's chain_prune()\n",
			 ms);
}

static void test_restore(void)
{
	bool ok = saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs),
				      true);

	if (numa_balancing[0])
		proc_write(NUMA_BALANCING, numa_balancing);
	numa_balancing[0] = '\0';
	ksft_test_result(ok, "restore: run=2, then every changed attribute of " KSM_DIR " put back\n");
}

int main(void)
{
	const char *ksm = getenv("KSM_RS_KSM");
	char buf[16] = "";
	int fd;

	page_size = getpagesize();
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	if (access(KSM_DIR "/run", W_OK))
		ksft_exit_skip("no writable " KSM_DIR "/run\n");
	if (access(KSM_DIR "/merge_across_nodes", W_OK))
		ksft_exit_skip("no writable " KSM_DIR "/merge_across_nodes (no CONFIG_NUMA)\n");
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY);
	if (pagemap_fd < 0 || kpageflags_fd < 0)
		ksft_exit_skip("no /proc/self/pagemap or /proc/kpageflags\n");
	ksft_set_plan(NR_TESTS);
	ksft_print_msg("implementation %s\n", ksm ? ksm : "?");

	fd = open(NUMA_BALANCING, O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		if (buf[0] && strcmp(buf, "0")) {
			strcpy(numa_balancing, buf);
			proc_write(NUMA_BALANCING, "0");
		}
	}
	atexit(restore_at_exit);
	signal(SIGALRM, on_alarm);
	alarm(600);

	test_migrate_setup();
	test_migrate_node1();
	test_migrate_node0();
	if (area_a)
		munmap(area_a, NR_A * page_size);
	if (area_b)
		munmap(area_b, NR_B * page_size);
	if (area_c)
		munmap(area_c, NR_C * page_size);

	test_chain_setup();
	test_chain_freed();
	test_chain_idle();
	test_chain_paced();
	test_restore();

	alarm(0);
	ksft_finished();
}
