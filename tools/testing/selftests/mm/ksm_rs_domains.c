// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs merge domains (/sys/kernel/mm/ksm/merge_scope): pages merge within
 * their memory cgroup, or their process and its forks, never across; checked
 * page by page with /proc/<pid>/pagemap frames and the KSM bit of
 * /proc/kpageflags, and with the domain counts of
 * /sys/kernel/debug/ksm_rs/domains. At the default (global) every process
 * merges with every other, as with mm/ksm.c. mm/ksm.c has no merge_scope: on
 * KSM=c the test checks that it is absent and that merging is global.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ksm_rs_util.h"

#define NPAGES		64
#define MAXPROCS	4
#define AREA		((void *)0x5a0000000000UL)
#define CG_ROOT		"/sys/fs/cgroup"
#define CG_A		CG_ROOT "/ksm_rs_domain_a"
#define CG_B		CG_ROOT "/ksm_rs_domain_b"
#define DOMAINS_FILE	"/sys/kernel/debug/ksm_rs/domains"
#define KPF_KSM		21

static size_t page_size;

static struct saved_attr saved[] = {
	{ "run" }, { "pages_to_scan" }, { "sleep_millisecs" },
	{ "merge_scope" }, { "use_zero_pages" }, { "max_page_sharing" },
};
#define NSAVED ARRAY_SIZE(saved)

/* What a process is, as it reports itself when ready. */
enum role { ALONE, PARENT, FORK };

struct proc {
	pid_t pid;
	enum role role;
};

static struct proc procs[MAXPROCS];
static int nprocs;
/* The processes we forked ourselves, ready or not. */
static pid_t kids[MAXPROCS];
static int nkids;

/* Page i of every process: the same NPAGES different contents. */
static void fill(char *area)
{
	for (int i = 0; i < NPAGES; i++) {
		memset(area + i * page_size, 'a' + i % 26, page_size);
		*(int *)(area + i * page_size) = i;
	}
}

static bool check_area(char *area)
{
	for (int i = 0; i < NPAGES; i++) {
		char *p = area + i * page_size;

		if (*(int *)p != i || p[page_size - 1] != 'a' + i % 26)
			return false;
	}
	return true;
}

static void move_self(const char *cgroup)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, "0", 1) != 1)
		_exit(3);
	close(fd);
}

/*
 * A started process: tells @ready_fd its pid and @role, then waits to be
 * killed, checking @area whenever a signal wakes it.
 */
static __noreturn void serve(int ready_fd, enum role role, char *area)
{
	struct proc me = { getpid(), role };

	if (write(ready_fd, &me, sizeof(me)) != sizeof(me))
		_exit(7);
	for (;;) {
		pause();
		if (!check_area(area))
			_exit(8);
	}
}

/*
 * Starts a process (in @cgroup if not NULL) with the NPAGES pages, mergeable,
 * which tells @ready_fd when it is ready and then waits to be killed; with
 * @forked, it forks a second one first, which writes its own copy of the
 * pages (same contents, other frames): both are returned.
 */
static int start(const char *cgroup, bool forked, int ready_fd)
{
	pid_t pid = fork();

	if (pid < 0)
		ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	if (pid > 0 && nkids < MAXPROCS)
		kids[nkids++] = pid;
	if (pid == 0) {
		char *area;

		/* Gone with the test, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (cgroup)
			move_self(cgroup);
		area = mmap(AREA, NPAGES * page_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			    -1, 0);
		if (area != AREA)
			_exit(4);
		fill(area);
		if (madvise(area, NPAGES * page_size, MADV_MERGEABLE))
			_exit(5);
		if (forked) {
			pid_t c = fork();

			if (c < 0)
				_exit(6);
			if (c == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				/* Own frames: a copy-on-write of every page. */
				fill(area);
				serve(ready_fd, FORK, area);
			}
		}
		serve(ready_fd, forked ? PARENT : ALONE, area);
	}
	return forked ? 2 : 1;
}

/*
 * Starts the processes, @n of them all in all, and waits until all are ready:
 * each writes its pid and role when it is.
 */
