// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_trace: the KSM tracepoints of include/trace/events/ksm.h, read
 * through tracefs as perf, trace-cmd and bpftrace scripts read them, so that
 * the same test passes on mm/ksm.c and on a KSM that claims to fire them
 * where mm/ksm.c does:
 *
 *  - all nine events exist, with the fields of the header;
 *  - ksm_enter and ksm_exit name the same mm, for a process that registers
 *    and exits;
 *  - merging N identical pages fires ksm_merge_with_ksm_page with error 0
 *    once without a KSM page (the page made a KSM page in place) and N - 1
 *    times with one, each time with the KSM page's pfn, the process's mm and
 *    a different rmap_item; full scans fire ksm_start_scan and ksm_stop_scan
 *    with consecutive sequence numbers, in pairs;
 *  - a KSM page freed under its mappings (munmap while ksmd sleeps) fires,
 *    when run=2 drops its stable node, ksm_remove_rmap_item for every mapping
 *    but the last one, with rmap_items that merged, and ksm_remove_ksm_page,
 *    both with the KSM page's pfn (remove_node_from_stable_tree);
 *  - with use_zero_pages, each zero-filled page mapped to the zero page fires
 *    ksm_merge_one_page with the zero page's pfn;
 *  - the scan-time advisor fires ksm_advisor with the pages_to_scan it set.
 *
 * Pointers are read unhashed (the hash-ptr trace option off), to compare
 * them. Every attribute of /sys/kernel/mm/ksm and of tracefs that is changed
 * is put back at exit.
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
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_rs_util.h"
#include "vm_util.h"

#define NR_TESTS	6
#define NR_PAGES	32
#define NR_ZERO		16
#define WAIT_MS		120000
#define MAX_EVENTS	4096
#define TOKEN_LEN	32

static struct saved_attr saved_attrs[] = {
	{ .name = "run" },
	{ .name = "sleep_millisecs" },
	{ .name = "pages_to_scan" },
	{ .name = "smart_scan" },
	{ .name = "use_zero_pages" },
	{ .name = "advisor_mode" },
};
#define SET(attr, val) saved_attr_set(saved_attrs, ARRAY_SIZE(saved_attrs), attr, val)

static const char *tracefs;
static char saved_hash_ptr[8], saved_buffer_kb[32];
static long page_size;

static const char *const event_names[] = {
	"ksm_start_scan", "ksm_stop_scan", "ksm_enter", "ksm_exit",
	"ksm_merge_one_page", "ksm_merge_with_ksm_page", "ksm_remove_ksm_page",
	"ksm_remove_rmap_item", "ksm_advisor",
};

/* The fields of each event in include/trace/events/ksm.h, in order. */
static const char *const event_fields[] = {
	"int seq;u32 rmap_entries;",
	"int seq;u32 rmap_entries;",
	"void * mm;",
	"void * mm;",
	"unsigned long pfn;void * rmap_item;void * mm;int err;",
	"void * ksm_page;unsigned long pfn;void * rmap_item;void * mm;int err;",
	"unsigned long pfn;",
	"unsigned long pfn;void * rmap_item;void * mm;",
	"s64 scan_time;unsigned long pages_to_scan;unsigned int cpu_percent;",
};

static bool trace_write(const char *file, const char *val)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tracefs, file);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return false;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val);
}

