// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_nomem: ksmd short of memory for its own bookkeeping.
 *
 * ksmd allocates as it scans (mm/ksm.c: an rmap_item per page, a stable
 * node per KSM page; ksm_rs: its items, trees and tables). When memory is
 * short those allocations fail, and mm/ksm.c lets them fail quietly: its
 * rmap items are __GFP_NORETRY | __GFP_NOWARN, and ksmd tries again at its
 * next scan. A KSM that reports each failure in the kernel log, with a
 * stack and the whole Mem-Info, floods the log of a host under memory
 * pressure (where KSM matters most) and looks like a kernel problem.
 *
 * Here failslab fails every other slab allocation of ksmd (task-filter, only
 * ksmd's /proc/<pid>/make-it-fail set) while it scans 8192 pages, half of
 * them copies of the other half, for four full scans or 60 s. Then:
 * - failures were injected (failslab's "times" counted down), and ksmd
 *   went on scanning (pages_scanned moved; mm/ksm.c, whose batch ends at
 *   the first failed rmap_item, scans a page or so per wake-up then, and
 *   completes no full scan in 60 s);
 * - the kernel log has no allocation failure report (vmalloc error, page
 *   allocation failure, SLUB: Unable to allocate, OOM killer) and no splat
 *   (WARNING:, BUG:, Call Trace) since the test began;
 * - with the failures stopped, every pair merges (pages_shared and
 *   pages_sharing + 4096 each) and the data is intact.
 *
 * Needs root, debugfs and CONFIG_FAILSLAB (make test-debug's kernel; the
 * base kernels have no fault injection: the test skips there).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <unistd.h>

#include "kselftest.h"
#include "ksm_rs_util.h"

#define NR_TESTS		4

#define NPAGES			8192
#define TAG			0x4e4f4d454d000000ULL

#define FAILSLAB		"/sys/kernel/debug/failslab"
#define FAIL_TIMES		100000000L
#define FAIL_SCANS		4
#define FAIL_MS			60000UL
#define MERGE_MS		120000UL

static unsigned long page_size;
static char *area;
static const char *volatile stage = "start";
static char ksmd_fail[64];	/* /proc/<ksmd>/make-it-fail */

static struct saved_attr saved_attrs[] = {
	{ .name = "use_zero_pages" },
	{ .name = "smart_scan" },
	{ .name = "max_page_sharing" },
	{ .name = "pages_to_scan" },
	{ .name = "sleep_millisecs" },
	{ .name = "advisor_mode" },
	{ .name = "run" },
};

static bool set_attr(const char *attr, const char *val)
{
	return saved_attr_set(saved_attrs, ARRAY_SIZE(saved_attrs), attr, val);
}

/* Stops the failures: async-signal-safe, for the watchdog too. */
static void faults_off(void)
{
	if (ksmd_fail[0]) {
		write_path(ksmd_fail, "0");
		write_path(FAILSLAB "/probability", "0");
	}
}

static void restore_at_exit(void)
{
	faults_off();
	saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
}

static void on_alarm(int sig)
{
	static const char *const attrs[] = {
		"pages_shared", "pages_sharing", "pages_unshared", "full_scans",
	};

	(void)sig;
	faults_off();
	watchdog_report(attrs, ARRAY_SIZE(attrs), stage);
	watchdog_restore(saved_attrs, ARRAY_SIZE(saved_attrs));
	_exit(KSFT_FAIL);
}

static uint64_t tag_of(unsigned long i)
{
	return TAG | (i % (NPAGES / 2));
}

static void fill(void)
{
	unsigned long i, w;

	for (i = 0; i < NPAGES; i++) {
		uint64_t *q = (uint64_t *)(area + i * page_size);

		for (w = 0; w < page_size / sizeof(*q); w++)
			q[w] = tag_of(i) ^ (w * 0x9e3779b97f4a7c15ULL);
	}
}

static unsigned long bad_pages(void)
{
	unsigned long i, w, bad = 0;

	for (i = 0; i < NPAGES; i++) {
		uint64_t *q = (uint64_t *)(area + i * page_size);

		for (w = 0; w < page_size / sizeof(*q); w++)
			if (q[w] != (tag_of(i) ^ (w * 0x9e3779b97f4a7c15ULL))) {
				bad++;
				break;
			}
	}
	return bad;
}

/*
 * Whether a kernel log line reports a failed allocation or a kernel
 * problem.
 */
static bool is_report(const char *line)
{
	static const char *const what[] = {
		"vmalloc error", "page allocation failure", "Unable to allocate",
		"oom-killer", "Out of memory", "WARNING:", "BUG:", "Call Trace",
		"kernel BUG", "Oops",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(what); i++)
		if (strstr(line, what[i]))
			return true;
	return false;
}

/* Reads the kernel log from @fd (non-blocking), counting the reports. */
static unsigned long kmsg_reports(int fd)
{
	unsigned long n = 0;
	char rec[2048];
	ssize_t len;

	for (;;) {
		char *msg;

		len = read(fd, rec, sizeof(rec) - 1);
		if (len < 0 && errno == EPIPE)	/* overwritten: go on */
			continue;
		if (len <= 0)
			break;
		rec[len] = '\0';
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		msg[strcspn(msg, "\n")] = '\0';
		if (is_report(msg)) {
			if (n < 5)
				ksft_print_msg("kernel: %s\n", msg);
			n++;
		}
	}
	return n;
}

int main(void)
{
	unsigned long scans0, scanned0, shared0, sharing0, t0, scans, scanned;
	unsigned long injected, reports;
	const char *ksm = getenv("KSM_RS_KSM");
	char times[32];
	long left;
	pid_t ksmd;
	bool ok;
	int kmsg;

	page_size = getpagesize();
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	if (geteuid())
		ksft_exit_skip("needs root\n");
	if (access(KSM_DIR "/run", W_OK))
		ksft_exit_skip("no writable " KSM_DIR "/run\n");
	if (access(FAILSLAB, F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	if (access(FAILSLAB "/probability", W_OK))
		ksft_exit_skip("no " FAILSLAB " (CONFIG_FAILSLAB, CONFIG_FAULT_INJECTION_DEBUG_FS: the debug flavour)\n");
	ksmd = ksmd_pid();
	if (!ksmd)
		ksft_exit_fail_msg("no ksmd\n");
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg < 0 || lseek(kmsg, 0, SEEK_END) < 0)
		ksft_exit_fail_msg("/dev/kmsg: %s\n", strerror(errno));
	ksft_set_plan(NR_TESTS);
	ksft_print_msg("implementation %s, ksmd pid %d\n", ksm ? ksm : "?", ksmd);
	atexit(restore_at_exit);
	signal(SIGALRM, on_alarm);
	alarm(600);

	if (!set_attr("run", "2") || !set_attr("advisor_mode", "none") ||
	    !set_attr("use_zero_pages", "0") || !set_attr("smart_scan", "0") ||
	    !set_attr("max_page_sharing", "256") ||
	    !set_attr("pages_to_scan", "2000") ||
	    !set_attr("sleep_millisecs", "10"))
		ksft_exit_fail_msg("setting up " KSM_DIR "\n");
	shared0 = ksm_ul("pages_shared");
	sharing0 = ksm_ul("pages_sharing");

	area = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	fill();
	if (madvise(area, NPAGES * page_size, MADV_MERGEABLE))
		ksft_exit_fail_msg("MADV_MERGEABLE: %s\n", strerror(errno));

	/* Every other slab allocation of ksmd fails from its first scan on. */
	stage = "scanning with failures";
	snprintf(ksmd_fail, sizeof(ksmd_fail), "/proc/%d/make-it-fail", ksmd);
	snprintf(times, sizeof(times), "%ld", FAIL_TIMES);
	ok = write_path(FAILSLAB "/probability", "0") &&
	     write_path(FAILSLAB "/task-filter", "Y") &&
	     write_path(FAILSLAB "/verbose", "0") &&
	     write_path(FAILSLAB "/interval", "1") &&
	     write_path(FAILSLAB "/space", "0") &&
	     write_path(FAILSLAB "/times", times) &&
	     write_path(FAILSLAB "/ignore-gfp-wait", "N") &&
	     write_path(FAILSLAB "/cache-filter", "N") &&
	     write_path(ksmd_fail, "1") &&
	     write_path(FAILSLAB "/probability", "50");
	if (!ok)
		ksft_exit_fail_msg("setting up failslab for ksmd: %s\n", strerror(errno));
	scans0 = ksm_ul("full_scans");
	scanned0 = ksm_ul("pages_scanned");
	t0 = now_ms();
	if (!set_attr("run", "1"))
		ksft_exit_fail_msg("run=1\n");
	while ((scans = ksm_ul("full_scans") - scans0) < FAIL_SCANS &&
	       now_ms() - t0 < FAIL_MS)
		usleep(20000);
	faults_off();
	scanned = ksm_ul("pages_scanned") - scanned0;
	left = read_long(FAILSLAB "/times");
	injected = left >= 0 ? FAIL_TIMES - left : 0;
	ksft_print_msg("with failures: %lu pages scanned, %lu full scans in %lu ms, %lu allocations of ksmd failed\n",
		       scanned, scans, now_ms() - t0, injected);
	ksft_test_result(injected > 0 && scanned > 0,
			 "ksmd scans on with every other slab allocation failed (%lu failed, %lu pages scanned)\n",
			 injected, scanned);

	reports = kmsg_reports(kmsg);
	ksft_test_result(!reports,
			 "no allocation failure report or splat in the kernel log (%lu)\n",
			 reports);

	/* The failures stopped: every pair merges. */
	stage = "merging after the failures";
	t0 = now_ms();
	while ((ksm_ul("pages_shared") - shared0 < NPAGES / 2 ||
		ksm_ul("pages_sharing") - sharing0 < NPAGES / 2) &&
	       now_ms() - t0 < MERGE_MS)
		usleep(20000);
	ksft_print_msg("pages_shared +%lu, pages_sharing +%lu after %lu ms\n",
		       ksm_ul("pages_shared") - shared0,
		       ksm_ul("pages_sharing") - sharing0, now_ms() - t0);
	ksft_test_result(ksm_ul("pages_shared") - shared0 == NPAGES / 2 &&
			 ksm_ul("pages_sharing") - sharing0 == NPAGES / 2 &&
			 !bad_pages(),
			 "then all %d pairs merge, data intact\n", NPAGES / 2);

	stage = "unmerging";
	ok = !madvise(area, NPAGES * page_size, MADV_UNMERGEABLE) && !bad_pages();
	munmap(area, NPAGES * page_size);
	ok &= saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
	reports = kmsg_reports(kmsg);
	ksft_test_result(ok && !reports,
			 "MADV_UNMERGEABLE, data intact, attributes put back, no report (%lu)\n",
			 reports);
	alarm(0);
	ksft_finished();
}