static bool start_all(const char * const cgroups[], const bool forked[], int starts,
		      int n)
{
	int fds[2], got = 0;

	if (pipe(fds))
		ksft_exit_fail_msg("pipe: %s\n", strerror(errno));
	for (int i = 0; i < starts; i++)
		start(cgroups[i], forked[i], fds[1]);
	close(fds[1]);
	nprocs = 0;
	while (got < n) {
		struct proc p;

		if (read(fds[0], &p, sizeof(p)) != sizeof(p) || p.pid <= 1)
			break;
		procs[nprocs++] = p;
		got++;
	}
	close(fds[0]);
	return got == n;
}

/* Kills the processes (and reaps the ones that are our children). */
static void stop_all(void)
{
	/* Never 0 or -1: those would kill the harness too. */
	for (int i = 0; i < nprocs; i++)
		if (procs[i].pid > 1)
			kill(procs[i].pid, SIGKILL);
	for (int i = 0; i < nkids; i++)
		kill(kids[i], SIGKILL);
	while (waitpid(-1, NULL, 0) > 0)
		;
	nprocs = 0;
	nkids = 0;
}

/* The frame of page @i of process @pid's area, 0 if it is not present. */
static uint64_t pfn_of(pid_t pid, int i)
{
	char path[64];
	uint64_t e = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e),
		  ((uintptr_t)AREA / page_size + i) * sizeof(e)) != sizeof(e))
		e = 0;
	close(fd);
	return (e >> 63) ? e & ((1ULL << 55) - 1) : 0;
}

static bool pfn_is_ksm(uint64_t pfn)
{
	uint64_t flags = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);

	if (fd < 0)
		return false;
	if (pread(fd, &flags, sizeof(flags), pfn * sizeof(flags)) != sizeof(flags))
		flags = 0;
	close(fd);
	return flags & (1ULL << KPF_KSM);
}

/*
 * Lets ksmd run until pages_shared and pages_sharing are @shared and
 * @sharing, for at most 10 full scans after they were first seen (merging
 * takes two) and 300 s.
 */
static bool wait_merged(unsigned long shared, unsigned long sharing)
{
	unsigned long start = now_ms(), full0 = ksm_ul("full_scans");

	if (!saved_attr_set(saved, NSAVED, "run", "1"))
		return false;
	for (;;) {
		unsigned long s = ksm_ul("pages_shared");
		unsigned long g = ksm_ul("pages_sharing");

		if (s == shared && g == sharing)
			return true;
		if (ksm_ul("full_scans") - full0 > 10 || now_ms() - start > 300000) {
			ksft_print_msg("pages_shared %lu pages_sharing %lu, expected %lu %lu after %lu full scans\n",
				       s, g, shared, sharing,
				       ksm_ul("full_scans") - full0);
			return false;
		}
		usleep(20000);
	}
}

/* Stops ksmd and unmerges everything (run=2). */
static bool unmerge_all(void)
{
	return saved_attr_set(saved, NSAVED, "run", "2") &&
	       saved_attr_set(saved, NSAVED, "run", "0");
}

/*
 * Whether process @a's page i and process @b's page i are one KSM page, for
 * every i (@same), or are all in other frames, none of them KSM (!@same).
 */
static bool check_pair(int a, int b, bool same)
{
	for (int i = 0; i < NPAGES; i++) {
		uint64_t pa = pfn_of(procs[a].pid, i), pb = pfn_of(procs[b].pid, i);

		if (!pa || !pb) {
			ksft_print_msg("page %d of %d or %d not present\n", i,
				       procs[a].pid, procs[b].pid);
			return false;
		}
		if (same && (pa != pb || !pfn_is_ksm(pa))) {
			ksft_print_msg("page %d: pid %d frame %#llx, pid %d frame %#llx (KSM %d): expected one KSM page\n",
				       i, procs[a].pid, (unsigned long long)pa,
				       procs[b].pid, (unsigned long long)pb,
				       pfn_is_ksm(pa));
			return false;
		}
		if (!same && pa == pb) {
			ksft_print_msg("page %d: pids %d and %d share frame %#llx across domains\n",
				       i, procs[a].pid, procs[b].pid,
				       (unsigned long long)pa);
			return false;
		}
	}
	return true;
}

