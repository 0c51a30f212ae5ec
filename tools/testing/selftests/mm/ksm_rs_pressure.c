// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_pressure: advisor_mode "pressure", ksm_rs's pressure-following
 * policy (ksmtuned's rules inside ksmd), driven through the memory states of
 * the ksmtuned parity scenario (scripts/ksm-rs/guest/ksm-rs-parity-ksmtuned,
 * whose memory driver, fake-qemu.c, this test embeds as a child process):
 *
 *   idle    a small mergeable area only      ksmd held back, scans nothing
 *   short   a child holding most memory      start, boost up to the maximum
 *   plenty  the child gone                   decay down to the minimum, stop
 *
 * and checks:
 *  - advisor_mode reads "[none] scan-time" and "none [scan-time]" byte for
 *    byte as mm/ksm.c, and "none scan-time [pressure]" only in pressure mode;
 *  - the advisor_pressure_* tunables: defaults (ksmtuned's), and EINVAL for
 *    nonsense (0 interval, boost or decay; min > max; more than 100 %);
 *  - switching modes: pressure sets pages_to_scan to its minimum and makes
 *    pages_to_scan EINVAL, as scan-time does; leaving it sets it as upstream
 *    does (100 for none, advisor_min_pages_to_scan for scan-time);
 *  - the decisions, compared with ksmtuned's log in the parity test ("start
 *    300, boost to 1250, decay 1200 1150 1100, stop"): here the start is
 *    min + boost (364), boosts by 300 up to 1250, decays by 50 down to 64 and
 *    stops there (the kernel has no "memory committed to qemu", so free
 *    memory alone decides, and the decay runs down to the minimum before the
 *    stop); while held back pages_scanned does not move;
 *  - advisor_mode none afterwards: ksmd scans again with pages_to_scan 100.
 *
 * The interval is 200 ms; the checks wait for conditions with generous
 * deadlines and look at the order of the values, never at times.
 *
 * On mm/ksm.c (KSM=c) the test checks that there is no such mode: "pressure"
 * is EINVAL, the advisor_pressure_* files do not exist, and advisor_mode
 * reads as upstream. Which implementation runs is told by the symbols of the
 * ksm_rs crate in /proc/kallsyms, so that a ksm_rs kernel without the policy
 * fails rather than passes as C.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_rs_util.h"

#define NR_TESTS_RS	7
#define NR_TESTS_C	3
#define IDLE_PAGES	256
#define INTERVAL_MS	"200"
/* Generous: writing most of the guest's memory under TCG takes a while. */
#define WAIT_MS		300000
/* How long "nothing moves" is watched: ten intervals. */
#define QUIET_MS	2000
#define MAX_SEQ		256

/* ksmtuned's defaults, the policy's defaults. */
#define BOOST		300
#define DECAY		50
#define MIN_PAGES	64
#define MAX_PAGES	1250

static const char *const pressure_files[] = {
	"advisor_pressure_interval_millisecs",
	"advisor_pressure_boost",
	"advisor_pressure_decay",
	"advisor_pressure_min_pages_to_scan",
	"advisor_pressure_max_pages_to_scan",
	"advisor_pressure_thres_percent",
	"advisor_pressure_thres_kbytes",
	"advisor_pressure_active",
};

/* Put back in this order: advisor_mode before pages_to_scan (EINVAL under an advisor). */
static struct saved_attr saved_attrs[] = {
	{ .name = "run" },
	{ .name = "advisor_mode" },
	{ .name = "pages_to_scan" },
	{ .name = "sleep_millisecs" },
	{ .name = "advisor_pressure_interval_millisecs" },
	{ .name = "advisor_pressure_min_pages_to_scan" },
	{ .name = "advisor_pressure_max_pages_to_scan" },
};
#define SET(attr, val) saved_attr_set(saved_attrs, ARRAY_SIZE(saved_attrs), attr, val)

static long page_size;
static pid_t hog;

/* Whether the running KSM is ksm_rs: its crate's symbols are in kallsyms. */
static bool is_ksm_rs(void)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/kallsyms", "r");

	if (!f)
		ksft_exit_fail_msg("open /proc/kallsyms: %s\n", strerror(errno));
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "6ksm_rs") != NULL;
	fclose(f);
	return found;
}

static unsigned long meminfo_kb(const char *field)
{
	char line[256];
	unsigned long v = 0, kb;
	size_t len = strlen(field);
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, len) && line[len] == ':' &&
		    sscanf(line + len + 1, "%lu", &kb) == 1)
			v = kb;
	fclose(f);
	return v;
}