/* Reads a tracefs file into a malloc'ed string (NULL on failure). */
static char *trace_read(const char *file)
{
	size_t len = 0, cap = 1 << 16;
	char path[256], *buf;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tracefs, file);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	while (buf) {
		if (len + 4096 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				break;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	if (buf)
		buf[len] = '\0';
	return buf;
}

static bool trace_read_word(const char *file, char *out, size_t n)
{
	char *s = trace_read(file);

	if (!s)
		return false;
	snprintf(out, n, "%s", s);
	out[strcspn(out, "\n")] = '\0';
	free(s);
	return true;
}

/* Enables exactly the events named in @names (a NULL-terminated list). */
static bool events_only(const char *const *names)
{
	char file[128];
	bool ok = trace_write("events/ksm/enable", "0");

	for (; ok && *names; names++) {
		snprintf(file, sizeof(file), "events/ksm/%s/enable", *names);
		ok = trace_write(file, "1");
	}
	return ok && trace_write("trace", "");
}

static void restore(void)
{
	if (tracefs) {
		trace_write("events/ksm/enable", "0");
		trace_write("trace", "");
		if (saved_hash_ptr[0])
			trace_write("options/hash-ptr", saved_hash_ptr);
		if (saved_buffer_kb[0])
			trace_write("buffer_size_kb", saved_buffer_kb);
	}
	saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
}

static void on_signal(int sig)
{
	restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One event of the trace. */
struct event {
	char name[32];
	int pid;
	char payload[160];
};

static struct event events[MAX_EVENTS];
static int nr_events;

/*
 * Parses the trace: lines "  comm-PID  [CPU] flags  TIME: NAME: PAYLOAD".
 * Returns false if events were lost (a "LOST" line or a full table).
 */
static bool read_events(void)
{
	char *buf = trace_read("trace"), *line, *save = NULL;
	bool ok = true;

	nr_events = 0;
	if (!buf)
		return false;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *br, *p, *name, *colon;
		struct event *e;

		if (line[0] == '#')
			continue;
		if (strstr(line, "LOST")) {
			ok = false;
			continue;
		}
		name = strstr(line, ": ksm_");
		br = strstr(line, " [");
		if (!name || !br || br > name)
			continue;
		if (nr_events == MAX_EVENTS) {
			ok = false;
			break;
		}
		e = &events[nr_events];
		p = br;
		while (p > line && p[-1] == ' ')
			p--;
		while (p > line && p[-1] >= '0' && p[-1] <= '9')
			p--;
		e->pid = atoi(p);
		name += 2;
		colon = strchr(name, ':');
		if (!colon || colon - name >= (long)sizeof(e->name))
			continue;
		memcpy(e->name, name, colon - name);
		e->name[colon - name] = '\0';
		snprintf(e->payload, sizeof(e->payload), "%s", colon + 2);
		nr_events++;
	}
	free(buf);
	return ok;
}

/* Copies the word after "@key " in @payload to @out; false if none. */
static bool field(const struct event *e, const char *key, char *out)
{
	size_t klen = strlen(key);
	const char *p = e->payload;

	while ((p = strstr(p, key))) {
		if ((p == e->payload || p[-1] == ' ') && p[klen] == ' ') {
			p += klen + 1;
			snprintf(out, TOKEN_LEN, "%.*s", (int)strcspn(p, " "), p);
			return true;
		}
		p += klen;
	}
	return false;
}

static unsigned long field_ul(const struct event *e, const char *key)
{
	char tok[TOKEN_LEN];

	return field(e, key, tok) ? strtoul(tok, NULL, 10) : ULONG_MAX;
}

static bool is(const struct event *e, const char *name)
{
	return !strcmp(e->name, name);
}

/* The pfn mapped at @addr (/proc/self/pagemap), 0 if none. */
static unsigned long pfn_of(void *addr)
{
	uint64_t ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, sizeof(ent), (uintptr_t)addr / page_size * sizeof(ent)) != sizeof(ent))
		ent = 0;
	close(fd);
	return (ent >> 63) ? ent & ((1ULL << 55) - 1) : 0;
}