/* Whether no page of process @a is a KSM page. */
static bool check_unmerged(int a)
{
	for (int i = 0; i < NPAGES; i++) {
		uint64_t pa = pfn_of(procs[a].pid, i);

		if (!pa || pfn_is_ksm(pa)) {
			ksft_print_msg("page %d of pid %d: frame %#llx, KSM %d\n",
				       i, procs[a].pid, (unsigned long long)pa,
				       pa ? pfn_is_ksm(pa) : -1);
			return false;
		}
	}
	return true;
}

/* Reads the domain lines of DOMAINS_FILE: up to @max (domain, shared, sharing). */
static int read_domains(unsigned long long dom[][3], int max, char *scope)
{
	char line[256];
	int n = 0;
	FILE *f = fopen(DOMAINS_FILE, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#') {
			if (sscanf(line, "# scope %31[a-z]", scope) != 1)
				scope[0] = '\0';
			continue;
		}
		if (n < max && sscanf(line, "%llu %llu %llu", &dom[n][0],
				      &dom[n][1], &dom[n][2]) == 3)
			n++;
	}
	fclose(f);
	return n;
}

static unsigned long long ino_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : st.st_ino;
}

static bool setup_cgroups(void)
{
	struct stat st;
	int fd;

	if (stat(CG_ROOT "/cgroup.procs", &st) &&
	    mount("none", CG_ROOT, "cgroup2", 0, NULL)) {
		ksft_print_msg("mounting cgroup2 on %s: %s\n", CG_ROOT, strerror(errno));
		return false;
	}
	fd = open(CG_ROOT "/cgroup.subtree_control", O_WRONLY);
	if (fd < 0 || write(fd, "+memory", 7) != 7) {
		ksft_print_msg("enabling the memory controller: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	if ((mkdir(CG_A, 0755) && errno != EEXIST) ||
	    (mkdir(CG_B, 0755) && errno != EEXIST)) {
		ksft_print_msg("mkdir: %s\n", strerror(errno));
		return false;
	}
	return true;
}

static void setup_debugfs(void)
{
	struct stat st;

	if (stat("/sys/kernel/debug/ksm_rs", &st))
		mount("none", "/sys/kernel/debug", "debugfs", 0, NULL);
}

static bool have_merge_scope, have_cgroups;

/* Default value, parsing, and EINVAL: the upstream defaults are untouched. */
static void test_knob(void)
{
	char buf[64];
	bool ok = true;

	expect(&ok, sysfs_read("merge_scope", buf, sizeof(buf)),
	       "merge_scope cannot be read: %s\n", strerror(errno));
	expect(&ok, !strcmp(buf, "[global] cgroup process"),
	       "merge_scope reads \"%s\"\n", buf);
	errno = 0;
	expect(&ok, !sysfs_write("merge_scope", "tenant") && errno == EINVAL,
	       "writing \"tenant\": errno %d, expected EINVAL\n", errno);
	expect(&ok, saved_attr_set(saved, NSAVED, "merge_scope", "process\n") &&
		    sysfs_read("merge_scope", buf, sizeof(buf)) &&
		    !strcmp(buf, "global cgroup [process]"),
	       "merge_scope after \"process\\n\" reads \"%s\"\n", buf);
	expect(&ok, saved_attr_set(saved, NSAVED, "merge_scope", "global"),
	       "back to global\n");
	ksft_test_result(ok, "merge_scope: \"[global] cgroup process\" by default, EINVAL for other words\n");
}

/* Two cgroups of two processes each: merged within each cgroup only. */
static void test_cgroup(void)
{
	static const char * const cg[] = { CG_A, CG_A, CG_B, CG_B };
	const bool forked[] = { false, false, false, false };
	unsigned long long dom[4][3] = { };
	unsigned long long ia = ino_of(CG_A), ib = ino_of(CG_B);
	char scope[32] = "";
	bool ok = true;
	int n;

	expect(&ok, saved_attr_set(saved, NSAVED, "merge_scope", "cgroup"),
	       "merge_scope cgroup\n");
	expect(&ok, start_all(cg, forked, 4, 4), "processes not started\n");
	if (ok) {
		/* In start order: procs 0 and 1 in A, 2 and 3 in B. */
		expect(&ok, wait_merged(2 * NPAGES, 2 * NPAGES),
		       "not merged as two domains\n");
	}
	if (ok) {
		/*
		 * The processes report in any order: pair them by cgroup,
		 * from /proc/<pid>/cgroup.
		 */
		int in_a[2], in_b[2], na = 0, nb = 0;

		for (int i = 0; i < 4; i++) {
			char path[64], line[256] = "";
			FILE *f;

			snprintf(path, sizeof(path), "/proc/%d/cgroup", procs[i].pid);
			f = fopen(path, "r");
			if (f) {
				if (!fgets(line, sizeof(line), f))
					line[0] = '\0';
				fclose(f);
			}
			if (strstr(line, "ksm_rs_domain_a") && na < 2)
				in_a[na++] = i;
			else if (strstr(line, "ksm_rs_domain_b") && nb < 2)
				in_b[nb++] = i;
		}
		expect(&ok, na == 2 && nb == 2, "cgroups of the processes: %d in A, %d in B\n",
		       na, nb);
		if (ok) {
			expect(&ok, check_pair(in_a[0], in_a[1], true), "A not merged\n");
			expect(&ok, check_pair(in_b[0], in_b[1], true), "B not merged\n");
			expect(&ok, check_pair(in_a[0], in_b[0], false), "A and B merged\n");
		}
	}
	n = read_domains(dom, 4, scope);
	expect(&ok, n == 2 && !strcmp(scope, "cgroup"),
	       "%s: %d domains, scope \"%s\"\n", DOMAINS_FILE, n, scope);
	for (int i = 0; ok && i < n; i++)
		expect(&ok, (dom[i][0] == ia || dom[i][0] == ib) &&
			    dom[i][1] == NPAGES && dom[i][2] == NPAGES,
		       "domain %llu: %llu shared %llu sharing (cgroups %llu, %llu)\n",
		       dom[i][0], dom[i][1], dom[i][2], ia, ib);
	/* KSM pages exist: the scope cannot change (as merge_across_nodes). */
	errno = 0;
	expect(&ok, !sysfs_write("merge_scope", "global") && errno == EBUSY,
	       "merge_scope changed with KSM pages: errno %d, expected EBUSY\n", errno);
	stop_all();
	expect(&ok, unmerge_all(), "run=2\n");
	ksft_test_result(ok, "merge_scope=cgroup: two cgroups of two processes merge %d pages within each, none across; EBUSY while merged\n",
			 NPAGES);
}

/*
 * A process and its fork, and another process: the fork merges with its
 * parent, the other process with nobody.
 */
static void test_process(void)
{
	static const char * const cg[] = { NULL, NULL };
	const bool forked[] = { true, false };
	unsigned long long dom[4][3] = { };
	char scope[32] = "";
	bool ok = true;
	int n, lone = -1, pair[2] = { -1, -1 }, np = 0;

	expect(&ok, saved_attr_set(saved, NSAVED, "merge_scope", "process"),
	       "merge_scope process\n");
	expect(&ok, start_all(cg, forked, 2, 3), "processes not started\n");
	if (ok)
		expect(&ok, wait_merged(NPAGES, NPAGES), "not merged as one pair\n");
	if (ok) {
		/* Each process said what it is. */
		for (int i = 0; i < 3; i++) {
			if (procs[i].role == ALONE)
				lone = i;
			else
				pair[np++ & 1] = i;
		}
		expect(&ok, np == 2 && lone >= 0, "could not tell the processes apart\n");
		if (ok) {
			expect(&ok, check_pair(pair[0], pair[1], true),
			       "the fork did not merge with its parent\n");
			expect(&ok, check_unmerged(lone), "the other process merged\n");
		}
	}
	n = read_domains(dom, 4, scope);
	expect(&ok, n == 1 && !strcmp(scope, "process") && dom[0][1] == NPAGES &&
		    dom[0][2] == NPAGES,
	       "%s: %d domains, scope \"%s\", first %llu: %llu shared %llu sharing\n",
	       DOMAINS_FILE, n, scope, dom[0][0], dom[0][1], dom[0][2]);
	stop_all();
	expect(&ok, unmerge_all(), "run=2\n");
	ksft_test_result(ok, "merge_scope=process: a process merges with its fork, not with another process\n");
}

/* The default: all of them merge (the test can see merges across processes). */
static void test_global(void)
{
	const char * const cg[] = { have_cgroups ? CG_A : NULL,
				    have_cgroups ? CG_B : NULL, NULL };
	const bool forked[] = { false, false, false };
	unsigned long long dom[4][3] = { };
	char scope[32] = "";
	bool ok = true;
	int n;

	if (have_merge_scope)
		expect(&ok, saved_attr_set(saved, NSAVED, "merge_scope", "global"),
		       "merge_scope global\n");
	expect(&ok, start_all(cg, forked, 3, 3), "processes not started\n");
	if (ok)
		expect(&ok, wait_merged(NPAGES, 2 * NPAGES), "not merged as one domain\n");
	if (ok) {
		expect(&ok, check_pair(0, 1, true), "processes 0 and 1 not merged\n");
		expect(&ok, check_pair(0, 2, true), "processes 0 and 2 not merged\n");
	}
	if (have_merge_scope) {
		n = read_domains(dom, 4, scope);
		expect(&ok, n == 1 && !strcmp(scope, "global") && dom[0][0] == 0 &&
			    dom[0][1] == NPAGES && dom[0][2] == 2 * NPAGES,
		       "%s: %d domains, scope \"%s\", first %llu: %llu %llu\n",
		       DOMAINS_FILE, n, scope, dom[0][0], dom[0][1], dom[0][2]);
	}
	stop_all();
	expect(&ok, unmerge_all(), "run=2\n");
	ksft_test_result(ok, "merge_scope=global%s: processes of two cgroups%s and none merge together\n",
			 have_merge_scope ? "" : " (KSM=c)", have_cgroups ? "" : " (no cgroup2: all in one)");
}

int main(void)
{
	struct stat st;

	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	if (geteuid())
		ksft_exit_skip("needs root\n");
	have_merge_scope = !stat(KSM_DIR "/merge_scope", &st);
	have_cgroups = setup_cgroups();
	setup_debugfs();
	ksft_set_plan(have_merge_scope ? 4 : 2);
	if (!saved_attr_set(saved, NSAVED, "run", "2") ||
	    !saved_attr_set(saved, NSAVED, "run", "0") ||
	    !saved_attr_set(saved, NSAVED, "pages_to_scan", "2000") ||
	    !saved_attr_set(saved, NSAVED, "sleep_millisecs", "10") ||
	    !saved_attr_set(saved, NSAVED, "use_zero_pages", "0") ||
	    !saved_attr_set(saved, NSAVED, "max_page_sharing", "256"))
		ksft_exit_fail_msg("setting up KSM failed\n");
	if (have_merge_scope) {
		test_knob();
		if (have_cgroups)
			test_cgroup();
		else
			ksft_test_result_fail("merge_scope=cgroup: no cgroup2 with memory\n");
		test_process();
	} else {
		ksft_test_result(!strcmp(getenv("KSM_RS_KSM") ?: "c", "c"),
				 "no %s/merge_scope: mm/ksm.c (KSM_RS_KSM=%s)\n",
				 KSM_DIR, getenv("KSM_RS_KSM") ?: "unset");
	}
	test_global();
	if (!saved_attrs_restore(saved, NSAVED, true))
		ksft_print_msg("restoring the KSM attributes failed\n");
	rmdir(CG_A);
	rmdir(CG_B);
	ksft_finished();
}
