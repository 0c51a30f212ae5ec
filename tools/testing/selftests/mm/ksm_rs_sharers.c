// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_sharers: one KSM page with very many sharers. With max_page_sharing
 * raised to 1000000, three child processes each fill a private anonymous
 * MADV_MERGEABLE area of 128 MiB (MADV_NOHUGEPAGE: small pages only) with one
 * non-zero byte pattern, the same in every page, and the parent has one more
 * page of that pattern that it never changes. With ksmd unthrottled
 * (pages_to_scan 1000000, sleep_millisecs 0, smart_scan 0) every one of the
 * 3 * 32768 + 1 pages ends up mapping one KSM page. Then each child in turn
 * rewrites every page of its area with data of its own (one COW fault per
 * page breaks the sharing page by page), and ksmd, which has to drop 98304
 * mappings from that one page, goes over them twice.
 *
 * The counters are the ones mm/ksm.c shows (stable_tree_append: the first
 * rmap_item of a stable node counts in pages_shared, every other one in
 * pages_sharing; remove_rmap_item_from_tree; cmp_and_merge_page: a page that
 * changed since the last scan only gets its checksum updated, and goes to the
 * unstable tree at the next scan if it did not change again):
 *
 *  - merged: pages_shared 1, pages_sharing 3 * 32768 + 1 - 1 = 98304,
 *    pages_unshared 0, pages_volatile 0, no stable_node chain or dup;
 *    ksm_merging_pages (/proc/<pid>/ksm_stat and /proc/<pid>/ksm_merging_pages)
 *    32768 in each child, 1 in the parent; ksm_rmap_items the same;
 *  - right after the rewrite, ksmd stopped: the counters do not change (the
 *    mappings are dropped by ksmd, not by the COW fault);
 *  - after two full scans (ksmd was stopped at the end of a full scan before
 *    the rewrite: a batch of pages_to_scan >= the pages scanned ends with its
 *    full scan): pages_shared 1 (the parent's page), pages_sharing 0,
 *    pages_unshared 98304 (the first scan drops each rewritten page from the
 *    stable tree and takes its checksum, the second puts it in the unstable
 *    tree), pages_volatile 0; ksm_merging_pages 0 in each child, 1 in the
 *    parent;
 *  - once the children exited and ksmd went over their slots: pages_shared 1,
 *    pages_sharing 0, pages_unshared 0;
 *  - MADV_UNMERGEABLE of the parent's page: every counter 0 once ksmd went
 *    over the parent; after run=2 too.
 *
 * Every byte of every page is checked before the rewrite (the pattern, in
 * every process), after each child's rewrite (in every process: its data or
 * the pattern) and after the two scans; and, from /proc/<pid>/pagemap and
 * /proc/kpageflags, that every page maps the one KSM page while merged, that
 * no rewritten page does, and that the parent's page still does.
 *
 * The seconds of the merge and of the two full scans after the rewrite (and
 * ksmd's CPU time for them) are printed as "#" lines, for information only.
 * Every wait has a timeout (KSM_RS_SHARERS_TIMEOUT seconds, default 300, four
 * times that with KSM_RS_FLAVOUR=debug; at most 60 s once one wait timed
 * out), and an alarm ends the test, with the counters printed and the
 * tunables put back, after seven times that. Every attribute of
 * /sys/kernel/mm/ksm that is changed is put back, after run=2 (which
 * max_page_sharing and merge_across_nodes need: they can only change while no
 * KSM page exists, as Documentation/admin-guide/mm/ksm.rst says).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest.h"
#include "vm_util.h"
#include "ksm_rs_util.h"

#define NR_TESTS		9

#define NR_CHILDREN		3
/* The children, then the parent. */
#define NR_PROCS		(NR_CHILDREN + 1)
#define PARENT			NR_CHILDREN
#define AREA_SIZE		(128UL << 20)
#define MAX_PAGE_SHARING	"1000000"
/* A batch covers a whole full scan: ksmd stops between two full scans. */
#define MERGE_PAGES_TO_SCAN	"1000000"
/* After the rewrite, batches of 10000 pages (as make bench's key). */
#define SCAN_PAGES_TO_SCAN	"10000"
/* Counters unchanged over this many full scans: settled. */
#define STALL_SCANS		4
/* Once a wait timed out, the later ones are this short at most. */
#define AFTER_TIMEOUT_MS	60000UL

/* /proc/kpageflags (include/uapi/linux/kernel-page-flags.h). */
#define KPF_BIT_KSM		(1ULL << 21)

/* Word w of page i of child id, once rewritten: distinct from any other. */
#define OWN_TAG			0x5300000000000000ULL

static unsigned long page_size, npages;
static pid_t main_pid;
static unsigned long wait_ms;
static bool timed_out;
static const char *volatile stage = "start";
static unsigned char *pattern;	/* one page, malloc'd: never mergeable */
static char *keep;		/* the parent's page of the pattern */
static uint64_t kpfn;		/* the KSM page, once merged */

struct child {
	pid_t pid;
	int cmd;		/* the parent's ends of the pipes */
	int reply;
	uintptr_t addr;		/* of its area, in the child */
	bool rewritten;
	bool alive;
};

static struct child children[NR_CHILDREN];

/* What a child answers a command with. */
struct reply {
	char cmd;
	int err;		/* errno of a failed mmap or madvise */
	uintptr_t addr;
	unsigned long bad;	/* pages that do not read as they should */
	unsigned long first_bad, first_off;
	unsigned int got, want;	/* the first wrong byte of the first bad page */
	unsigned long ms;	/* of the rewrite */
};

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

static void kill_children(void)
{
	int i;

	for (i = 0; i < NR_CHILDREN; i++)
		if (children[i].alive && children[i].pid > 0)
			kill(children[i].pid, SIGKILL);
}

static void restore_at_exit(void)
{
	int i;

	if (getpid() != main_pid)
		return;
	kill_children();
	for (i = 0; i < NR_CHILDREN; i++)
		if (children[i].alive && children[i].pid > 0)
			waitpid(children[i].pid, NULL, 0);
	saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
}

static unsigned long wait_limit_ms(void)
{
	return timed_out && wait_ms > AFTER_TIMEOUT_MS ? AFTER_TIMEOUT_MS :
							 wait_ms;
}

static void on_alarm(int sig)
{
	static const char *const attrs[] = {
		"pages_shared", "pages_sharing", "pages_unshared",
		"pages_volatile", "full_scans",
	};
	size_t i;

	(void)sig;
	watchdog_report(attrs, ARRAY_SIZE(attrs), stage);
	for (i = 0; i < NR_CHILDREN; i++)
		if (children[i].alive && children[i].pid > 0)
			kill(children[i].pid, SIGKILL);
	watchdog_restore(saved_attrs, ARRAY_SIZE(saved_attrs));
	_exit(KSFT_FAIL);
}

/* ---- the data ---- */

/* The pattern: no zero byte, not one byte repeated. */
static void gen_pattern(unsigned char *page)
{
	unsigned long k;

	for (k = 0; k < page_size; k++)
		page[k] = (k * 131 + 0x5b) % 251 + 1;
}

static uint64_t own_word(int id, unsigned long page, unsigned long w)
{
	return OWN_TAG | (uint64_t)(id + 1) << 48 | (uint64_t)page << 16 | w;
}

/* The pages of @area (@rewritten by child @id or not) that read wrong. */
static void check_area(const char *area, int id, bool rewritten,
		       struct reply *r)
{
	unsigned long words = page_size / sizeof(uint64_t), i, w, k;

	r->bad = 0;
	for (i = 0; i < npages; i++) {
		const char *p = area + i * page_size;
		bool good = true;

		if (!rewritten) {
			good = !memcmp(p, pattern, page_size);
		} else {
			const uint64_t *q = (const uint64_t *)p;

			for (w = 0; w < words && good; w++)
				good = q[w] == own_word(id, i, w);
		}
		if (good || r->bad++)
			continue;
		r->first_bad = i;
		for (k = 0; k < page_size; k++) {
			unsigned char want = pattern[k];

			if (rewritten) {
				uint64_t v = own_word(id, i, k / 8);

				memcpy(&want, (char *)&v + k % 8, 1);
			}
			if ((unsigned char)p[k] != want) {
				r->first_off = k;
				r->got = (unsigned char)p[k];
				r->want = want;
				break;
			}
		}
	}
}

/* ---- the children ---- */

static void child_reply(int fd, struct reply *r)
{
	if (write(fd, r, sizeof(*r)) != sizeof(*r))
		_exit(2);
}

/*
 * Child @id: maps and fills its area, answers 'r' (ready: the address) and
 * then each command: 'v' checks every page, 'w' rewrites every page with
 * data of its own and checks them, 'q' (or the parent gone) exits.
 */
static __noreturn void child_main(int id, int cmd, int reply)
{
	struct reply r = { .cmd = 'r' };
	bool rewritten = false;
	unsigned long i, w, words = page_size / sizeof(uint64_t), start;
	char *area;
	char c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != main_pid)
		_exit(1);
	area = mmap(NULL, AREA_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		r.err = errno;
		child_reply(reply, &r);
		_exit(1);
	}
	madvise(area, AREA_SIZE, MADV_NOHUGEPAGE);
	for (i = 0; i < npages; i++)
		memcpy(area + i * page_size, pattern, page_size);
	if (madvise(area, AREA_SIZE, MADV_MERGEABLE))
		r.err = errno;
	r.addr = (uintptr_t)area;
	child_reply(reply, &r);
	if (r.err)
		_exit(1);
	while (read(cmd, &c, 1) == 1) {
		memset(&r, 0, sizeof(r));
		r.cmd = c;
		switch (c) {
		case 'v':
			check_area(area, id, rewritten, &r);
			break;
		case 'w':
			start = now_ms();
			for (i = 0; i < npages; i++) {
				uint64_t *q = (uint64_t *)(area + i * page_size);

				for (w = 0; w < words; w++)
					q[w] = own_word(id, i, w);
			}
			r.ms = now_ms() - start;
			rewritten = true;
			check_area(area, id, rewritten, &r);
			break;
		default:
			_exit(0);
		}
		child_reply(reply, &r);
	}
	_exit(0);
}