/* ksmtuned's free memory: MemFree + Buffers + Cached. */
static unsigned long free_kb(void)
{
	return meminfo_kb("MemFree") + meminfo_kb("Buffers") + meminfo_kb("Cached");
}

/* ksmtuned's threshold: 20 % of MemTotal, at least 2048 kB. */
static unsigned long thres_kb(void)
{
	unsigned long t = meminfo_kb("MemTotal") * 20 / 100;

	return t > 2048 ? t : 2048;
}

static bool mode_reads(const char *want)
{
	char buf[64];

	return sysfs_read("advisor_mode", buf, sizeof(buf)) && !strcmp(buf, want);
}

/* Writes @val to @attr, which must fail with @err and leave the value as it was. */
static bool rejects(const char *attr, const char *val, int err)
{
	char before[64], after[64];
	bool ok;

	if (!sysfs_read(attr, before, sizeof(before)))
		return false;
	ok = !sysfs_write(attr, val) && errno == err;
	if (!ok)
		ksft_print_msg("   %s <- \"%s\": %s, expected %s\n", attr, val,
			       errno ? strerror(errno) : "accepted", strerror(err));
	ok &= sysfs_read(attr, after, sizeof(after)) && !strcmp(before, after);
	return ok;
}

/* advisor_mode reads as mm/ksm.c in the upstream modes. */
static void test_upstream_modes(void)
{
	bool ok = SET("advisor_mode", "scan-time") && mode_reads("none [scan-time]") &&
		  SET("advisor_mode", "none") && mode_reads("[none] scan-time") &&
		  ksm_ul("pages_to_scan") == 100;

	ksft_test_result(ok, "advisor_mode reads \"[none] scan-time\" and \"none [scan-time]\" as mm/ksm.c\n");
}

/* KSM=c: no pressure mode, no pressure files. */
static void test_c_has_none(void)
{
	bool ok = rejects("advisor_mode", "pressure", EINVAL) &&
		  mode_reads("[none] scan-time");
	char path[128];
	size_t i;

	ksft_test_result(ok, "KSM=c has no advisor_mode \"pressure\": EINVAL, still \"[none] scan-time\"\n");
	ok = true;
	for (i = 0; i < ARRAY_SIZE(pressure_files); i++) {
		snprintf(path, sizeof(path), KSM_DIR "/%s", pressure_files[i]);
		if (!access(path, F_OK)) {
			ksft_print_msg("   %s exists\n", path);
			ok = false;
		}
	}
	ksft_test_result(ok, "KSM=c has no advisor_pressure_* files\n");
}

/* The tunables: ksmtuned's defaults, and EINVAL for nonsense. */
static void test_tunables(void)
{
	static const struct { const char *name; unsigned long def; } defs[] = {
		{ "advisor_pressure_interval_millisecs", 60000 },
		{ "advisor_pressure_boost", BOOST },
		{ "advisor_pressure_decay", DECAY },
		{ "advisor_pressure_min_pages_to_scan", MIN_PAGES },
		{ "advisor_pressure_max_pages_to_scan", MAX_PAGES },
		{ "advisor_pressure_thres_percent", 20 },
		{ "advisor_pressure_thres_kbytes", 2048 },
		{ "advisor_pressure_active", 0 },
	};
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(defs); i++) {
		unsigned long v = ksm_ul(defs[i].name);

		expect(&ok, v == defs[i].def, "%s reads %lu, expected %lu\n",
		       defs[i].name, v, defs[i].def);
	}
	ok &= rejects("advisor_pressure_interval_millisecs", "0", EINVAL);
	ok &= rejects("advisor_pressure_interval_millisecs", "abc", EINVAL);
	ok &= rejects("advisor_pressure_boost", "0", EINVAL);
	ok &= rejects("advisor_pressure_decay", "0", EINVAL);
	ok &= rejects("advisor_pressure_decay", "-50", EINVAL);
	ok &= rejects("advisor_pressure_min_pages_to_scan", "0", EINVAL);
	ok &= rejects("advisor_pressure_min_pages_to_scan", "1251", EINVAL);
	ok &= rejects("advisor_pressure_max_pages_to_scan", "63", EINVAL);
	ok &= rejects("advisor_pressure_max_pages_to_scan", "4294967296", EINVAL);
	ok &= rejects("advisor_pressure_thres_percent", "101", EINVAL);
	ok &= rejects("advisor_pressure_thres_kbytes", "-1", EINVAL);
	/* min == max is fine; put back. */
	ok &= SET("advisor_pressure_min_pages_to_scan", "1250") &&
	      SET("advisor_pressure_min_pages_to_scan", "64") &&
	      SET("advisor_pressure_max_pages_to_scan", "64") &&
	      SET("advisor_pressure_max_pages_to_scan", "1250");
	ksft_test_result(ok, "advisor_pressure_*: ksmtuned's defaults, EINVAL for 0 interval/boost/decay, min > max, > 100 %%\n");
}

