// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_fresh_frame: the hardened merge of ksm_rs,
 * /sys/kernel/mm/ksm/merge_fresh_frame.
 *
 * With merge_fresh_frame=0 (the default, and mm/ksm.c, which has no such
 * file) a new KSM page is one of the merged pages, in place: its frame
 * number (from /proc/self/pagemap) is one of the candidates' frames before
 * the merge. With merge_fresh_frame=1 it is a copy in a newly allocated
 * frame: none of its candidates' frames, flagged KSM in /proc/kpageflags,
 * with the data intact, the counters right (pages_shared + 1 and
 * pages_sharing + 1 a pair), copy-on-write working, MADV_UNMERGEABLE and
 * run=2 unmerging, and no frame kept after munmap (no KSM-flagged frame left
 * in /proc/kpageflags: a leaked copy keeps its KSM mapping word).
 *
 * The candidates' old frames are freed by the merge, and the page allocator
 * may hand them out again for the next copy: a copy may be in the old frame
 * of another pair's page, so each KSM page is only checked against its own
 * candidates (see "Hardened merge" in Documentation/mm/ksm_rs.rst).
 *
 * On mm/ksm.c (KSM_RS_KSM=c) the file is absent, and the same scenarios
 * check that KSM pages stay in a candidate's frame. Needs root (frame
 * numbers). Waits are bounded by full scans and time.
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
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest.h"
#include "vm_util.h"
#include "ksm_rs_util.h"

#define NR_TESTS		9

#define KNOB			"merge_fresh_frame"
#define KPF_BIT_KSM		(1ULL << 21)

#define NR_SMALL		16	/* pairs of the small cases */
#define NR_LARGE		64	/* pairs of the large case, plus a triple */
#define NR_CYCLES		3	/* merge + munmap cycles of the leak check */

#define TAG_PAIR		0x4652455348000000ULL
#define TAG_TRIPLE		0x4652455354000000ULL
#define TAG_WRITE		0x5752495445000000ULL

#define WAIT_CAP_MS		120000UL
#define MERGE_SCANS		30

static unsigned long page_size;
static int pagemap_fd = -1, kpageflags_fd = -1;
static bool rust, knob;
static const char *volatile stage = "start";

static struct saved_attr saved_attrs[] = {
	{ .name = KNOB },
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
	saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
}

static void on_alarm(int sig)
{
	static const char *const attrs[] = {
		"pages_shared", "pages_sharing", "pages_unshared", "full_scans",
	};

	(void)sig;
	watchdog_report(attrs, ARRAY_SIZE(attrs), stage);
	watchdog_restore(saved_attrs, ARRAY_SIZE(saved_attrs));
	_exit(KSFT_FAIL);
}

/* ---- waits ---- */

static void wait_start(struct scan_wait *w, const char *what)
{
	stage = what;
	scan_wait_start(w);
}

/* Sleeps a little unless MERGE_SCANS full scans or WAIT_CAP_MS passed. */
static bool wait_more(const struct scan_wait *w)
{
	if (now_ms() - w->start >= WAIT_CAP_MS || scan_wait_scans(w) >= MERGE_SCANS)
		return false;
	usleep(10000);
	return true;
}

/*
 * Waits until pages_shared and pages_sharing are @shared and @sharing
 * (ksmd drops the mappings of unmapped, unmerged or written pages from its
 * counters when it scans them next).
 */
static bool wait_counters(unsigned long shared, unsigned long sharing,
			  const char *what)
{
	struct scan_wait w;
	bool done;

	wait_start(&w, what);
	while (!(done = ksm_ul("pages_shared") == shared &&
			ksm_ul("pages_sharing") == sharing) && wait_more(&w))
		;
	scan_wait_note(&w, what);
	return done;
}

/* ---- pages ---- */