/* Reads a reply of child @i, waiting the wait timeout at most. */
static bool child_read(bool *ok, int i, struct reply *r, const char *when)
{
	unsigned long start = now_ms(), limit = wait_limit_ms();
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(*r)) {
		struct pollfd pfd = { .fd = children[i].reply, .events = POLLIN };
		unsigned long waited = now_ms() - start;
		int rc;

		if (waited >= limit) {
			timed_out = true;
			expect(ok, false, "%s: child %d did not answer in %lu ms\n",
			       when, i, waited);
			return false;
		}
		rc = poll(&pfd, 1, limit - waited);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			continue;
		n = read(children[i].reply, (char *)r + got, sizeof(*r) - got);
		if (n <= 0) {
			expect(ok, false, "%s: child %d is gone (read: %s)\n",
			       when, i, n ? strerror(errno) : "end of file");
			children[i].alive = false;
			return false;
		}
		got += n;
	}
	return true;
}

/* Sends @cmd to child @i and reads its answer. */
static bool child_ask(bool *ok, int i, char cmd, struct reply *r,
		      const char *when)
{
	if (!children[i].alive) {
		expect(ok, false, "%s: child %d is not there\n", when, i);
		return false;
	}
	if (write(children[i].cmd, &cmd, 1) != 1) {
		expect(ok, false, "%s: writing to child %d: %s\n", when, i,
		       strerror(errno));
		return false;
	}
	return child_read(ok, i, r, when) && r->cmd == cmd;
}