static long proc_self_long(const char *file, const char *key)
{
	char line[256];
	long val = -1;
	FILE *f = fopen(file, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!key) {
			val = strtol(line, NULL, 10);
			break;
		}
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ' ') {
			val = strtol(line + strlen(key) + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static long merging_pages(void)
{
	return proc_self_long("/proc/self/ksm_merging_pages", NULL);
}

/* Waits until cond() holds, at most WAIT_MS. */
static bool wait_for(bool (*cond)(void))
{
	unsigned long end = now_ms() + WAIT_MS;

	while (!cond()) {
		if (now_ms() > end)
			return false;
		usleep(20000);
	}
	return true;
}

static bool all_merged(void)
{
	return merging_pages() == NR_PAGES;
}

static bool zero_merged(void)
{
	return proc_self_long("/proc/self/ksm_stat", "ksm_zero_pages") == NR_ZERO;
}

static unsigned long scans_target;

static bool scans_done(void)
{
	return ksm_ul("full_scans") >= scans_target;
}

/* The mm of this process: the one ksm_enter named when it registered. */
static char my_mm[TOKEN_LEN];

static void test_formats(void)
{
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(event_names); i++) {
		char file[128], got[512] = "", *fmt, *p;

		snprintf(file, sizeof(file), "events/ksm/%s/format", event_names[i]);
		fmt = trace_read(file);
		expect(&ok, fmt, "%s: cannot read %s/%s\n", event_names[i], tracefs, file);
		if (!fmt)
			continue;
		for (p = fmt; (p = strstr(p, "field:")); p++) {
			char one[128];

			snprintf(one, sizeof(one), "%.*s;", (int)strcspn(p + 6, ";"), p + 6);
			if (strstr(one, " common_"))
				continue;
			if (strlen(got) + strlen(one) < sizeof(got))
				strcat(got, one);
		}
		expect(&ok, !strcmp(got, event_fields[i]), "%s: fields \"%s\", expected \"%s\"\n",
		       event_names[i], got, event_fields[i]);
		free(fmt);
	}
	ksft_test_result(ok, "the nine events of include/trace/events/ksm.h, with their fields\n");
}

static void test_enter_exit(void)
{
	static const char *const names[] = { "ksm_enter", "ksm_exit", NULL };
	char enter_mm[TOKEN_LEN] = "", tok[TOKEN_LEN];
	int i, status, exits = 0;
	bool ok = true;
	pid_t pid;

	if (!events_only(names)) {
		ksft_test_result_fail("ksm_enter/ksm_exit: cannot enable the events\n");
		return;
	}
	pid = fork();
	if (pid == 0) {
		char *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		_exit(p == MAP_FAILED || madvise(p, page_size, MADV_MERGEABLE));
	}
	waitpid(pid, &status, 0);
	/* __ksm_exit() runs in the last mmput(), maybe in ksmd's context. */
	usleep(200000);
	expect(&ok, WIFEXITED(status) && !WEXITSTATUS(status), "child: madvise failed\n");
	expect(&ok, read_events(), "events lost\n");
	for (i = 0; i < nr_events; i++)
		if (is(&events[i], "ksm_enter") && events[i].pid == pid)
			field(&events[i], "mm", enter_mm);
	expect(&ok, enter_mm[0], "no ksm_enter from pid %d (%d events)\n", pid, nr_events);
	for (i = 0; i < nr_events; i++)
		if (is(&events[i], "ksm_exit") && field(&events[i], "mm", tok) &&
		    !strcmp(tok, enter_mm))
			exits++;
	expect(&ok, exits == 1, "%d ksm_exit events for mm %s, expected 1\n", exits, enter_mm);
	ksft_test_result(ok, "ksm_enter and ksm_exit: one each, for the same mm\n");
}

static unsigned long ksm_pfn;
static char merged_items[NR_PAGES][TOKEN_LEN];
static int nr_merged_items;

static void test_merge(char *area)
{
	static const char *const names[] = {
		"ksm_enter", "ksm_start_scan", "ksm_stop_scan", "ksm_merge_with_ksm_page", NULL
	};
	int i, j, own = 0, with = 0, failed = 0, starts = 0, pairs = 0, last_seq = -1;
	unsigned long last_entries = 0;
	bool ok = true, in_scan = false;
	char tok[TOKEN_LEN];

	if (!SET("run", "0") || !events_only(names)) {
		ksft_test_result_fail("merge: cannot set up\n");
		return;
	}
	memset(area, 0x5a, NR_PAGES * page_size);
	if (madvise(area, NR_PAGES * page_size, MADV_MERGEABLE)) {
		ksft_test_result_fail("merge: MADV_MERGEABLE: %s\n", strerror(errno));
		return;
	}
	if (!SET("run", "1") || !wait_for(all_merged)) {
		ksft_test_result_fail("merge: %ld of %d pages merged\n", merging_pages(), NR_PAGES);
		return;
	}
	SET("run", "0");
	ksm_pfn = pfn_of(area);
	for (i = 1; i < NR_PAGES; i++)
		expect(&ok, pfn_of(area + i * page_size) == ksm_pfn,
		       "page %d maps pfn %lu, page 0 pfn %lu\n", i,
		       pfn_of(area + i * page_size), ksm_pfn);
	expect(&ok, read_events(), "events lost\n");
	for (i = 0; i < nr_events; i++)
		if (is(&events[i], "ksm_enter") && events[i].pid == getpid())
			field(&events[i], "mm", my_mm);
	expect(&ok, my_mm[0], "no ksm_enter from this process\n");

	for (i = 0; i < nr_events; i++) {
		struct event *e = &events[i];

		if (is(e, "ksm_start_scan")) {
			int seq = field_ul(e, "seq");

			expect(&ok, last_seq < 0 || seq == last_seq + 1,
			       "ksm_start_scan seq %d after seq %d\n", seq, last_seq);
			expect(&ok, !in_scan, "ksm_start_scan seq %d inside a scan\n", seq);
			last_seq = seq;
			in_scan = true;
			starts++;
		} else if (is(e, "ksm_stop_scan")) {
			int seq = field_ul(e, "seq");

			/* The trace may start in the middle of a scan. */
			if (starts) {
				expect(&ok, in_scan && seq == last_seq,
				       "ksm_stop_scan seq %d, last start seq %d\n", seq, last_seq);
				pairs++;
			}
			in_scan = false;
			last_entries = field_ul(e, "size");
		} else if (is(e, "ksm_merge_with_ksm_page")) {
			bool mine = field(e, "mm", tok) && !strcmp(tok, my_mm);

			if (!mine)
				continue;
			if (field_ul(e, "error")) {
				failed++;
				continue;
			}
			if (!strncmp(e->payload, "ksm ", 4))
				with++;
			else
				own++;
			expect(&ok, field_ul(e, "pfn") == ksm_pfn,
			       "%s: pfn is not the KSM page's %lu\n", e->payload, ksm_pfn);
			field(e, "rmap_item", tok);
			for (j = 0; j < nr_merged_items; j++)
				expect(&ok, strcmp(merged_items[j], tok),
				       "rmap_item %s merged twice\n", tok);
			if (nr_merged_items < NR_PAGES)
				snprintf(merged_items[nr_merged_items++], TOKEN_LEN, "%s", tok);
		}
	}
	expect(&ok, own == 1 && with == NR_PAGES - 1,
	       "merges with error 0: %d without a KSM page (expected 1), %d with one (expected %d)\n",
	       own, with, NR_PAGES - 1);
	expect(&ok, pairs >= 1, "%d ksm_start_scan/ksm_stop_scan pairs\n", pairs);
	expect(&ok, last_entries != ULONG_MAX && last_entries >= NR_PAGES,
	       "last ksm_stop_scan: rmap size %lu, expected at least %d\n", last_entries, NR_PAGES);
	ksft_print_msg("merge: %d + %d merges, %d failed attempts, %d scans (seq up to %d)\n",
		       own, with, failed, pairs, last_seq);
	ksft_test_result(ok, "ksm_merge_with_ksm_page per merged page, ksm_start_scan/ksm_stop_scan in pairs\n");
}

static void test_remove(char *area)
{
	static const char *const names[] = { "ksm_remove_rmap_item", "ksm_remove_ksm_page", NULL };
	int i, j, items = 0, pages = 0, strangers = 0;
	char tok[TOKEN_LEN];
	bool ok = true;
	int fd;

	if (!ksm_pfn || !my_mm[0] || !events_only(names)) {
		ksft_test_result_skip("remove: no KSM page from the merge test\n");
		return;
	}
	/* ksmd sleeps (run=0): the KSM page goes, its stable node stays. */
	munmap(area, NR_PAGES * page_size);
	/* Compaction drains the per-CPU LRU batches that may hold the page. */
	fd = open("/proc/sys/vm/compact_memory", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			ksft_print_msg("compact_memory: %s\n", strerror(errno));
		close(fd);
	}
	if (!SET("run", "2")) {
		ksft_test_result_fail("remove: run=2 failed\n");
		return;
	}
	expect(&ok, read_events(), "events lost\n");
	for (i = 0; i < nr_events; i++) {
		struct event *e = &events[i];

		if (field_ul(e, "pfn") != ksm_pfn)
			continue;
		if (is(e, "ksm_remove_ksm_page")) {
			pages++;
			continue;
		}
		items++;
		expect(&ok, field(e, "mm", tok) && !strcmp(tok, my_mm),
		       "%s: not this process's mm %s\n", e->payload, my_mm);
		field(e, "rmap_item", tok);
		for (j = 0; j < nr_merged_items && strcmp(merged_items[j], tok); j++)
			;
		if (j == nr_merged_items)
			strangers++;
	}
	expect(&ok, pages == 1, "%d ksm_remove_ksm_page events for pfn %lu, expected 1\n",
	       pages, ksm_pfn);
	expect(&ok, items == NR_PAGES - 1,
	       "%d ksm_remove_rmap_item events for pfn %lu, expected %d\n", items, ksm_pfn,
	       NR_PAGES - 1);
	expect(&ok, !strangers, "%d of them for an rmap_item that never merged\n", strangers);
	ksft_test_result(ok, "a freed KSM page's node dropped: ksm_remove_rmap_item per mapping but one, ksm_remove_ksm_page\n");
}

static void test_zero_pages(void)
{
	static const char *const names[] = { "ksm_merge_one_page", NULL };
	char *area, *hole, tok[TOKEN_LEN];
	unsigned long zero_pfn;
	int i, merged = 0;
	bool ok = true;

	area = mmap(NULL, (NR_ZERO + 1) * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || !SET("run", "0") || !SET("use_zero_pages", "1") ||
	    !events_only(names)) {
		ksft_test_result_fail("zero pages: cannot set up\n");
		return;
	}
	/* A read fault maps the zero page: its pfn. */
	hole = area + NR_ZERO * page_size;
	FORCE_READ(*hole);
	zero_pfn = pfn_of(hole);
	memset(area, 0, NR_ZERO * page_size);
	if (madvise(area, NR_ZERO * page_size, MADV_MERGEABLE) || !SET("run", "1") ||
	    !wait_for(zero_merged)) {
		ksft_test_result_fail("zero pages: ksm_zero_pages %ld, expected %d\n",
				      proc_self_long("/proc/self/ksm_stat", "ksm_zero_pages"),
				      NR_ZERO);
		SET("run", "0");
		munmap(area, (NR_ZERO + 1) * page_size);
		return;
	}
	SET("run", "0");
	expect(&ok, read_events(), "events lost\n");
	for (i = 0; i < nr_events; i++) {
		struct event *e = &events[i];

		if (!field(e, "mm", tok) || strcmp(tok, my_mm) || field_ul(e, "error"))
			continue;
		merged++;
		expect(&ok, field_ul(e, "pfn") == zero_pfn, "%s: not the zero page's pfn %lu\n",
		       e->payload, zero_pfn);
	}
	expect(&ok, zero_pfn, "no pfn for the zero page\n");
	expect(&ok, merged == NR_ZERO, "%d ksm_merge_one_page events with error 0, expected %d\n",
	       merged, NR_ZERO);
	munmap(area, (NR_ZERO + 1) * page_size);
	SET("use_zero_pages", "0");
	ksft_test_result(ok, "ksm_merge_one_page per page mapped to the zero page\n");
}

static void test_advisor(void)
{
	static const char *const names[] = { "ksm_advisor", NULL };
	unsigned long pages = ULONG_MAX;
	int i, n = 0;
	bool ok = true;
	char *area;

	area = mmap(NULL, NR_PAGES * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || !SET("run", "0") || !events_only(names)) {
		ksft_test_result_fail("advisor: cannot set up\n");
		return;
	}
	memset(area, 0x33, NR_PAGES * page_size);
	madvise(area, NR_PAGES * page_size, MADV_MERGEABLE);
	if (!SET("advisor_mode", "scan-time") || !SET("run", "1")) {
		ksft_test_result_fail("advisor: cannot start the scan-time advisor\n");
		munmap(area, NR_PAGES * page_size);
		return;
	}
	scans_target = ksm_ul("full_scans") + 3;
	expect(&ok, wait_for(scans_done), "full_scans stuck at %lu\n", ksm_ul("full_scans"));
	SET("run", "0");
	expect(&ok, read_events(), "events lost\n");
	for (i = 0; i < nr_events; i++) {
		if (!is(&events[i], "ksm_advisor"))
			continue;
		n++;
		pages = field_ul(&events[i], "pages_to_scan");
		expect(&ok, field_ul(&events[i], "time") >= 1 && field_ul(&events[i], "percent") >= 1,
		       "ksm_advisor: %s\n", events[i].payload);
	}
	expect(&ok, n >= 2, "%d ksm_advisor events in 3 full scans\n", n);
	expect(&ok, pages == ksm_ul("pages_to_scan"),
	       "last ksm_advisor pages_to_scan %lu, the attribute %lu\n", pages,
	       ksm_ul("pages_to_scan"));
	SET("advisor_mode", "none");
	munmap(area, NR_PAGES * page_size);
	ksft_test_result(ok, "ksm_advisor at the end of each full scan, with the pages_to_scan it set\n");
}

int main(void)
{
	char *area;

	ksft_print_header();
	page_size = sysconf(_SC_PAGESIZE);
	if (access(KSM_DIR "/run", W_OK))
		ksft_exit_skip("%s/run is not writable (not root, or no KSM)\n", KSM_DIR);
	if (access("/sys/kernel/tracing/events", F_OK))
		mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL);
	if (!access("/sys/kernel/tracing/events", F_OK))
		tracefs = "/sys/kernel/tracing";
	else if (!access("/sys/kernel/debug/tracing/events", F_OK))
		tracefs = "/sys/kernel/debug/tracing";
	else
		ksft_exit_skip("no tracefs events (CONFIG_EVENT_TRACING off?)\n");
	ksft_set_plan(NR_TESTS);
	/* With event tracing, a KSM without its events fails every test. */
	if (access("/sys/kernel/tracing/events/ksm", F_OK) &&
	    access("/sys/kernel/debug/tracing/events/ksm", F_OK))
		ksft_exit_fail_msg("%s/events has no ksm events\n", tracefs);

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	atexit(restore);
	trace_read_word("options/hash-ptr", saved_hash_ptr, sizeof(saved_hash_ptr));
	trace_read_word("buffer_size_kb", saved_buffer_kb, sizeof(saved_buffer_kb));
	/* Pointers unhashed, to compare them; room for every event of a test. */
	if (!trace_write("options/hash-ptr", "0") || !trace_write("buffer_size_kb", "4096"))
		ksft_exit_fail_msg("cannot set up tracefs at %s\n", tracefs);
	/* ksmd unthrottled, but sleeping 10 ms between batches, not to flood the trace. */
	if (!SET("run", "0") || !SET("sleep_millisecs", "10") || !SET("pages_to_scan", "1000") ||
	    !SET("smart_scan", "0") || !SET("use_zero_pages", "0") || !SET("advisor_mode", "none"))
		ksft_exit_fail_msg("cannot set the KSM attributes\n");

	area = mmap(NULL, NR_PAGES * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));

	test_formats();
	test_enter_exit();
	test_merge(area);
	test_remove(area);
	test_zero_pages();
	test_advisor();

	restore();
	ksft_finished();
}