/* Switching modes sets pages_to_scan as set_advisor_defaults() does. */
static void test_switching(void)
{
	bool ok = true;

	ok &= SET("advisor_mode", "none") && SET("pages_to_scan", "1234");
	ok &= SET("advisor_mode", "pressure");
	expect(&ok, mode_reads("none scan-time [pressure]"),
	       "advisor_mode does not read \"none scan-time [pressure]\"\n");
	expect(&ok, ksm_ul("pages_to_scan") == MIN_PAGES,
	       "none -> pressure: pages_to_scan %lu, expected %d\n",
	       ksm_ul("pages_to_scan"), MIN_PAGES);
	ok &= rejects("pages_to_scan", "100", EINVAL);
	ok &= SET("advisor_mode", "scan-time");
	expect(&ok, mode_reads("none [scan-time]"), "scan-time reads otherwise\n");
	expect(&ok, ksm_ul("pages_to_scan") == ksm_ul("advisor_min_pages_to_scan"),
	       "pressure -> scan-time: pages_to_scan %lu, expected advisor_min_pages_to_scan\n",
	       ksm_ul("pages_to_scan"));
	ok &= SET("advisor_mode", "pressure") && SET("advisor_mode", "none");
	expect(&ok, ksm_ul("pages_to_scan") == 100,
	       "pressure -> none: pages_to_scan %lu, expected 100\n",
	       ksm_ul("pages_to_scan"));
	expect(&ok, ksm_ul("advisor_pressure_active") == 0, "active after none\n");
	expect(&ok, mode_reads("[none] scan-time"), "none reads otherwise\n");
	ksft_test_result(ok, "advisor_mode pressure: reads \"none scan-time [pressure]\", pages_to_scan = min and EINVAL; leaving it: 100 / advisor_min_pages_to_scan\n");
}

/*
 * The memory driver of fake-qemu.c: a child that writes @kb of unique,
 * mergeable pages and keeps them until killed. Returns at once; *@ready is
 * the pipe that gets one byte once the memory is written.
 */