/* Every page of child @i reads what it should: the pattern or its data. */
static void expect_child_intact(bool *ok, int i, const char *when)
{
	struct reply r;

	stage = when;
	if (!child_ask(ok, i, 'v', &r, when))
		return;
	if (r.bad)
		printf("#    %s: child %d: page %lu: byte %lu reads %#x, expected %#x (%s)\n",
		       when, i, r.first_bad, r.first_off, r.got, r.want,
		       children[i].rewritten ? "its own data" : "the pattern");
	expect(ok, !r.bad, "%s: child %d: %lu of %lu pages do not read %s\n",
	       when, i, r.bad, npages,
	       children[i].rewritten ? "its own data" : "the pattern");
}

static void expect_keep_intact(bool *ok, const char *when)
{
	expect(ok, !memcmp(keep, pattern, page_size),
	       "%s: the parent's page does not read the pattern\n", when);
}

/* Every page of every process reads what it should. */
static void expect_all_intact(bool *ok, const char *when)
{
	int i;

	for (i = 0; i < NR_CHILDREN; i++)
		expect_child_intact(ok, i, when);
	expect_keep_intact(ok, when);
}

/* ---- KSM pages: /proc/<pid>/pagemap, /proc/kpageflags ---- */

static int kpageflags_fd = -1;

/* The PFNs of the @n pages at @addr in @pid (0: not present). */
static bool read_pfns(pid_t pid, uintptr_t addr, unsigned long n,
		      uint64_t *pfns)
{
	char path[64];
	unsigned long i;
	ssize_t len = n * sizeof(*pfns);
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	if (pread(fd, pfns, len, addr / page_size * sizeof(*pfns)) != len) {
		close(fd);
		return false;
	}
	close(fd);
	for (i = 0; i < n; i++)
		pfns[i] = pfns[i] & (1ULL << 63) ? pfns[i] & ((1ULL << 55) - 1)
						 : 0;
	return true;
}

static bool pfn_is_ksm(uint64_t pfn)
{
	uint64_t flags;

	return pfn && pread(kpageflags_fd, &flags, sizeof(flags),
			    pfn * sizeof(flags)) == sizeof(flags) &&
	       (flags & KPF_BIT_KSM);
}

static bool have_kpageflags(void)
{
	static int have = -1;
	uint64_t pfn;

	if (have >= 0)
		return have;
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY);
	have = kpageflags_fd >= 0 &&
	       read_pfns(main_pid, (uintptr_t)pattern & ~(page_size - 1), 1,
			 &pfn) && pfn;
	if (!have)
		ksft_print_msg("no PFNs from /proc/<pid>/pagemap or no /proc/kpageflags: the KSM page checks are left out\n");
	return have;
}

/* The parent's page maps the KSM page @kpfn (@merged) or no KSM page. */
static void expect_keep_ksm(bool *ok, bool merged, const char *when)
{
	uint64_t pfn;

	if (!have_kpageflags())
		return;
	if (!read_pfns(main_pid, (uintptr_t)keep, 1, &pfn) || !pfn) {
		expect(ok, false, "%s: the parent's page is not present\n",
		       when);
		return;
	}
	if (merged)
		expect(ok, pfn == kpfn && pfn_is_ksm(pfn),
		       "%s: the parent's page maps pfn %#llx (%s), expected the KSM page %#llx\n",
		       when, (unsigned long long)pfn,
		       pfn_is_ksm(pfn) ? "KSM" : "not KSM",
		       (unsigned long long)kpfn);
	else
		expect(ok, !pfn_is_ksm(pfn),
		       "%s: the parent's page maps the KSM page %#llx\n", when,
		       (unsigned long long)pfn);
}

/*
 * Every page of child @i maps the KSM page @kpfn (@merged) or, each, a page
 * that is not KSM.
 */