static void fill(char *page, uint64_t tag)
{
	uint64_t *q = (uint64_t *)page;
	unsigned long w;

	for (w = 0; w < page_size / sizeof(*q); w++)
		q[w] = tag ^ (w * 0x9e3779b97f4a7c15ULL) ^ 0x2222;
}

static bool holds(const char *page, uint64_t tag)
{
	const uint64_t *q = (const uint64_t *)page;
	unsigned long w;

	for (w = 0; w < page_size / sizeof(*q); w++)
		if (q[w] != (tag ^ (w * 0x9e3779b97f4a7c15ULL) ^ 0x2222))
			return false;
	return true;
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

/* Frames flagged KSM in /proc/kpageflags, or -1. */
static long ksm_frames(void)
{
	static uint64_t buf[4096];
	long n = 0;
	off_t off = 0;
	ssize_t got;
	size_t i;

	while ((got = pread(kpageflags_fd, buf, sizeof(buf), off)) > 0) {
		for (i = 0; i < (size_t)got / sizeof(buf[0]); i++)
			n += !!(buf[i] & KPF_BIT_KSM);
		off += got;
	}
	return got < 0 ? -1 : n;
}

/*
 * A group of @n identical pages, @n - 1 more than the first: page 0 in the
 * "first" area at @i, the others in the "second" area at @i * 2 + j, so that
 * ksmd scans all firsts (into the unstable tree) before any match.
 */
struct case_pages {
	char *first, *second;
	unsigned long groups;	/* pairs, then (if triple) one triple */
	bool triple;
	uint64_t *old;		/* old pfns, groups * 3 */
};

static unsigned long group_size(const struct case_pages *c, unsigned long g)
{
	return c->triple && g == c->groups - 1 ? 3 : 2;
}

static char *page_at(const struct case_pages *c, unsigned long g, int j)
{
	return j ? c->second + (g * 2 + j - 1) * page_size :
		   c->first + g * page_size;
}

static uint64_t tag_of(const struct case_pages *c, unsigned long g)
{
	return (c->triple && g == c->groups - 1 ? TAG_TRIPLE : TAG_PAIR) ^
	       (g << 8) ^ (uint64_t)c->groups << 32;
}

static char *map_area(unsigned long pages)
{
	char *p = mmap(NULL, pages * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	madvise(p, pages * page_size, MADV_NOHUGEPAGE);
	return p;
}

static void case_map(struct case_pages *c, unsigned long pairs, bool triple)
{
	unsigned long g;
	int j;

	c->groups = pairs + triple;
	c->triple = triple;
	c->first = map_area(c->groups);
	c->second = map_area(c->groups * 2);
	c->old = calloc(c->groups * 3, sizeof(*c->old));
	if (!c->old)
		ksft_exit_fail_msg("calloc\n");
	for (g = 0; g < c->groups; g++)
		for (j = 0; j < (int)group_size(c, g); j++) {
			fill(page_at(c, g, j), tag_of(c, g));
			c->old[g * 3 + j] = pfn_of(page_at(c, g, j));
		}
	if (madvise(c->first, c->groups * page_size, MADV_MERGEABLE) ||
	    madvise(c->second, c->groups * 2 * page_size, MADV_MERGEABLE))
		ksft_exit_fail_msg("MADV_MERGEABLE: %s\n", strerror(errno));
}

static void case_unmap(struct case_pages *c)
{
	if (c->first)
		munmap(c->first, c->groups * page_size);
	if (c->second)
		munmap(c->second, c->groups * 2 * page_size);
	free(c->old);
	memset(c, 0, sizeof(*c));
}

/* Whether the pages of group @g all map one KSM page; its pfn in *@kpfn. */
static bool group_merged(const struct case_pages *c, unsigned long g,
			 uint64_t *kpfn)
{
	uint64_t pfn = pfn_of(page_at(c, g, 0));
	int j;

	for (j = 1; j < (int)group_size(c, g); j++)
		if (pfn_of(page_at(c, g, j)) != pfn)
			return false;
	if (kpfn)
		*kpfn = pfn;
	return pfn_is_ksm(pfn);
}

static unsigned long groups_merged(const struct case_pages *c)
{
	unsigned long g, n = 0;

	for (g = 0; g < c->groups; g++)
		n += group_merged(c, g, NULL);
	return n;
}

static bool wait_merged(const struct case_pages *c, const char *what)
{
	struct scan_wait w;
	bool all;

	wait_start(&w, what);
	while (!(all = groups_merged(c) == c->groups) && wait_more(&w))
		;
	scan_wait_note(&w, what);
	return all;
}

/*
 * Checks where each group's KSM page is: with @fresh, in none of its
 * candidates' frames; else in one of them. And the data, the KSM flag and
 * the counters' growth from @shared0/@sharing0.
 */
static bool check_placement(const struct case_pages *c, bool fresh,
			    unsigned long shared0, unsigned long sharing0)
{
	unsigned long g, pages = 0, in_old = 0, fresh_frames = 0;
	unsigned long shared, sharing;
	bool ok = true;
	int j;

	for (g = 0; g < c->groups; g++) {
		unsigned long n = group_size(c, g);
		uint64_t kpfn = 0;
		bool old = false;

		pages += n;
		expect(&ok, group_merged(c, g, &kpfn),
		       "group %lu not merged into one KSM page\n", g);
		for (j = 0; j < (int)n; j++) {
			old |= kpfn == c->old[g * 3 + j];
			expect(&ok, holds(page_at(c, g, j), tag_of(c, g)),
			       "group %lu page %d: data changed\n", g, j);
		}
		in_old += old;
		fresh_frames += !old;
		if (fresh)
			expect(&ok, !old,
			       "group %lu: KSM page %#llx is a candidate's old frame\n",
			       g, (unsigned long long)kpfn);
		else
			expect(&ok, old,
			       "group %lu: KSM page %#llx is none of its candidates' frames\n",
			       g, (unsigned long long)kpfn);
	}
	shared = ksm_ul("pages_shared");
	sharing = ksm_ul("pages_sharing");
	expect(&ok, shared - shared0 == c->groups,
	       "pages_shared %lu, want %lu\n", shared, shared0 + c->groups);
	expect(&ok, sharing - sharing0 == pages - c->groups,
	       "pages_sharing %lu, want %lu\n", sharing,
	       sharing0 + pages - c->groups);
	ksft_print_msg("%lu groups: %lu KSM pages in a candidate's frame, %lu in another frame\n",
		       c->groups, in_old, fresh_frames);
	return ok;
}

/* ---- set-up ---- */

static bool ksm_setup(const char *fresh)
{
	return set_attr("run", "2") &&
	       (!knob || set_attr(KNOB, fresh)) &&
	       set_attr("use_zero_pages", "0") &&
	       set_attr("advisor_mode", "none") &&
	       set_attr("smart_scan", "0") &&
	       set_attr("pages_to_scan", "10000") &&
	       set_attr("sleep_millisecs", "10") &&
	       set_attr("run", "1");
}

/* ---- tests ---- */

/* 1: the file: Rust only, 0644, default 0, kstrtobool; absent on C. */
static void test_knob(void)
{
	char path[128], val[16];
	struct stat st;
	bool ok = true;

	snprintf(path, sizeof(path), KSM_DIR "/" KNOB);
	if (!rust) {
		ok = stat(path, &st) && errno == ENOENT;
		ksft_test_result(ok, "KSM=c has no " KNOB " (mm/ksm.c keeps a candidate's frame)\n");
		return;
	}
	if (stat(path, &st)) {
		ksft_test_result_fail(KNOB ": missing on ksm_rs: %s\n", strerror(errno));
		return;
	}
	expect(&ok, (st.st_mode & 0777) == 0644, "mode %o\n", st.st_mode & 0777);
	expect(&ok, sysfs_read(KNOB, val, sizeof(val)) && !strcmp(val, "0"),
	       "reads \"%s\" at boot, want 0\n", val);
	expect(&ok, set_attr(KNOB, "y") && sysfs_read(KNOB, val, sizeof(val)) &&
		    !strcmp(val, "1"), "\"y\" reads back as \"%s\"\n", val);
	expect(&ok, set_attr(KNOB, "n") && sysfs_read(KNOB, val, sizeof(val)) &&
		    !strcmp(val, "0"), "\"n\" reads back as \"%s\"\n", val);
	expect(&ok, !sysfs_write(KNOB, "2") && errno == EINVAL,
	       "\"2\" not refused with EINVAL\n");
	expect(&ok, set_attr(KNOB, "1\n") && sysfs_read(KNOB, val, sizeof(val)) &&
		    !strcmp(val, "1"), "\"1\\n\" reads back as \"%s\"\n", val);
	expect(&ok, set_attr(KNOB, "0"), "cannot write 0\n");
	ksft_test_result(ok, KNOB ": mode 0644, 0 at boot, kstrtobool, EINVAL otherwise\n");
}

/* 2: merge_fresh_frame=0: KSM pages in place, as mm/ksm.c. */
static void test_in_place(void)
{
	struct case_pages c = { };
	unsigned long shared0, sharing0;
	bool ok;

	if (!ksm_setup("0")) {
		ksft_test_result_fail(KNOB "=0: setup\n");
		return;
	}
	shared0 = ksm_ul("pages_shared");
	sharing0 = ksm_ul("pages_sharing");
	case_map(&c, NR_SMALL, false);
	ok = wait_merged(&c, "merge (test 2)");
	ok &= check_placement(&c, false, shared0, sharing0);
	case_unmap(&c);
	ksft_test_result(ok, "%s%d pairs: each KSM page is in one of its candidates' frames\n",
			 rust ? KNOB "=0: " : "KSM=c: ", NR_SMALL);
}

/* The region of tests 3-5. */
static struct case_pages small;
static bool small_merged;

/* 3: merge_fresh_frame=1: KSM pages in fresh frames. */
static void test_fresh(void)
{
	unsigned long shared0, sharing0;
	bool ok;

	if (!ksm_setup("1")) {
		ksft_test_result_fail(KNOB "=1: setup\n");
		return;
	}
	shared0 = ksm_ul("pages_shared");
	sharing0 = ksm_ul("pages_sharing");
	case_map(&small, NR_SMALL, false);
	ok = small_merged = wait_merged(&small, "merge (test 3)");
	ok &= check_placement(&small, rust, shared0, sharing0);
	if (rust)
		ksft_test_result(ok, KNOB "=1: %d pairs: each KSM page is in a frame of neither candidate, KPF_KSM, data and counters right\n",
				 NR_SMALL);
	else
		ksft_test_result(ok, "KSM=c (no " KNOB "): %d pairs: each KSM page is in one of its candidates' frames\n",
				 NR_SMALL);
}

/* 4: copy-on-write of a page merged into a fresh frame. */
static void test_cow(void)
{
	unsigned long sharing0 = ksm_ul("pages_sharing");
	uint64_t kpfn = 0, pfn;
	bool ok = small_merged;
	char *p, *q;

	expect(&ok, small_merged, "the pairs did not merge\n");
	if (ok) {
		p = page_at(&small, 0, 0);
		q = page_at(&small, 0, 1);
		group_merged(&small, 0, &kpfn);
		fill(p, TAG_WRITE);
		pfn = pfn_of(p);
		expect(&ok, holds(p, TAG_WRITE), "the written page does not hold the write\n");
		expect(&ok, holds(q, tag_of(&small, 0)), "the other page changed\n");
		expect(&ok, pfn && pfn != kpfn && !pfn_is_ksm(pfn),
		       "the written page is at %#llx (KSM page %#llx)\n",
		       (unsigned long long)pfn, (unsigned long long)kpfn);
		expect(&ok, pfn_of(q) == kpfn && pfn_is_ksm(kpfn),
		       "the other page no longer maps the KSM page\n");
		expect(&ok, wait_counters(ksm_ul("pages_shared"), sharing0 - 1,
					  "after a write"),
		       "pages_sharing %lu, want %lu\n", ksm_ul("pages_sharing"),
		       sharing0 - 1);
		/* Put the data back: the pair merges again (checked by test 5). */
		fill(p, tag_of(&small, 0));
	}
	ksft_test_result(ok, "a write to a merged page copies it; its twin still maps the KSM page\n");
}

/* 5: MADV_UNMERGEABLE of the region of test 3. */
static void test_unmergeable(void)
{
	unsigned long g, ksm_left = 0, bad = 0, n;
	struct case_pages *c = &small;
	bool ok = small_merged;
	int j;

	expect(&ok, small_merged, "the pairs did not merge\n");
	if (ok) {
		/* The pair rewritten by test 4 merges again. */
		ok = wait_merged(c, "merge again after the write");
		expect(&ok, ok, "the rewritten pair did not merge again\n");
	}
	if (madvise(c->first, c->groups * page_size, MADV_UNMERGEABLE) ||
	    madvise(c->second, c->groups * 2 * page_size, MADV_UNMERGEABLE)) {
		expect(&ok, false, "MADV_UNMERGEABLE: %s\n", strerror(errno));
	}
	for (g = 0; g < c->groups; g++) {
		n = group_size(c, g);
		for (j = 0; j < (int)n; j++) {
			ksm_left += pfn_is_ksm(pfn_of(page_at(c, g, j)));
			bad += !holds(page_at(c, g, j), tag_of(c, g));
		}
	}
	expect(&ok, !ksm_left, "%lu pages still map a KSM page\n", ksm_left);
	expect(&ok, !bad, "%lu pages lost their data\n", bad);
	expect(&ok, wait_counters(0, 0, "counters after MADV_UNMERGEABLE"),
	       "pages_shared %lu pages_sharing %lu, want 0 0\n",
	       ksm_ul("pages_shared"), ksm_ul("pages_sharing"));
	case_unmap(c);
	ksft_test_result(ok, "MADV_UNMERGEABLE: every page unshared, data intact, counters 0\n");
}

static struct case_pages large;
static bool large_merged;

/* 6: 64 pairs and a triple (the third page goes through the stable tree). */
static void test_large(void)
{
	unsigned long shared0, sharing0;
	bool ok;

	if (!ksm_setup("1")) {
		ksft_test_result_fail("large: setup\n");
		return;
	}
	shared0 = ksm_ul("pages_shared");
	sharing0 = ksm_ul("pages_sharing");
	case_map(&large, NR_LARGE, true);
	ok = large_merged = wait_merged(&large, "merge 64 pairs and a triple");
	ok &= check_placement(&large, rust, shared0, sharing0);
	ksft_test_result(ok, "%s%d pairs and a triple: %s\n",
			 rust ? KNOB "=1: " : "KSM=c: ", NR_LARGE,
			 rust ? "no KSM page in a candidate's frame" :
				"every KSM page in a candidate's frame");
}

/* 7: run=2 unmerges the large case. */
static void test_run2(void)
{
	unsigned long g, ksm_left = 0, bad = 0;
	struct case_pages *c = &large;
	bool ok = large_merged;
	int j;

	expect(&ok, large_merged, "the large case did not merge\n");
	expect(&ok, sysfs_write("run", "2"), "run=2: %s\n", strerror(errno));
	for (g = 0; g < c->groups; g++)
		for (j = 0; j < (int)group_size(c, g); j++) {
			ksm_left += pfn_is_ksm(pfn_of(page_at(c, g, j)));
			bad += !holds(page_at(c, g, j), tag_of(c, g));
		}
	expect(&ok, !ksm_left, "%lu pages still map a KSM page\n", ksm_left);
	expect(&ok, !bad, "%lu pages lost their data\n", bad);
	expect(&ok, ksm_ul("pages_shared") == 0 && ksm_ul("pages_sharing") == 0,
	       "pages_shared %lu pages_sharing %lu, want 0 0\n",
	       ksm_ul("pages_shared"), ksm_ul("pages_sharing"));
	case_unmap(c);
	ksft_test_result(ok, "run=2: every page unshared, data intact, counters 0\n");
}

/* 8: merge + munmap cycles leave no KSM frame behind. */
static void test_no_leak(long base)
{
	long left = -1;
	bool ok = base >= 0;
	struct scan_wait w;
	int cycle;

	expect(&ok, base >= 0, "cannot read /proc/kpageflags\n");
	for (cycle = 0; ok && cycle < NR_CYCLES; cycle++) {
		struct case_pages c = { };

		if (!ksm_setup("1")) {
			expect(&ok, false, "setup\n");
			break;
		}
		case_map(&c, 32, cycle == NR_CYCLES - 1);
		expect(&ok, wait_merged(&c, "leak check: merge"),
		       "cycle %d: %lu of %lu groups merged\n", cycle,
		       groups_merged(&c), c.groups);
		/* Half unmerged first, the rest unmapped while merged. */
		if (cycle == 1)
			madvise(c.second, c.groups * 2 * page_size, MADV_UNMERGEABLE);
		case_unmap(&c);
	}
	/*
	 * The counters go at the next scans; the frames when the LRU batches
	 * that hold them drain (ksmd drains them at every full scan).
	 */
	expect(&ok, wait_counters(0, 0, "leak check: counters"),
	       "pages_shared %lu pages_sharing %lu after munmap, want 0 0\n",
	       ksm_ul("pages_shared"), ksm_ul("pages_sharing"));
	wait_start(&w, "leak check: frames");
	while ((left = ksm_frames()) != base && wait_more(&w))
		usleep(100000);
	scan_wait_note(&w, "leak check: frames");
	expect(&ok, left == base, "%ld KSM frames, %ld before\n", left, base);
	ksft_test_result(ok, "%d merge + munmap cycles: no KSM frame left (%ld before, %ld after)\n",
			 NR_CYCLES, base, left);
}

static void test_restore(void)
{
	bool ok = saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);

	ksft_test_result(ok, "restore: run=2, then every changed attribute of " KSM_DIR " put back\n");
}

int main(void)
{
	const char *ksm = getenv("KSM_RS_KSM");
	long base;

	page_size = getpagesize();
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	if (access(KSM_DIR "/run", W_OK))
		ksft_exit_skip("no writable " KSM_DIR "/run\n");
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY);
	if (pagemap_fd < 0 || kpageflags_fd < 0 || geteuid())
		ksft_exit_skip("needs root, /proc/self/pagemap and /proc/kpageflags\n");
	/* mm/ksm.c only when told so: a ksm_rs without the file fails. */
	rust = !ksm || strcmp(ksm, "c");
	knob = !access(KSM_DIR "/" KNOB, F_OK);
	ksft_set_plan(NR_TESTS);
	ksft_print_msg("implementation %s, %s " KNOB "\n", ksm ? ksm : "?",
		       knob ? "with" : "without");
	atexit(restore_at_exit);
	signal(SIGALRM, on_alarm);
	alarm(900);

	/* No KSM pages of ours yet: what other users have. */
	if (!set_attr("run", "2"))
		ksft_exit_fail_msg("run=2\n");
	base = ksm_frames();

	test_knob();
	test_in_place();
	test_fresh();
	test_cow();
	test_unmergeable();
	test_large();
	test_run2();
	test_no_leak(base);
	test_restore();

	alarm(0);
	ksft_finished();
}
