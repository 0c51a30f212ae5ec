// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_merge_now: merging on demand, /sys/kernel/mm/ksm/merge_now (a
 * Rust-only extension of ksm_rs; see Documentation/mm/ksm_rs.rst).
 *
 * Writing "<pid> <start> <end>" scans the pages of process <pid> in
 * [start, end) once against KSM's trees, synchronously. With ksmd stopped
 * (run=0) this checks:
 *
 *  - the file is write-only (mode 0200, a read fails);
 *  - two processes of identical contents, each given a merge_now, end fully
 *    merged (pages_shared and pages_sharing, /proc/<pid>/ksm_merging_pages)
 *    with their data intact, and full_scans unchanged (not ksmd's doing);
 *  - the errors: EINVAL for a malformed line, an unaligned start,
 *    end <= start, an overflow and a process not registered with KSM; ESRCH
 *    for no such process, a zombie and a kernel thread; EPERM without
 *    CAP_SYS_ADMIN (the file opened as root first); EBUSY at run=2;
 *  - a range that is not mergeable (no MADV_MERGEABLE) merges nothing; a
 *    range partly unmapped merges what is mapped;
 *  - processes killed while a merge_now scans them, and a writer killed
 *    during a write (the kernel must stay consistent: run=2 then leaves no
 *    KSM page behind).
 *
 * On KSM=c (KSM_RS_KSM=c, set by the ksm-rs VM) there is no merge_now: the
 * test checks that it is absent and that ksmd still merges the same two
 * processes as before (the C behaviour unchanged).
 *
 * Every attribute of /sys/kernel/mm/ksm that is changed is put back to its
 * value at start. Waits count ksmd's full scans, with a generous timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_rs_util.h"

#define MERGE_NOW		KSM_DIR "/merge_now"
#define NR_TESTS		17
#define NR_TESTS_C		2
#define NPAGES			256
#define BIG_PAGES		16384
#define SEED_SAME		0x5eedULL
#define SEED_OTHER		0x0dd5eedULL
#define RACE_ROUNDS		24
#define C_TIMEOUT_MS		600000
#define C_FULL_SCANS		8

static unsigned long page_size;

static struct saved_attr saved[] = {
	{ .name = "run" },
	{ .name = "pages_to_scan" },
	{ .name = "sleep_millisecs" },
};

/* ---- child processes holding memory ---- */

enum child_kind {
	MERGEABLE,	/* NPAGES pages, MADV_MERGEABLE */
	SPLIT,		/* NPAGES pages not mergeable, 4 mergeable elsewhere */
	PLAIN,		/* NPAGES pages, the process never registered */
	BIG,		/* BIG_PAGES pages, MADV_MERGEABLE */
};

struct child {
	pid_t pid;
	int cmd;	/* parent -> child */
	int reply;	/* child -> parent */
	unsigned long addr;
};

static void fill(char *p, size_t npages, uint64_t seed)
{
	size_t i, j;

	for (i = 0; i < npages; i++) {
		uint64_t *w = (uint64_t *)(p + i * page_size);

		for (j = 0; j < page_size / sizeof(*w); j++)
			w[j] = (i * 0x9e3779b97f4a7c15ULL) ^ (j << 20) ^ seed;
	}
}

/* Whether page @i at @p has its contents. */
static bool page_intact(const char *p, size_t i, uint64_t seed)
{
	const uint64_t *w = (const uint64_t *)(p + i * page_size);
	size_t j;

	for (j = 0; j < page_size / sizeof(*w); j++)
		if (w[j] != ((i * 0x9e3779b97f4a7c15ULL) ^ (j << 20) ^ seed))
			return false;
	return true;
}

static char *map_pages(size_t npages)
{
	char *p = mmap(NULL, npages * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Small pages only: THPs are not what this test is about. */
	madvise(p, npages * page_size, MADV_NOHUGEPAGE);
	return p;
}

static void child_main(enum child_kind kind, uint64_t seed, int cmd, int reply)
{
	size_t npages = kind == BIG ? BIG_PAGES : NPAGES;
	bool unmapped = false;
	char *p = map_pages(npages), *other;
	unsigned long addr = (unsigned long)p;
	size_t i;
	char c;

	if (!p)
		_exit(2);
	if ((kind == MERGEABLE || kind == BIG) &&
	    madvise(p, npages * page_size, MADV_MERGEABLE))
		_exit(3);
	if (kind == SPLIT) {
		other = map_pages(4);
		if (!other || madvise(other, 4 * page_size, MADV_MERGEABLE))
			_exit(3);
		fill(other, 4, SEED_OTHER);
	}
	fill(p, npages, seed);
	if (write(reply, &addr, sizeof(addr)) != sizeof(addr))
		_exit(4);
	while (read(cmd, &c, 1) == 1) {
		bool ok = true;

		switch (c) {
		case 'c':	/* check the contents */
			for (i = 0; i < NPAGES; i++) {
				if (unmapped && i >= NPAGES / 4 && i < 3 * NPAGES / 4)
					continue;
				ok &= page_intact(p, i, seed);
			}
			break;
		case 'u':	/* unmap the middle half */
			ok = !munmap(p + NPAGES / 4 * page_size,
				     NPAGES / 2 * page_size);
			unmapped = true;
			break;
		default:
			_exit(0);
		}
		c = ok ? 'y' : 'n';
		if (write(reply, &c, 1) != 1)
			_exit(5);
	}
	_exit(0);
}

static bool spawn(struct child *ch, enum child_kind kind, uint64_t seed)
{
	int to[2], from[2];

	if (pipe(to) || pipe(from))
		return false;
	fflush(stdout);
	ch->pid = fork();
	if (ch->pid < 0)
		return false;
	if (!ch->pid) {
		close(to[1]);
		close(from[0]);
		child_main(kind, seed, to[0], from[1]);
	}
	close(to[0]);
	close(from[1]);
	ch->cmd = to[1];
	ch->reply = from[0];
	if (read(ch->reply, &ch->addr, sizeof(ch->addr)) != sizeof(ch->addr)) {
		ksft_print_msg("child %d did not start\n", ch->pid);
		return false;
	}
	return true;
}

/* Sends @c to the child; returns whether it answered 'y'. */
static bool ask(struct child *ch, char c)
{
	char r = 0;

	if (write(ch->cmd, &c, 1) != 1 || read(ch->reply, &r, 1) != 1)
		return false;
	return r == 'y';
}

static void reap(struct child *ch)
{
	if (ch->pid <= 0)
		return;
	close(ch->cmd);
	close(ch->reply);
	kill(ch->pid, SIGKILL);
	waitpid(ch->pid, NULL, 0);
	ch->pid = 0;
}

/* ---- merge_now ---- */

/* Writes @line to merge_now: 0 or the write's errno. */
static int write_line(const char *line)
{
	return sysfs_write("merge_now", line) ? 0 : errno;
}

static int merge_now(pid_t pid, unsigned long start, unsigned long end)
{
	char line[96];

	snprintf(line, sizeof(line), "%d 0x%lx 0x%lx\n", pid, start, end);
	return write_line(line);
}

static unsigned long merging_pages(pid_t pid)
{
	char path[64], buf[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ksm_merging_pages", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return ULONG_MAX;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtoul(buf, NULL, 10) : ULONG_MAX;
}

/* Expects a write of @line to fail with @err. */
static void expect_err(bool *ok, const char *line, int err)
{
	int got = write_line(line);

	expect(ok, got == err, "\"%s\": errno %d (%s), want %d (%s)\n", line,
	       got, strerror(got), err, strerror(err));
}

/* ---- capabilities ---- */

/* Drops @cap from the effective and permitted sets. */
static bool drop_cap(int cap)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return false;
	d[cap / 32].effective &= ~(1U << (cap % 32));
	d[cap / 32].permitted &= ~(1U << (cap % 32));
	d[cap / 32].inheritable &= ~(1U << (cap % 32));
	return !syscall(SYS_capset, &h, d);
}

/* Keeps only @cap in the effective and permitted sets. */
static bool only_cap(int cap)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	d[cap / 32].effective = d[cap / 32].permitted = 1U << (cap % 32);
	return !syscall(SYS_capset, &h, d);
}

/*
 * In a child: @setup (opening merge_now first), then a write of "@pid range"
 * with the descriptor; returns the write's errno (0: it succeeded).
 */
static int write_as(int (*setup)(void), pid_t pid, unsigned long start,
		    unsigned long end)
{
	char line[96];
	int status, fd;
	pid_t p;

	snprintf(line, sizeof(line), "%d 0x%lx 0x%lx\n", pid, start, end);
	fflush(stdout);
	p = fork();
	if (p < 0)
		return -1;
	if (!p) {
		fd = open(MERGE_NOW, O_WRONLY);
		if (fd < 0 || setup())
			_exit(255);
		if (write(fd, line, strlen(line)) == (ssize_t)strlen(line))
			_exit(0);
		_exit(errno & 0xff);
	}
	if (waitpid(p, &status, 0) != p || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int no_sys_admin(void)
{
	return drop_cap(CAP_SYS_ADMIN) ? 0 : -1;
}

static int nobody_with_sys_admin(void)
{
	if (prctl(PR_SET_KEEPCAPS, 1) || setresgid(65534, 65534, 65534) ||
	    setresuid(65534, 65534, 65534))
		return -1;
	return only_cap(CAP_SYS_ADMIN) ? 0 : -1;
}

/* ---- the tests ---- */

static struct child a, b;
static const unsigned long span = NPAGES;

static void test_mode(void)
{
	char buf[16];
	struct stat st;
	bool ok = true;
	int fd;

	expect(&ok, !stat(MERGE_NOW, &st), "stat: %s\n", strerror(errno));
	expect(&ok, (st.st_mode & 07777) == 0200, "mode %o, want 200\n",
	       st.st_mode & 07777);
	fd = open(MERGE_NOW, O_RDONLY);
	if (fd >= 0) {
		expect(&ok, read(fd, buf, sizeof(buf)) < 0,
		       "a read succeeded\n");
		close(fd);
	}
	ksft_test_result(ok, "merge_now is write-only (mode 0200, a read fails)\n");
}

static void test_merge_two(void)
{
	unsigned long shared0 = ksm_ul("pages_shared");
	unsigned long sharing0 = ksm_ul("pages_sharing");
	unsigned long scans0 = ksm_ul("full_scans");
	unsigned long shared, sharing, ma, mb;
	bool ok = true;
	int ea, eb;

	ea = merge_now(a.pid, a.addr, a.addr + span * page_size);
	eb = merge_now(b.pid, b.addr, b.addr + span * page_size);
	shared = ksm_ul("pages_shared") - shared0;
	sharing = ksm_ul("pages_sharing") - sharing0;
	ma = merging_pages(a.pid);
	mb = merging_pages(b.pid);
	expect(&ok, !ea && !eb, "merge_now: errno %d and %d\n", ea, eb);
	expect(&ok, shared == NPAGES && sharing == NPAGES,
	       "pages_shared +%lu, pages_sharing +%lu, want +%d each\n",
	       shared, sharing, NPAGES);
	expect(&ok, ma == NPAGES && mb == NPAGES,
	       "ksm_merging_pages %lu and %lu, want %d\n", ma, mb, NPAGES);
	expect(&ok, ksm_ul("full_scans") == scans0,
	       "full_scans went from %lu to %lu: ksmd ran\n", scans0,
	       ksm_ul("full_scans"));
	ksft_test_result(ok, "run=0: merge_now on two processes of %d identical pages merges them all, full_scans unchanged\n",
			 NPAGES);
}

static void test_intact(void)
{
	bool ok = ask(&a, 'c') && ask(&b, 'c');

	ksft_test_result(ok, "the merged pages keep their contents\n");
}

/* Expects the line @fmt... to fail with EINVAL. */
static __printf(2, 3) void expect_einval(bool *ok, const char *fmt, ...)
{
	char line[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	expect_err(ok, line, EINVAL);
}

static void test_syntax(void)
{
	unsigned long s = a.addr, e = a.addr + span * page_size;
	bool ok = true;
	pid_t p = a.pid;

	/* Everything but the syntax is right: a's pid and range. */
	expect_einval(&ok, "%s", "\n");
	expect_einval(&ok, "%s", "abc\n");
	expect_einval(&ok, "%d\n", p);
	expect_einval(&ok, "%d 0x%lx\n", p, s);
	expect_einval(&ok, "%d 0x%lx 0x%lx 5\n", p, s, e);
	expect_einval(&ok, "x%d 0x%lx 0x%lx\n", p, s, e);
	expect_einval(&ok, "%d 0x%lxg 0x%lx\n", p, s, e);
	expect_einval(&ok, "%d 0x%lx 0x%lx\n\n", p, s, e);
	expect_einval(&ok, "%d 0x%lx\n0x%lx\n", p, s, e);
	expect_einval(&ok, "-%d 0x%lx 0x%lx\n", p, s, e);
	expect_einval(&ok, "0 0x%lx 0x%lx\n", s, e);
	expect_einval(&ok, "0x%x 0x%lx 0x%lx\n", p, s, e);
	expect_einval(&ok, "%d -0x%lx 0x%lx\n", p, s, e);
	ksft_test_result(ok, "a malformed line: EINVAL\n");
}

static void test_unaligned(void)
{
	char line[96];
	bool ok = true;

	snprintf(line, sizeof(line), "%d 0x%lx 0x%lx", a.pid, a.addr + 1,
		 a.addr + page_size);
	expect_err(&ok, line, EINVAL);
	snprintf(line, sizeof(line), "%d %lu %lu", a.pid, a.addr + 100,
		 a.addr + 2 * page_size);
	expect_err(&ok, line, EINVAL);
	ksft_test_result(ok, "start not page aligned: EINVAL\n");
}

static void test_empty_range(void)
{
	char line[96];
	bool ok = true;

	snprintf(line, sizeof(line), "%d 0x%lx 0x%lx", a.pid, a.addr, a.addr);
	expect_err(&ok, line, EINVAL);
	snprintf(line, sizeof(line), "%d 0x%lx 0x%lx", a.pid,
		 a.addr + page_size, a.addr);
	expect_err(&ok, line, EINVAL);
	ksft_test_result(ok, "end <= start: EINVAL\n");
}

static void test_overflow(void)
{
	char line[96];
	bool ok = true;

	snprintf(line, sizeof(line), "%d 0x1000 0x10000000000000000", a.pid);
	expect_err(&ok, line, EINVAL);
	snprintf(line, sizeof(line), "%d 0x1000 0xfffffffffffff001", a.pid);
	expect_err(&ok, line, EINVAL);
	expect_err(&ok, "99999999999 0x1000 0x2000", EINVAL);
	ksft_test_result(ok, "an overflow (end, end rounded up to a page, pid): EINVAL\n");
}

static void test_no_process(void)
{
	bool ok = true;
	int err;

	/* Above PID_MAX_LIMIT (4M): never a process. */
	err = merge_now(0x3fffffff, 0x1000, 0x2000);
	expect(&ok, err == ESRCH, "no such pid: errno %d, want ESRCH\n", err);
	/* kthreadd has no address space. */
	err = merge_now(2, 0x1000, 0x2000);
	expect(&ok, err == ESRCH, "kthreadd: errno %d, want ESRCH\n", err);
	ksft_test_result(ok, "no such process, or a kernel thread: ESRCH\n");
}

static void test_not_mergeable(void)
{
	unsigned long sharing0 = ksm_ul("pages_sharing");
	struct child c = { };
	bool ok = spawn(&c, SPLIT, SEED_SAME);
	int err = -1;

	if (ok) {
		err = merge_now(c.pid, c.addr, c.addr + span * page_size);
		expect(&ok, !err, "merge_now: errno %d\n", err);
		expect(&ok, ksm_ul("pages_sharing") == sharing0,
		       "pages_sharing went from %lu to %lu\n", sharing0,
		       ksm_ul("pages_sharing"));
		expect(&ok, merging_pages(c.pid) == 0,
		       "ksm_merging_pages %lu\n", merging_pages(c.pid));
		expect(&ok, ask(&c, 'c'), "contents changed\n");
	}
	reap(&c);
	ksft_test_result(ok, "a range without MADV_MERGEABLE (of a registered process) merges nothing\n");
}

static void test_unregistered(void)
{
	struct child c = { };
	bool ok = spawn(&c, PLAIN, SEED_SAME);
	int err;

	if (ok) {
		err = merge_now(c.pid, c.addr, c.addr + span * page_size);
		expect(&ok, err == EINVAL, "errno %d, want EINVAL\n", err);
		expect(&ok, merging_pages(c.pid) == 0,
		       "ksm_merging_pages %lu\n", merging_pages(c.pid));
	}
	reap(&c);
	ksft_test_result(ok, "a process not registered with KSM: EINVAL\n");
}

static void test_eperm(void)
{
	unsigned long end = a.addr + span * page_size;
	bool ok = true;
	int err;

	err = write_as(no_sys_admin, a.pid, a.addr, end);
	expect(&ok, err == EPERM,
	       "root without CAP_SYS_ADMIN: %d, want EPERM\n", err);
	/*
	 * mm_access(PTRACE_MODE_READ) lets CAP_SYS_ADMIN through
	 * (perfmon_capable()), as for process_madvise().
	 */
	err = write_as(nobody_with_sys_admin, a.pid, a.addr, end);
	expect(&ok, !err,
	       "uid 65534 with CAP_SYS_ADMIN only: %d, want 0\n", err);
	ksft_test_result(ok, "EPERM without CAP_SYS_ADMIN (file opened as root); CAP_SYS_ADMIN alone may merge another uid's process\n");
}

static void test_partly_unmapped(void)
{
	unsigned long sharing0 = ksm_ul("pages_sharing"), sharing;
	struct child c = { };
	bool ok = spawn(&c, MERGEABLE, SEED_SAME);
	int err;

	if (ok) {
		expect(&ok, ask(&c, 'u'), "munmap failed\n");
		err = merge_now(c.pid, c.addr, c.addr + span * page_size);
		sharing = ksm_ul("pages_sharing") - sharing0;
		expect(&ok, !err, "merge_now: errno %d\n", err);
		expect(&ok, sharing == NPAGES / 2,
		       "pages_sharing +%lu, want +%d\n", sharing, NPAGES / 2);
		expect(&ok, merging_pages(c.pid) == NPAGES / 2,
		       "ksm_merging_pages %lu, want %d\n",
		       merging_pages(c.pid), NPAGES / 2);
		expect(&ok, ask(&c, 'c'), "contents changed\n");
	}
	reap(&c);
	ksft_test_result(ok, "a range partly unmapped: the mapped half merges with the KSM pages\n");
}

static void test_race(void)
{
	int round, err, n_ok = 0, n_srch = 0, n_other = 0;
	bool ok = true;

	for (round = 0; round < RACE_ROUNDS; round++) {
		struct child c = { };
		pid_t killer;

		if (!spawn(&c, MERGEABLE, round & 1 ? SEED_SAME : round))
			break;
		if (!(round % 4)) {
			siginfo_t si;

			/* Killed before: a zombie, with no address space. */
			kill(c.pid, SIGKILL);
			waitid(P_PID, c.pid, &si, WEXITED | WNOWAIT);
			err = merge_now(c.pid, c.addr, c.addr + span * page_size);
			expect(&ok, err == ESRCH, "zombie: errno %d, want ESRCH\n",
			       err);
			reap(&c);
			continue;
		}
		fflush(stdout);
		killer = fork();
		if (!killer) {
			usleep((round % 8) * 500);
			kill(c.pid, SIGKILL);
			_exit(0);
		}
		err = merge_now(c.pid, c.addr, c.addr + span * page_size);
		if (!err)
			n_ok++;
		else if (err == ESRCH)
			n_srch++;
		else
			n_other++;
		waitpid(killer, NULL, 0);
		reap(&c);
	}
	expect(&ok, round == RACE_ROUNDS, "round %d: no child\n", round);
	expect(&ok, !n_other, "%d writes failed with another errno\n", n_other);
	ksft_print_msg("race: %d writes done, %d ESRCH\n", n_ok, n_srch);
	ksft_test_result(ok, "merge_now on %d processes killed before (ESRCH) or meanwhile (0 or ESRCH), no crash\n",
			 RACE_ROUNDS);
}

static void test_killed_writer(void)
{
	unsigned long end;
	struct child c = { };
	bool ok = spawn(&c, BIG, SEED_OTHER);
	int status = 0, err, fd[2];
	pid_t w;
	char x = 0;

	if (ok && !pipe(fd)) {
		end = c.addr + BIG_PAGES * page_size;
		fflush(stdout);
		w = fork();
		if (!w) {
			if (write(fd[1], &x, 1) != 1)
				_exit(1);
			merge_now(c.pid, c.addr, end);
			for (;;)
				pause();
		}
		ok = w > 0 && read(fd[0], &x, 1) == 1;
		usleep(20000);
		if (w > 0) {
			kill(w, SIGKILL);
			waitpid(w, &status, 0);
		}
		expect(&ok, WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		       "the writer was not killed: status 0x%x\n", status);
		err = merge_now(c.pid, c.addr, end);
		expect(&ok, !err, "merge_now after: errno %d\n", err);
		close(fd[0]);
		close(fd[1]);
	}
	reap(&c);
	ksft_test_result(ok, "a writer killed during a write of %d pages dies; the range merges again after\n",
			 BIG_PAGES);
}

static void test_run2(void)
{
	bool ok = true;
	int err;

	expect(&ok, sysfs_write("run", "2"), "run=2: %s\n", strerror(errno));
	err = merge_now(a.pid, a.addr, a.addr + span * page_size);
	expect(&ok, err == EBUSY, "merge_now at run=2: errno %d, want EBUSY\n",
	       err);
	expect(&ok, ksm_ul("pages_shared") == 0 && ksm_ul("pages_sharing") == 0,
	       "after run=2: pages_shared %lu, pages_sharing %lu\n",
	       ksm_ul("pages_shared"), ksm_ul("pages_sharing"));
	expect(&ok, merging_pages(a.pid) == 0, "ksm_merging_pages %lu\n",
	       merging_pages(a.pid));
	expect(&ok, ask(&a, 'c') && ask(&b, 'c'), "contents changed\n");
	ksft_test_result(ok, "run=2: merge_now fails with EBUSY; everything (killed processes' pages too) is unmerged\n");
}

static void test_again(void)
{
	unsigned long sharing0, sharing;
	bool ok = true;
	int ea, eb;

	expect(&ok, sysfs_write("run", "0"), "run=0: %s\n", strerror(errno));
	sharing0 = ksm_ul("pages_sharing");
	ea = merge_now(a.pid, a.addr, a.addr + span * page_size);
	eb = merge_now(b.pid, b.addr, b.addr + span * page_size);
	sharing = ksm_ul("pages_sharing") - sharing0;
	expect(&ok, !ea && !eb, "merge_now: errno %d and %d\n", ea, eb);
	expect(&ok, sharing == NPAGES, "pages_sharing +%lu, want +%d\n",
	       sharing, NPAGES);
	ksft_test_result(ok, "after run=2 then run=0, merge_now merges the two processes again\n");
}

static void test_restore(void)
{
	bool ok = saved_attrs_restore(saved, ARRAY_SIZE(saved), true);

	ksft_test_result(ok, "restore: run=2, then every changed attribute of " KSM_DIR " put back\n");
}

/* ---- KSM=c ---- */

static void c_tests(void)
{
	unsigned long t0, scans0, sharing0 = 0, sharing = 0;
	bool ok = access(MERGE_NOW, F_OK) && errno == ENOENT;

	ksft_test_result(ok, "KSM=c has no merge_now\n");

	ok = saved_attr_set(saved, ARRAY_SIZE(saved), "run", "2") &&
	     saved_attr_set(saved, ARRAY_SIZE(saved), "pages_to_scan", "1000") &&
	     saved_attr_set(saved, ARRAY_SIZE(saved), "sleep_millisecs", "0");
	sharing0 = ksm_ul("pages_sharing");
	ok = ok && spawn(&a, MERGEABLE, SEED_SAME) && spawn(&b, MERGEABLE, SEED_SAME);
	ok = ok && saved_attr_set(saved, ARRAY_SIZE(saved), "run", "1");
	scans0 = ksm_ul("full_scans");
	t0 = now_ms();
	while (ok && now_ms() - t0 < C_TIMEOUT_MS) {
		sharing = ksm_ul("pages_sharing") - sharing0;
		if (sharing >= NPAGES ||
		    ksm_ul("full_scans") - scans0 >= C_FULL_SCANS)
			break;
		usleep(20000);
	}
	expect(&ok, sharing == NPAGES, "pages_sharing +%lu, want +%d\n",
	       sharing, NPAGES);
	expect(&ok, ask(&a, 'c') && ask(&b, 'c'), "contents changed\n");
	reap(&a);
	reap(&b);
	ok &= saved_attrs_restore(saved, ARRAY_SIZE(saved), true);
	ksft_test_result(ok, "KSM=c unchanged: ksmd merges two processes of %d identical pages\n",
			 NPAGES);
}

static void cleanup(void)
{
	reap(&a);
	reap(&b);
	saved_attrs_restore(saved, ARRAY_SIZE(saved), true);
}

static void on_signal(int sig)
{
	watchdog_restore(saved, ARRAY_SIZE(saved));
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(void)
{
	const char *ksm = getenv("KSM_RS_KSM");
	bool ok;

	page_size = getpagesize();
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	if (geteuid())
		ksft_exit_skip("needs root\n");
	if (access(KSM_DIR "/run", W_OK))
		ksft_exit_skip(KSM_DIR " is missing: no CONFIG_KSM\n");
	ksft_print_msg("implementation %s\n", ksm ? ksm : "?");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	if (access(MERGE_NOW, F_OK) && ksm && !strcmp(ksm, "c")) {
		ksft_set_plan(NR_TESTS_C);
		c_tests();
		ksft_finished();
	}
	ksft_set_plan(NR_TESTS);
	if (access(MERGE_NOW, F_OK))
		ksft_exit_fail_msg("%s: %s (KSM_RS_KSM=%s)\n", MERGE_NOW,
				   strerror(errno), ksm ? ksm : "unset");

	/* A clean slate, and ksmd stopped: merging is merge_now's alone. */
	ok = saved_attr_set(saved, ARRAY_SIZE(saved), "run", "2") &&
	     saved_attr_set(saved, ARRAY_SIZE(saved), "run", "0");
	if (!ok || !spawn(&a, MERGEABLE, SEED_SAME) ||
	    !spawn(&b, MERGEABLE, SEED_SAME)) {
		cleanup();
		ksft_exit_fail_msg("setup failed\n");
	}

	test_mode();
	test_merge_two();
	test_intact();
	test_syntax();
	test_unaligned();
	test_empty_range();
	test_overflow();
	test_no_process();
	test_not_mergeable();
	test_unregistered();
	test_eperm();
	test_partly_unmapped();
	test_race();
	test_killed_writer();
	test_run2();
	test_again();
	test_restore();
	reap(&a);
	reap(&b);
	ksft_finished();
}