static void expect_child_ksm(bool *ok, int i, bool merged, const char *when)
{
	uint64_t *pfns = calloc(npages, sizeof(*pfns));
	unsigned long p, absent = 0, wrong = 0, first = ULONG_MAX;

	if (!pfns)
		ksft_exit_fail_msg("no memory\n");
	if (!have_kpageflags())
		goto out;
	if (!read_pfns(children[i].pid, children[i].addr, npages, pfns)) {
		expect(ok, false, "%s: /proc/%d/pagemap cannot be read: %s\n",
		       when, (int)children[i].pid, strerror(errno));
		goto out;
	}
	for (p = 0; p < npages; p++) {
		bool good;

		if (!pfns[p]) {
			absent++;
			continue;
		}
		if (merged)
			good = pfns[p] == kpfn;
		else
			good = pfns[p] != kpfn && !pfn_is_ksm(pfns[p]);
		if (!good && !wrong++)
			first = p;
	}
	if (wrong)
		printf("#    %s: child %d: page %lu maps pfn %#llx (%s)\n", when,
		       i, first, (unsigned long long)pfns[first],
		       pfn_is_ksm(pfns[first]) ? "KSM" : "not KSM");
	expect(ok, !absent, "%s: child %d: %lu pages not present\n", when, i,
	       absent);
	expect(ok, !wrong, "%s: child %d: %lu of %lu pages %s\n", when, i,
	       wrong, npages,
	       merged ? "do not map the KSM page" : "map a KSM page");
out:
	free(pfns);
}

/* ---- counters ---- */

struct counts {
	unsigned long shared, sharing, unshared;
};

/* ksm_rmap_items and ksm_merging_pages of a process, and the other file. */
struct proc_stat {
	long items, merging, merging_file;
};

static void counts_read(struct counts *c)
{
	c->shared = ksm_ul("pages_shared");
	c->sharing = ksm_ul("pages_sharing");
	c->unshared = ksm_ul("pages_unshared");
}

static bool counts_eq(const struct counts *a, const struct counts *b)
{
	return a->shared == b->shared && a->sharing == b->sharing &&
	       a->unshared == b->unshared;
}

static pid_t proc_pid(int p)
{
	if (p == PARENT)
		return main_pid;
	return children[p].alive ? children[p].pid : 0;
}

static const char *proc_name(int p)
{
	static const char *const names[NR_PROCS] = {
		"child 0", "child 1", "child 2", "parent",
	};

	return names[p];
}

/* /proc/<pid>/ksm_stat and /proc/<pid>/ksm_merging_pages: LONG_MIN if not. */
static void proc_stat_read(int p, struct proc_stat *st)
{
	char path[64], line[256];
	pid_t pid = proc_pid(p);
	FILE *f;

	st->items = st->merging = st->merging_file = LONG_MIN;
	if (!pid)
		return;
	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", (int)pid);
	f = fopen(path, "r");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "ksm_rmap_items %ld", &st->items) != 1)
				sscanf(line, "ksm_merging_pages %ld",
				       &st->merging);
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/ksm_merging_pages", (int)pid);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%ld", &st->merging_file) != 1)
			st->merging_file = LONG_MIN;
		fclose(f);
	}
}

/* Whether /proc/<pid>/ksm_merging_pages of every process is @merging[p]. */
static bool merging_read(const long *merging, long *got)
{
	struct proc_stat st;
	bool eq = true;
	int p;

	for (p = 0; p < NR_PROCS; p++) {
		got[p] = -1;
		if (merging[p] < 0)
			continue;
		proc_stat_read(p, &st);
		got[p] = st.merging_file;
		eq &= got[p] == merging[p];
	}
	return eq;
}

static void merging_str(char *buf, size_t size, const long *m)
{
	int p, n = 0;

	buf[0] = '\0';
	for (p = 0; p < NR_PROCS && n >= 0 && (size_t)n < size; p++)
		n += snprintf(buf + n, size - n, "%s%s %ld", p ? ", " : "",
			      proc_name(p), m[p]);
}

/* How the last wait ended, and after how long. */
enum wait_end { WAIT_SETTLED, WAIT_SETTLED_ELSEWHERE, WAIT_TIMEOUT };
static enum wait_end last_wait_end;
static unsigned long last_wait_ms;

/*
 * Waits, ksmd running, until pages_shared, pages_sharing and pages_unshared
 * read @want after at least @min_scans full scans, and the
 * ksm_merging_pages of each process @merging (those >= 0). When nothing
 * changed over STALL_SCANS full scans, reads them once with ksmd stopped:
 * they settled, as expected or not. Gives up after the timeout.
 */
static bool wait_counts(bool *ok, const char *when, const struct counts *want,
			const long *merging, int min_scans)
{
	unsigned long start = now_ms(), limit = wait_limit_ms(), still = 0;
	long full0 = ksm_get_full_scans(), full, last_full = full0;
	struct counts cur, last = { ULONG_MAX, ULONG_MAX, ULONG_MAX };
	long got[NR_PROCS], last_got[NR_PROCS] = { 0 };
	char have[160], expected[160];
	bool eq;

	stage = when;
	for (;;) {
		full = ksm_get_full_scans();
		counts_read(&cur);
		eq = merging_read(merging, got) && counts_eq(&cur, want);
		if (eq && full >= full0 + min_scans) {
			last_wait_end = WAIT_SETTLED;
			break;
		}
		if (full != last_full) {
			still = counts_eq(&cur, &last) &&
					!memcmp(got, last_got, sizeof(got)) ?
				still + (full - last_full) : 0;
			last = cur;
			memcpy(last_got, got, sizeof(got));
			last_full = full;
		}
		if (still >= STALL_SCANS &&
		    full >= full0 + min_scans + STALL_SCANS) {
			/* run=0 waits for ksmd's batch to end. */
			expect(ok, sysfs_write("run", "0"), "%s: run=0: %s\n",
			       when, strerror(errno));
			counts_read(&cur);
			eq = merging_read(merging, got) &&
			     counts_eq(&cur, want);
			expect(ok, sysfs_write("run", "1"), "%s: run=1: %s\n",
			       when, strerror(errno));
			last_wait_end = eq ? WAIT_SETTLED :
					     WAIT_SETTLED_ELSEWHERE;
			break;
		}
		if (now_ms() - start >= limit) {
			timed_out = true;
			last_wait_end = WAIT_TIMEOUT;
			break;
		}
		usleep(50000);
	}
	last_wait_ms = now_ms() - start;
	if (last_wait_end == WAIT_SETTLED) {
		ksft_print_msg("%s: settled after full_scans %ld -> %ld, %lu ms\n",
			       when, full0, full, last_wait_ms);
		return true;
	}
	merging_str(have, sizeof(have), got);
	merging_str(expected, sizeof(expected), merging);
	expect(ok, false, "%s: %s after %lu ms (full_scans %ld -> %ld): pages_shared %lu pages_sharing %lu pages_unshared %lu, ksm_merging_pages %s; expected %lu %lu %lu, %s\n",
	       when, last_wait_end == WAIT_TIMEOUT ? "TIMEOUT" :
						    "settled elsewhere",
	       last_wait_ms, full0, ksm_get_full_scans(), cur.shared,
	       cur.sharing, cur.unshared, have, want->shared, want->sharing,
	       want->unshared, expected);
	return false;
}