static pid_t start_hog(unsigned long kb, int *ready)
{
	int pfd[2];
	pid_t pid;

	if (pipe(pfd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		size_t len = kb << 10, off;
		char *mem;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(pfd[0]);
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			_exit(1);
		/* As fake-qemu: THP makes writing it quick under TCG. */
		madvise(mem, len, MADV_HUGEPAGE);
		if (madvise(mem, len, MADV_MERGEABLE))
			_exit(1);
		for (off = 0; off < len; off += page_size) {
			unsigned long *p = (unsigned long *)(mem + off);

			p[0] = off;
			p[1] = getpid();
		}
		if (write(pfd[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	*ready = pfd[0];
	return pid;
}

/* Waits for the hog's memory to be written. */
static bool hog_ready(int ready)
{
	char c;
	bool ok = read(ready, &c, 1) == 1;

	close(ready);
	return ok;
}

static void stop_hog(void)
{
	if (hog <= 0)
		return;
	kill(hog, SIGKILL);
	waitpid(hog, NULL, 0);
	hog = 0;
}

/*
 * Samples advisor_pressure_active and pages_to_scan, noting each change in
 * @seq as active * 1000000 + pages_to_scan, until active reads @active and
 * pages_to_scan @until. Returns false after WAIT_MS.
 */
static bool follow(unsigned long active, unsigned long until,
		   unsigned long *seq, int *n)
{
	unsigned long end = now_ms() + WAIT_MS;

	*n = 0;
	for (;;) {
		unsigned long a = ksm_ul("advisor_pressure_active");
		unsigned long p = ksm_ul("pages_to_scan");
		unsigned long v = a * 1000000 + p;

		if ((!*n || seq[*n - 1] != v) && *n < MAX_SEQ)
			seq[(*n)++] = v;
		if (a == active && p == until)
			return true;
		if (now_ms() > end)
			return false;
		/* The hog killed (by the OOM killer?) or failed: give up. */
		if (hog > 0 && waitpid(hog, NULL, WNOHANG) == hog) {
			ksft_print_msg("the memory hog exited\n");
			hog = 0;
			return false;
		}
		usleep(2000);
	}
}

/* Prints @seq as "start 364 664 ... stop 64": what ksmtuned's log would say. */
static void print_seq(const char *what, const unsigned long *seq, int n)
{
	char buf[2048];
	int i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < n && len < (int)sizeof(buf) - 32; i++) {
		bool a = seq[i] >= 1000000, was = i && seq[i - 1] >= 1000000;

		len += snprintf(buf + len, sizeof(buf) - len, "%s %lu",
				a && !was ? (i ? " start" : " active") :
				!a && (was || !i) ? (i ? " stop" : " stopped") : "",
				seq[i] % 1000000);
	}
	ksft_print_msg("%s:%s\n", what, buf);
}

/* Checks @seq: idle first, then active and moving in steps of @step one way, to @last. */
static void check_seq(bool *ok, const unsigned long *seq, int n, bool rising,
		      unsigned long step, unsigned long last)
{
	unsigned long from = rising ? MIN_PAGES : MAX_PAGES, prev = 0;
	bool started = false;
	int i;

	for (i = 0; i < n; i++) {
		unsigned long a = seq[i] / 1000000, p = seq[i] % 1000000;

		if (rising && !a) {
			expect(ok, !started, "held back again at %lu while short\n", p);
			continue;
		}
		if (!rising && !a) {
			expect(ok, i == n - 1, "stopped at %lu before the end\n", p);
			continue;
		}
		started = true;
		expect(ok, p == last || (p > from ? p - from : from - p) % step == 0,
		       "%lu is not %lu %c k * %lu nor %lu\n", p, from,
		       rising ? '+' : '-', step, last);
		expect(ok, !prev || (rising ? p > prev : p < prev),
		       "not %s at %lu\n", rising ? "rising" : "falling", p);
		prev = p;
	}
	expect(ok, started, "never active\n");
	expect(ok, n > 0 && seq[n - 1] % 1000000 == last, "did not reach %lu\n", last);
}

/* pages_scanned does not move for QUIET_MS. */
static bool quiet(void)
{
	unsigned long before = ksm_ul("pages_scanned");

	usleep(QUIET_MS * 1000);
	return ksm_ul("pages_scanned") == before;
}

static void test_phases(bool mode_ok)
{
	unsigned long seq[MAX_SEQ] = { 0 }, scanned, total = meminfo_kb("MemTotal"), f, size;
	int n = 0, ready = -1;
	bool ok;

	if (!mode_ok) {
		ksft_test_result_fail("idle: held back (no pressure mode)\n");
		ksft_test_result_fail("short: start and boost (no pressure mode)\n");
		ksft_test_result_fail("plenty: decay and stop (no pressure mode)\n");
		ksft_test_result_fail("none again: upstream behaviour (no pressure mode)\n");
		return;
	}

	/* idle: plenty free, ksmd has work but the policy holds it back. */
	f = free_kb();
	ksft_print_msg("idle: free %lu kB, thres %lu kB, MemTotal %lu kB\n",
		       f, thres_kb(), total);
	ok = f > thres_kb();
	ok &= SET("advisor_pressure_interval_millisecs", INTERVAL_MS) &&
	      SET("advisor_mode", "pressure") && SET("run", "1");
	usleep(100000);
	ok &= quiet();
	expect(&ok, ksm_ul("advisor_pressure_active") == 0, "active while idle\n");
	expect(&ok, ksm_ul("pages_to_scan") == MIN_PAGES, "pages_to_scan %lu while idle\n",
	       ksm_ul("pages_to_scan"));
	ksft_test_result(ok, "idle: plenty free, ksmd held back (active 0, pages_scanned still over %d ms)\n",
			 QUIET_MS);

	/*
	 * short: a child takes what leaves 60 % of thres free (86 % of MemTotal
	 * on a 2 GiB guest, as the parity test's qemu; less where the kernel
	 * takes more, as with KASAN).
	 */
	scanned = ksm_ul("pages_scanned");
	size = f > thres_kb() ? f - thres_kb() * 6 / 10 : 0;
	hog = size ? start_hog(size, &ready) : -1;
	ok = hog > 0 && follow(1, MAX_PAGES, seq, &n);
	print_seq("short: active, pages_to_scan", seq, n);
	ok = ok && hog_ready(ready);
	f = free_kb();
	ksft_print_msg("short: hog %lu kB (%lu %% of MemTotal), free %lu kB, thres %lu kB\n",
		       size, size * 100 / total, f, thres_kb());
	expect(&ok, f < thres_kb(), "free >= thres with the hog\n");
	check_seq(&ok, seq, n, true, BOOST, MAX_PAGES);
	expect(&ok, ksm_ul("advisor_pressure_active") == 1, "active 0 while short\n");
	expect(&ok, ksm_ul("pages_scanned") > scanned, "pages_scanned did not move\n");
	ksft_test_result(ok, "short: free < thres: started, boosted by %d to %d, pages_scanned moves\n",
			 BOOST, MAX_PAGES);

	/*
	 * plenty: the child gone; decay to the minimum, then stop. Its memory
	 * comes back when its address space is torn down, which may finish
	 * after waitpid() (mmput_async() when ksmd held the last reference):
	 * wait for it, 60 s at most.
	 */
	stop_hog();
	for (int i = 0; i < 600 && free_kb() <= thres_kb(); i++)
		usleep(100000);
	f = free_kb();
	ksft_print_msg("plenty: free %lu kB, thres %lu kB\n", f, thres_kb());
	ok = f > thres_kb();
	ok = ok && follow(0, MIN_PAGES, seq, &n);
	print_seq("plenty: active, pages_to_scan", seq, n);
	check_seq(&ok, seq, n, false, DECAY, MIN_PAGES);
	expect(&ok, n >= 3, "fewer than 3 values seen while decaying\n");
	usleep(100000);
	ok &= quiet();
	ksft_test_result(ok, "plenty: free >= thres: decayed by %d to %d, then stopped (pages_scanned still)\n",
			 DECAY, MIN_PAGES);

	/* none again: ksmd scans always, pages_to_scan as upstream. */
	scanned = ksm_ul("pages_scanned");
	ok = SET("advisor_mode", "none") && mode_reads("[none] scan-time");
	expect(&ok, ksm_ul("pages_to_scan") == 100, "pages_to_scan %lu\n",
	       ksm_ul("pages_to_scan"));
	expect(&ok, ksm_ul("advisor_pressure_active") == 0, "active\n");
	ok &= SET("pages_to_scan", "100");
	{
		unsigned long end = now_ms() + WAIT_MS;

		while (ksm_ul("pages_scanned") <= scanned && now_ms() < end)
			usleep(10000);
	}
	expect(&ok, ksm_ul("pages_scanned") > scanned, "ksmd does not scan\n");
	ksft_test_result(ok, "none again: pages_to_scan 100 and writable, ksmd scans with plenty free\n");
}

static void cleanup(void)
{
	stop_hog();
	saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), false);
}

int main(void)
{
	bool rs, mode_ok;
	char *area;
	size_t i;

	ksft_print_header();
	page_size = sysconf(_SC_PAGESIZE);
	if (access(KSM_DIR "/advisor_mode", F_OK))
		ksft_exit_skip("no %s/advisor_mode\n", KSM_DIR);
	rs = is_ksm_rs();
	ksft_print_msg("KSM implementation: %s\n", rs ? "ksm_rs" : "mm/ksm.c");
	ksft_set_plan(rs ? NR_TESTS_RS : NR_TESTS_C);

	if (!SET("run", "0") || !SET("advisor_mode", "none") ||
	    !SET("sleep_millisecs", "20"))
		ksft_exit_fail_msg("cannot set up KSM\n");
	test_upstream_modes();
	if (!rs) {
		test_c_has_none();
		cleanup();
		ksft_finished();
	}

	/* A small mergeable area, unique pages: ksmd has work, nothing merges. */
	area = mmap(NULL, IDLE_PAGES * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || madvise(area, IDLE_PAGES * page_size, MADV_MERGEABLE))
		ksft_exit_fail_msg("mergeable area: %s\n", strerror(errno));
	for (i = 0; i < IDLE_PAGES; i++)
		*(unsigned long *)(area + i * page_size) = i + 1;

	for (i = 0; i < ARRAY_SIZE(pressure_files); i++) {
		char path[128];

		snprintf(path, sizeof(path), KSM_DIR "/%s", pressure_files[i]);
		if (access(path, F_OK))
			ksft_print_msg("%s missing\n", path);
	}
	if (!access(KSM_DIR "/advisor_pressure_active", F_OK))
		test_tunables();
	else
		ksft_test_result_fail("advisor_pressure_*: missing\n");
	test_switching();
	mode_ok = SET("advisor_mode", "pressure") && SET("advisor_mode", "none");
	test_phases(mode_ok);
	cleanup();
	ksft_finished();
}