/*
 * Waits until full_scans grew by @n: whether it did; the milliseconds waited
 * in @waited.
 */
static bool wait_full_scans(bool *ok, int n, const char *when,
			    unsigned long *waited_ms)
{
	unsigned long start = now_ms(), limit = wait_limit_ms(), waited;
	long full0 = ksm_get_full_scans(), full = full0;

	stage = when;
	for (;;) {
		full = ksm_get_full_scans();
		waited = now_ms() - start;
		if (full < 0 || full >= full0 + n || waited >= limit)
			break;
		usleep(20000);
	}
	*waited_ms = waited;
	if (full >= 0 && full >= full0 + n) {
		ksft_print_msg("%s: full_scans %ld -> %ld in %lu ms\n", when,
			       full0, full, waited);
		return true;
	}
	timed_out |= waited >= limit;
	expect(ok, false, "%s: %s: full_scans went from %ld to %ld in %lu ms, expected +%d\n",
	       when, waited >= limit ? "TIMEOUT" : "full_scans unreadable",
	       full0, full, waited, n);
	return false;
}

/*
 * With ksmd stopped (run=0: the write waits for its batch to end), the
 * counters must read @want, pages_volatile @volatile_pages, no chain or dup,
 * and each process ksm_merging_pages @merging[p] and ksm_rmap_items
 * @items[p] (those >= 0; /proc/<pid>/ksm_merging_pages as ksm_stat's). ksmd
 * runs again after, unless @stay_stopped.
 */
static void expect_counters(bool *ok, const char *when,
			    const struct counts *want, long volatile_pages,
			    const long *merging, const long *items,
			    bool stay_stopped)
{
	unsigned long vol, ch, du;
	struct proc_stat st;
	struct counts cur;
	int p;

	stage = when;
	expect(ok, set_attr("run", "0"), "%s: run=0: %s\n", when,
	       strerror(errno));
	counts_read(&cur);
	vol = ksm_ul("pages_volatile");
	ch = ksm_ul("stable_node_chains");
	du = ksm_ul("stable_node_dups");
	ksft_print_msg("%s: pages_shared %lu pages_sharing %lu pages_unshared %lu pages_volatile %lu stable_node_chains %lu stable_node_dups %lu\n",
		       when, cur.shared, cur.sharing, cur.unshared, vol, ch,
		       du);
	expect(ok, counts_eq(&cur, want),
	       "%s: pages_shared %lu pages_sharing %lu pages_unshared %lu, expected %lu %lu %lu\n",
	       when, cur.shared, cur.sharing, cur.unshared, want->shared,
	       want->sharing, want->unshared);
	expect(ok, volatile_pages < 0 || vol == (unsigned long)volatile_pages,
	       "%s: pages_volatile %lu, expected %ld\n", when, vol,
	       volatile_pages);
	expect(ok, !ch && !du,
	       "%s: stable_node_chains %lu stable_node_dups %lu, expected 0 0\n",
	       when, ch, du);
	for (p = 0; p < NR_PROCS; p++) {
		if (merging[p] < 0 && items[p] < 0)
			continue;
		proc_stat_read(p, &st);
		ksft_print_msg("%s: %s: ksm_stat ksm_rmap_items %ld ksm_merging_pages %ld, ksm_merging_pages %ld\n",
			       when, proc_name(p), st.items, st.merging,
			       st.merging_file);
		expect(ok, merging[p] < 0 || st.merging == merging[p],
		       "%s: %s: ksm_stat ksm_merging_pages %ld, expected %ld\n",
		       when, proc_name(p), st.merging, merging[p]);
		expect(ok, st.merging_file == st.merging,
		       "%s: %s: /proc/<pid>/ksm_merging_pages %ld, ksm_stat says %ld\n",
		       when, proc_name(p), st.merging_file, st.merging);
		expect(ok, items[p] < 0 || st.items == items[p],
		       "%s: %s: ksm_stat ksm_rmap_items %ld, expected %ld\n",
		       when, proc_name(p), st.items, items[p]);
	}
	if (!stay_stopped)
		expect(ok, set_attr("run", "1"), "%s: run=1: %s\n", when,
		       strerror(errno));
}

/* run=2 leaves nothing in either tree: every counter reads 0. */
static void expect_all_gone(bool *ok, const char *when)
{
	static const char *const attrs[] = {
		"pages_shared", "pages_sharing", "pages_unshared",
		"pages_volatile", "stable_node_chains", "stable_node_dups",
		"ksm_zero_pages",
	};
	unsigned long v;
	size_t i;

	stage = when;
	expect(ok, set_attr("run", "2"), "%s: run=2: %s\n", when,
	       strerror(errno));
	for (i = 0; i < ARRAY_SIZE(attrs); i++) {
		v = ksm_ul(attrs[i]);
		expect(ok, v == 0, "%s: %s is %lu after run=2, expected 0\n",
		       when, attrs[i], v);
	}
}

/* ksmd's CPU seconds (utime + stime), -1 if it is not found. */
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
			if (fgets(comm, sizeof(comm), f) &&
			    !strcmp(comm, "ksmd\n"))
				snprintf(path, sizeof(path), "/proc/%s/stat",
					 d->d_name);
			fclose(f);
		}
		if (dir)
			closedir(dir);
		if (!path[0])
			return -1;
	}
	f = fopen(path, "r");
	if (!f)
		return -1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	p = p ? strrchr(buf, ')') : NULL;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

/* ---- the tests ---- */

static struct counts merged_counts(void)
{
	struct counts c = { 1, NR_CHILDREN * npages + 1 - 1, 0 };

	return c;
}

/* 1: the tunables, the children and their areas, the parent's page. */
static void test_setup(void)
{
	char mode[64];
	struct reply r;
	bool ok = true;
	int i, cmd[2], reply[2];

	stage = "set-up";
	/* max_page_sharing and merge_across_nodes: no KSM page may exist. */
	ok = set_attr("run", "2");
	/* pages_to_scan cannot be written under the scan-time advisor. */
	if (ok && sysfs_read("advisor_mode", mode, sizeof(mode))) {
		selected_word(mode);
		if (strcmp(mode, "none"))
			ok = set_attr("advisor_mode", "none");
	}
	ok = ok && set_attr("merge_across_nodes", "1") &&
	     set_attr("max_page_sharing", MAX_PAGE_SHARING) &&
	     set_attr("use_zero_pages", "0") && set_attr("smart_scan", "0") &&
	     set_attr("pages_to_scan", MERGE_PAGES_TO_SCAN) &&
	     set_attr("sleep_millisecs", "0");
	if (!ok)
		ksft_exit_fail_msg("set-up of the ksm attributes failed\n");
	/*
	 * The children first: the parent has no mergeable memory to pass on
	 * (a VM_MERGEABLE area at fork would be theirs too).
	 */
	for (i = 0; i < NR_CHILDREN; i++) {
		if (pipe(cmd) || pipe(reply))
			ksft_exit_fail_msg("pipe: %s\n", strerror(errno));
		children[i].pid = fork();
		if (children[i].pid < 0)
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		if (!children[i].pid) {
			int j;

			close(cmd[1]);
			close(reply[0]);
			for (j = 0; j < i; j++) {
				close(children[j].cmd);
				close(children[j].reply);
			}
			child_main(i, cmd[0], reply[1]);
		}
		close(cmd[0]);
		close(reply[1]);
		children[i].cmd = cmd[1];
		children[i].reply = reply[0];
		children[i].alive = true;
	}
	for (i = 0; i < NR_CHILDREN; i++) {
		if (!child_read(&ok, i, &r, "set-up") || r.cmd != 'r') {
			ok = false;
			continue;
		}
		expect(&ok, !r.err, "set-up: child %d: mmap or MADV_MERGEABLE of %lu MiB: %s\n",
		       i, AREA_SIZE >> 20, strerror(r.err));
		children[i].addr = r.addr;
	}
	keep = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (keep == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	memcpy(keep, pattern, page_size);
	expect(&ok, !madvise(keep, page_size, MADV_MERGEABLE),
	       "set-up: madvise(MADV_MERGEABLE) of the parent's page: %s\n",
	       strerror(errno));
	ksft_test_result(ok, "set-up: run=2, max_page_sharing=" MAX_PAGE_SHARING ", pages_to_scan=" MERGE_PAGES_TO_SCAN ", sleep_millisecs=0, smart_scan=0; %d children with %lu MiB of one pattern each and the parent's page, MADV_MERGEABLE\n",
			 NR_CHILDREN, AREA_SIZE >> 20);
	if (!ok)
		ksft_exit_fail_msg("cannot go on without the areas\n");
}

/* 2: everything in one KSM page. */
static void test_merge(void)
{
	const char *when = "merge";
	struct counts want = merged_counts();
	long merging[NR_PROCS], items[NR_PROCS];
	double cpu0 = ksmd_cpu(), cpu;
	bool ok = true;
	int p;

	for (p = 0; p < NR_PROCS; p++)
		merging[p] = items[p] = p == PARENT ? 1 : npages;
	stage = when;
	expect(&ok, set_attr("run", "1"), "%s: run=1: %s\n", when,
	       strerror(errno));
	wait_counts(&ok, when, &want, merging, 0);
	cpu = ksmd_cpu() - cpu0;
	ksft_print_msg("merge of %lu pages into one KSM page: %.3f s (%s; ksmd CPU %.3f s)\n",
		       NR_CHILDREN * npages + 1, last_wait_ms / 1000.0,
		       last_wait_end == WAIT_SETTLED ? "all merged" :
		       last_wait_end == WAIT_TIMEOUT ? "did not end: timeout" :
						       "settled at other counters",
		       cpu0 < 0 ? -1.0 : cpu);
	/* Stays stopped at the end of a full scan for the rewrite. */
	expect_counters(&ok, when, &want, 0, merging, items, true);
	ksft_test_result(ok, "merge: %d x %lu pages and 1 of one pattern with max_page_sharing=" MAX_PAGE_SHARING ": pages_shared 1 pages_sharing %lu pages_unshared 0 pages_volatile 0 as mm/ksm.c, ksm_merging_pages %lu in each child, 1 in the parent\n",
			 NR_CHILDREN, npages, want.sharing, npages);
}

/* 3: before the rewrite, every page of every process reads the pattern. */
static void test_merged_intact(void)
{
	const char *when = "merged";
	uint64_t pfn = 0;
	bool ok = true;
	int i;

	stage = when;
	expect_all_intact(&ok, when);
	if (have_kpageflags()) {
		if (!read_pfns(main_pid, (uintptr_t)keep, 1, &pfn))
			pfn = 0;
		kpfn = pfn;
		ksft_print_msg("%s: the parent's page maps pfn %#llx\n", when,
			       (unsigned long long)pfn);
		if (!pfn_is_ksm(pfn)) {
			expect(&ok, false, "%s: the parent's page maps pfn %#llx, not a KSM page\n",
			       when, (unsigned long long)pfn);
			/* Then the KSM page of child 0's first page, if any. */
			if (read_pfns(children[0].pid, children[0].addr, 1,
				      &pfn) && pfn_is_ksm(pfn))
				kpfn = pfn;
			ksft_print_msg("%s: child 0's first page maps pfn %#llx (%s): the KSM page the others are checked against\n",
				       when, (unsigned long long)pfn,
				       pfn_is_ksm(pfn) ? "KSM" : "not KSM");
		}
		for (i = 0; i < NR_CHILDREN; i++)
			expect_child_ksm(&ok, i, true, when);
	}
	ksft_test_result(ok, "merged: every page of every process reads the pattern and maps the one KSM page\n");
}

/* 4: each child in turn rewrites every page of its area. */
static void test_rewrite(void)
{
	struct counts want = merged_counts();
	long merging[NR_PROCS], items[NR_PROCS];
	char when[64];
	struct reply r;
	bool ok = true;
	int i, j;

	for (i = 0; i < NR_CHILDREN; i++) {
		snprintf(when, sizeof(when), "rewrite by child %d", i);
		stage = when;
		if (!child_ask(&ok, i, 'w', &r, when))
			continue;
		children[i].rewritten = true;
		ksft_print_msg("%s: %lu pages rewritten in %.3f s\n", when,
			       npages, r.ms / 1000.0);
		if (r.bad)
			printf("#    %s: page %lu: byte %lu reads %#x, expected %#x\n",
			       when, r.first_bad, r.first_off, r.got, r.want);
		expect(&ok, !r.bad, "%s: %lu of %lu pages do not read back as written\n",
		       when, r.bad, npages);
		/* The others read what they did: the writes are the writer's. */
		for (j = 0; j < NR_CHILDREN; j++)
			if (j != i)
				expect_child_intact(&ok, j, when);
		expect_keep_intact(&ok, when);
	}
	snprintf(when, sizeof(when), "rewritten");
	for (i = 0; i < NR_CHILDREN; i++)
		expect_child_ksm(&ok, i, false, when);
	expect_keep_ksm(&ok, true, when);
	/*
	 * ksmd, stopped, did not see the writes: mm/ksm.c drops a mapping from
	 * its stable node when the scan comes to the page, not at the COW.
	 */
	for (i = 0; i < NR_PROCS; i++)
		merging[i] = items[i] = i == PARENT ? 1 : npages;
	expect_counters(&ok, when, &want, 0, merging, items, true);
	ksft_test_result(ok, "rewrite: each child in turn writes data of its own into every page, which reads back, the others' pages unchanged; none maps a KSM page, the parent's page still does; ksmd stopped, the counters unchanged\n");
}

/* 5: two full scans after the rewrite. */
static void test_scans(void)
{
	const char *when = "two full scans after the rewrite";
	struct counts want = { 1, 0, NR_CHILDREN * npages };
	long merging[NR_PROCS], items[NR_PROCS];
	unsigned long ms;
	double cpu0, cpu;
	bool ok = true, scanned;
	int p;

	for (p = 0; p < NR_PROCS; p++) {
		merging[p] = p == PARENT ? 1 : 0;
		items[p] = p == PARENT ? 1 : npages;
	}
	stage = when;
	/* ksmd stopped at the end of a full scan: scans start from the top. */
	expect(&ok, set_attr("pages_to_scan", SCAN_PAGES_TO_SCAN),
	       "%s: pages_to_scan=" SCAN_PAGES_TO_SCAN ": %s\n", when,
	       strerror(errno));
	cpu0 = ksmd_cpu();
	expect(&ok, set_attr("run", "1"), "%s: run=1: %s\n", when,
	       strerror(errno));
	scanned = wait_full_scans(&ok, 2, when, &ms);
	cpu = ksmd_cpu() - cpu0;
	ksft_print_msg("two full scans after the rewrite: %s%.3f s (ksmd CPU %.3f s, pages_to_scan " SCAN_PAGES_TO_SCAN ")\n",
		       scanned ? "" : "did not end in ", ms / 1000.0,
		       cpu0 < 0 ? -1.0 : cpu);
	expect_counters(&ok, when, &want, 0, merging, items, false);
	ksft_test_result(ok, "scans: after two full scans pages_shared 1 pages_sharing 0 pages_unshared %lu pages_volatile 0 as mm/ksm.c; ksm_merging_pages 0 in each child, 1 in the parent\n",
			 want.unshared);
}

/* 6: every byte after the scans. */
static void test_scanned_intact(void)
{
	const char *when = "after the scans";
	bool ok = true;
	int i;

	expect_all_intact(&ok, when);
	for (i = 0; i < NR_CHILDREN; i++)
		expect_child_ksm(&ok, i, false, when);
	expect_keep_ksm(&ok, true, when);
	ksft_test_result(ok, "after the scans: every page of every child reads its own data, maps no KSM page; the parent's page reads the pattern and maps the KSM page\n");
}

/* 7: the children exit; ksmd drops their items. */
static void test_exit(void)
{
	const char *when = "children gone";
	struct counts want = { 1, 0, 0 };
	long merging[NR_PROCS], items[NR_PROCS];
	bool ok = true;
	int i, status;
	pid_t pid;

	stage = when;
	for (i = 0; i < NR_CHILDREN; i++) {
		if (!children[i].alive)
			continue;
		expect(&ok, write(children[i].cmd, "q", 1) == 1,
		       "%s: writing to child %d: %s\n", when, i,
		       strerror(errno));
		pid = waitpid(children[i].pid, &status, 0);
		expect(&ok, pid == children[i].pid && WIFEXITED(status) &&
			     !WEXITSTATUS(status),
		       "%s: child %d: waitpid %d, status %#x\n", when, i,
		       (int)pid, status);
		children[i].alive = false;
	}
	for (i = 0; i < NR_PROCS; i++)
		merging[i] = items[i] = i == PARENT ? 1 : -1;
	wait_counts(&ok, when, &want, merging, 0);
	expect_counters(&ok, when, &want, 0, merging, items, false);
	expect_keep_intact(&ok, when);
	expect_keep_ksm(&ok, true, when);
	ksft_test_result(ok, "exit: once the children exited and ksmd dropped them, pages_shared 1 pages_sharing 0 pages_unshared 0 pages_volatile 0; the parent's page intact, still the KSM page\n");
}

/* 8: MADV_UNMERGEABLE of the parent's page, run=2. */
static void test_unmerge(void)
{
	const char *when = "unmerged";
	struct counts zero = { 0, 0, 0 };
	long merging[NR_PROCS] = { -1, -1, -1, 0 };
	long items[NR_PROCS] = { -1, -1, -1, -1 };
	bool ok = true;

	stage = when;
	expect(&ok, !madvise(keep, page_size, MADV_UNMERGEABLE),
	       "%s: madvise(MADV_UNMERGEABLE): %s\n", when, strerror(errno));
	expect_keep_intact(&ok, when);
	expect_keep_ksm(&ok, false, when);
	/* Once ksmd went over the parent, it has nothing left to scan. */
	wait_counts(&ok, when, &zero, merging, 0);
	expect_counters(&ok, when, &zero, 0, merging, items, false);
	expect_all_gone(&ok, when);
	expect_keep_intact(&ok, "unmerged, run=2");
	munmap(keep, page_size);
	keep = NULL;
	ksft_test_result(ok, "unmerge: MADV_UNMERGEABLE of the parent's page: it reads the pattern, no KSM page; every counter 0, after run=2 too\n");
}

/* 9: everything put back. */
static void test_restore(void)
{
	bool ok;

	stage = "restore";
	ok = saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
	ksft_test_result(ok, "restore: run=2, then every changed attribute of " KSM_DIR " put back\n");
}

int main(void)
{
	const char *e = getenv("KSM_RS_SHARERS_TIMEOUT");
	const char *flavour = getenv("KSM_RS_FLAVOUR");
	const char *ksm = getenv("KSM_RS_KSM");

	page_size = getpagesize();
	npages = AREA_SIZE / page_size;
	main_pid = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	if (access(KSM_DIR "/run", W_OK))
		ksft_exit_skip("no writable " KSM_DIR "/run\n");
	if (access(KSM_DIR "/max_page_sharing", W_OK))
		ksft_exit_skip("no writable " KSM_DIR "/max_page_sharing\n");
	ksft_set_plan(NR_TESTS);
	wait_ms = (e && atoi(e) > 0 ? atoi(e) : 300) * 1000UL;
	if (flavour && !strcmp(flavour, "debug") && !(e && atoi(e) > 0))
		wait_ms *= 4;
	ksft_print_msg("implementation %s, flavour %s; timeout %lu s per wait, %lu s in all\n",
		       ksm ? ksm : "?", flavour ? flavour : "?", wait_ms / 1000,
		       7 * wait_ms / 1000);
	pattern = malloc(page_size);
	if (!pattern)
		ksft_exit_fail_msg("no memory\n");
	gen_pattern(pattern);
	atexit(restore_at_exit);
	signal(SIGALRM, on_alarm);
	alarm(7 * wait_ms / 1000);

	test_setup();
	test_merge();
	test_merged_intact();
	test_rewrite();
	test_scans();
	test_scanned_intact();
	test_exit();
	test_unmerge();
	test_restore();

	alarm(0);
	ksft_finished();
}
