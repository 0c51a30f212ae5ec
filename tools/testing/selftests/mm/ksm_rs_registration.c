// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_registration: the registration ABI of KSM, checked without relying
 * on pages being merged, so that the same test passes on mm/ksm.c and on a
 * KSM that does not merge (yet):
 *
 *  - madvise(MADV_MERGEABLE / MADV_UNMERGEABLE) and the "mg" letter
 *    (VM_MERGEABLE) of VmFlags in /proc/self/smaps, on private, shared and
 *    partly unmapped ranges;
 *  - prctl(PR_SET_MEMORY_MERGE / PR_GET_MEMORY_MERGE), which mappings it
 *    marks, and that it is inherited by fork() and kept over execve();
 *  - /proc/<pid>/ksm_stat (ksm_mergeable, ksm_merge_any and the counters);
 *  - that ksmd scans registered memory (full_scans, pages_scanned) and that
 *    run=2 sets full_scans back to 0.
 *
 * The expectations come from mm/ksm.c (ksm_compatible, ksm_madvise,
 * ksm_enable_merge_any, ksm_disable_merge_any, ksm_vma_flags, ksm_add_vmas,
 * ksm_process_mergeable, ksm_process_profit, scan_get_next_rmap_item,
 * unmerge_and_remove_all_rmap_items, run_store), mm/madvise.c
 * (madvise_walk_vmas), kernel/sys.c, kernel/fork.c (MMF_VM_MERGE_ANY is in
 * MMF_INIT_LEGACY_MASK), include/linux/ksm.h (ksm_fork, ksm_execve),
 * fs/proc/base.c (proc_pid_ksm_stat) and fs/proc/task_mmu.c.
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
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_rs_util.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE	67
#define PR_GET_MEMORY_MERGE	68
#endif

#define EXEC_CHILD_ARG		"--ksm-rs-exec-child"
#define IDLE_CHILD_ARG		"--ksm-rs-idle-child"
#define NR_TESTS		11
#define SCAN_AREA_SIZE		(4UL << 20)
#define SCAN_TIMEOUT_MS		60000
#define SCAN_FULL_SCANS		2
#define FLAGS_MAX		256
#define LINE_MAX_LEN		(PATH_MAX + 256)

static unsigned long page_size;
static pid_t main_pid;

/* The mappings that live from one test to the next. */
static char *private_map;	/* from test 1 to test 2 */
static char *shared_map;	/* MAP_SHARED, from test 3 to test 8 */
static char *existing_map;	/* mapped before PR_SET_MEMORY_MERGE */
static char *later_map;		/* mapped after PR_SET_MEMORY_MERGE */
static char *scan_area;		/* the area ksmd scans, tests 9 and 10 */

static const char *proc_name(pid_t pid, char *buf, size_t size)
{
	if (!pid)
		return "self";
	snprintf(buf, size, "%d", pid);
	return buf;
}

/* "-1 (errno 12: Cannot allocate memory)" for a failed call, "0" otherwise. */
static const char *ret_str(long ret, int err, char *buf, size_t size)
{
	if (ret == -1)
		snprintf(buf, size, "-1 (errno %d: %s)", err, strerror(err));
	else
		snprintf(buf, size, "%ld", ret);
	return buf;
}

/* ---- /proc/<pid>/smaps ---- */

/*
 * Copies the VmFlags of the VMA of @pid (0: self) that contains @addr into
 * @flags, without the "VmFlags:" tag. Returns false if there is no such VMA.
 */
static bool vma_flags(pid_t pid, const void *addr, char *flags, size_t size)
{
	unsigned long a = (unsigned long)addr, start, end;
	char path[64], name[16], *line, *p;
	bool in = false, found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/smaps",
		 proc_name(pid, name, sizeof(name)));
	line = malloc(LINE_MAX_LEN);
	f = fopen(path, "r");
	if (!line || !f) {
		free(line);
		if (f)
			fclose(f);
		return false;
	}
	while (fgets(line, LINE_MAX_LEN, f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in = start <= a && a < end;
			continue;
		}
		if (!in || strncmp(line, "VmFlags:", 8))
			continue;
		p = line + 8;
		while (*p == ' ')
			p++;
		p[strcspn(p, "\n")] = '\0';
		snprintf(flags, size, "%s", p);
		found = true;
		break;
	}
	fclose(f);
	free(line);
	return found;
}

/* Whether the space separated list @flags holds @flag. */
static bool has_flag(const char *flags, const char *flag)
{
	size_t len = strlen(flag);
	const char *p = flags;

	while (*p) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, flag, len) && (p[len] == ' ' || !p[len]))
			return true;
		while (*p && *p != ' ')
			p++;
	}
	return false;
}

/* Expects the VMA of @pid containing @addr to have "mg" if @want, else not. */
static void expect_mg(bool *ok, pid_t pid, const void *addr, bool want,
		      const char *what)
{
	char flags[FLAGS_MAX];

	if (!vma_flags(pid, addr, flags, sizeof(flags))) {
		expect(ok, false, "%s (%p): no VMA holds it in smaps\n",
		       what, addr);
		return;
	}
	expect(ok, has_flag(flags, "mg") == want,
	       "%s (%p): VmFlags \"%s\", expected %s \"mg\"\n",
	       what, addr, flags, want ? "with" : "without");
}

/*
 * The number of VMAs of @pid whose VmFlags hold "mg", -1 if smaps cannot be
 * read; the range of the first one goes to @first.
 */
static int count_mg_vmas(pid_t pid, char *first, size_t size)
{
	char path[64], name[16], *line, range[64] = "";
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%s/smaps",
		 proc_name(pid, name, sizeof(name)));
	line = malloc(LINE_MAX_LEN);
	f = fopen(path, "r");
	if (!line || !f) {
		free(line);
		if (f)
			fclose(f);
		return -1;
	}
	snprintf(first, size, "none");
	while (fgets(line, LINE_MAX_LEN, f)) {
		unsigned long start, end;

		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			snprintf(range, sizeof(range), "%lx-%lx", start, end);
			continue;
		}
		if (strncmp(line, "VmFlags:", 8))
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (!has_flag(line + 8, "mg"))
			continue;
		if (!n++)
			snprintf(first, size, "%s", range);
	}
	fclose(f);
	free(line);
	return n;
}

static void expect_no_mg_vmas(bool *ok, pid_t pid, const char *who)
{
	char first[64];
	int n = count_mg_vmas(pid, first, sizeof(first));

	expect(ok, n == 0,
	       "%s: %d VMAs with \"mg\" in smaps (first %s), expected 0\n",
	       who, n, first);
}

/* ---- /proc/<pid>/ksm_stat ---- */

struct ksm_stat {
	long rmap_items;
	long zero_pages;
	long merging_pages;
	long profit;
	int merge_any;		/* 1: yes, 0: no */
	int mergeable;
};

static int yes_no(const char *word)
{
	if (!strcmp(word, "yes"))
		return 1;
	if (!strcmp(word, "no"))
		return 0;
	return -2;
}

static bool read_ksm_stat(pid_t pid, struct ksm_stat *st)
{
	char path[64], name[16], line[256], word[16];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/ksm_stat",
		 proc_name(pid, name, sizeof(name)));
	f = fopen(path, "r");
	if (!f)
		return false;
	st->rmap_items = LONG_MIN;
	st->zero_pages = LONG_MIN;
	st->merging_pages = LONG_MIN;
	st->profit = LONG_MIN;
	st->merge_any = -1;
	st->mergeable = -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "ksm_rmap_items %ld", &st->rmap_items) == 1 ||
		    sscanf(line, "ksm_zero_pages %ld", &st->zero_pages) == 1 ||
		    sscanf(line, "ksm_merging_pages %ld",
			   &st->merging_pages) == 1 ||
		    sscanf(line, "ksm_process_profit %ld", &st->profit) == 1)
			continue;
		if (sscanf(line, "ksm_merge_any: %15s", word) == 1)
			st->merge_any = yes_no(word);
		else if (sscanf(line, "ksm_mergeable: %15s", word) == 1)
			st->mergeable = yes_no(word);
	}
	fclose(f);
	return st->rmap_items != LONG_MIN && st->zero_pages != LONG_MIN &&
	       st->merging_pages != LONG_MIN && st->profit != LONG_MIN &&
	       st->merge_any >= 0 && st->mergeable >= 0;
}

static bool get_ksm_stat(bool *ok, pid_t pid, struct ksm_stat *st)
{
	char name[16];
	bool r = read_ksm_stat(pid, st);

	expect(ok, r, "/proc/%s/ksm_stat cannot be read or lacks a line\n",
	       proc_name(pid, name, sizeof(name)));
	return r;
}

static const char *yes_no_str(int v)
{
	return v == 1 ? "yes" : v == 0 ? "no" : "?";
}

/* Expects ksm_mergeable and/or ksm_merge_any (-1: not checked). */
static void expect_stat_flags(bool *ok, pid_t pid, int mergeable,
			      int merge_any, const char *when)
{
	struct ksm_stat st;

	if (!get_ksm_stat(ok, pid, &st))
		return;
	if (mergeable >= 0)
		expect(ok, st.mergeable == mergeable,
		       "%s: ksm_stat says \"ksm_mergeable: %s\", expected %s\n",
		       when, yes_no_str(st.mergeable), yes_no_str(mergeable));
	if (merge_any >= 0)
		expect(ok, st.merge_any == merge_any,
		       "%s: ksm_stat says \"ksm_merge_any: %s\", expected %s\n",
		       when, yes_no_str(st.merge_any), yes_no_str(merge_any));
}

/* ---- /sys/kernel/mm/ksm ---- */

/* In the order they are put back: pages_to_scan needs advisor_mode none. */
static struct saved_attr saved_attrs[] = {
	{ .name = "run" },
	{ .name = "pages_to_scan" },
	{ .name = "sleep_millisecs" },
	{ .name = "advisor_mode" },
};

/* Writes @val to @attr, saving its first value to put it back later. */
static bool set_attr(const char *attr, const char *val)
{
	return saved_attr_set(saved_attrs, ARRAY_SIZE(saved_attrs), attr, val);
}

static void restore_attrs(void)
{
	if (getpid() == main_pid)
		saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), false);
}

/* ---- helpers ---- */

static char *map_anon(unsigned long size, bool shared)
{
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void unmap(char **p, unsigned long size)
{
	if (*p)
		munmap(*p, size);
	*p = NULL;
}

static long get_memory_merge(int *err)
{
	long ret;

	errno = 0;
	ret = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	*err = errno;
	return ret;
}

static bool wait_child(pid_t pid, const char *who)
{
	int status;

	if (waitpid(pid, &status, 0) != pid) {
		ksft_print_msg("   waitpid(%s): %s\n", who, strerror(errno));
		return false;
	}
	if (WIFEXITED(status) && !WEXITSTATUS(status))
		return true;
	if (WIFEXITED(status))
		ksft_print_msg("   %s exited with status %d\n", who,
			       WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		ksft_print_msg("   %s was killed by signal %d\n", who,
			       WTERMSIG(status));
	return false;
}

/* Makes every page of @area different from any other, and not zero. */
static void fill_distinct(char *area, unsigned long npages)
{
	unsigned long words = page_size / sizeof(unsigned long);
	unsigned long i, j;

	for (i = 0; i < npages; i++) {
		unsigned long *p = (unsigned long *)(area + i * page_size);

		for (j = 0; j < words; j++)
			p[j] = 0x6b736d2d72730000UL ^ (i << 24) ^ j;
		p[1] ^= (unsigned long)main_pid << 32;
	}
}

/* ---- tests ---- */

/* 1: MADV_MERGEABLE marks a private anonymous VMA. */
static void test_madv_mergeable(void)
{
	unsigned long size = 4 * page_size;
	bool ok = true;
	char rs[96];
	long ret;
	int err;

	private_map = map_anon(size, false);
	if (!private_map) {
		ksft_test_result_fail("MADV_MERGEABLE on private anon: mmap failed: %s\n",
				      strerror(errno));
		return;
	}
	expect_stat_flags(&ok, 0, 0, 0, "before any madvise");
	expect_mg(&ok, 0, private_map, false, "before madvise");

	ret = madvise(private_map, size, MADV_MERGEABLE);
	err = errno;
	expect(&ok, ret == 0, "madvise(MADV_MERGEABLE) returned %s\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	/* Fault the pages in: MADV_UNMERGEABLE then has an anon_vma to walk. */
	memset(private_map, 0x5a, size);
	expect_mg(&ok, 0, private_map, true, "after MADV_MERGEABLE");
	expect_mg(&ok, 0, private_map + size - page_size, true,
		  "after MADV_MERGEABLE, last page");
	expect_stat_flags(&ok, 0, 1, 0, "after MADV_MERGEABLE");

	ksft_test_result(ok, "MADV_MERGEABLE on private anon: returns 0, VmFlags gets \"mg\", ksm_mergeable: yes\n");
}

/* 2: MADV_UNMERGEABLE clears it. */
static void test_madv_unmergeable(void)
{
	unsigned long size = 4 * page_size;
	bool ok = true;
	char rs[96];
	long ret;
	int err;

	if (!private_map) {
		ksft_test_result_fail("MADV_UNMERGEABLE: no mapping from the previous test\n");
		return;
	}
	ret = madvise(private_map, size, MADV_UNMERGEABLE);
	err = errno;
	expect(&ok, ret == 0, "madvise(MADV_UNMERGEABLE) returned %s\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	expect_mg(&ok, 0, private_map, false, "after MADV_UNMERGEABLE");
	expect_stat_flags(&ok, 0, 0, 0, "after MADV_UNMERGEABLE");
	/* The data is untouched. */
	expect(&ok, private_map[0] == 0x5a && private_map[size - 1] == 0x5a,
	       "the mapping's data changed over MADV_UNMERGEABLE\n");
	unmap(&private_map, size);

	ksft_test_result(ok, "MADV_UNMERGEABLE: returns 0, \"mg\" goes away, ksm_mergeable: no\n");
}

/* 3: a shared mapping is not compatible: the advice is ignored. */
static void test_madv_shared(void)
{
	unsigned long size = 4 * page_size;
	bool ok = true;
	char rs[96];
	long ret;
	int err;

	shared_map = map_anon(size, true);
	if (!shared_map) {
		ksft_test_result_fail("MADV_MERGEABLE on shared anon: mmap failed: %s\n",
				      strerror(errno));
		return;
	}
	ret = madvise(shared_map, size, MADV_MERGEABLE);
	err = errno;
	expect(&ok, ret == 0, "madvise(MADV_MERGEABLE) on MAP_SHARED returned %s\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	expect_mg(&ok, 0, shared_map, false, "MAP_SHARED after MADV_MERGEABLE");
	expect_stat_flags(&ok, 0, 0, 0, "after MADV_MERGEABLE on MAP_SHARED");

	ksft_test_result(ok, "MADV_MERGEABLE on shared anon: returns 0, no \"mg\", ksm_mergeable: no\n");
}

/*
 * 4: a range with a hole: madvise_walk_vmas() applies the advice to every
 * VMA in the range and returns -ENOMEM at the end.
 */
static void test_madv_hole(void)
{
	unsigned long size = 3 * page_size;
	char *map, *last;
	bool ok = true;
	char rs[96];
	long ret;
	int err;

	map = map_anon(size, false);
	if (!map) {
		ksft_test_result_fail("MADV_MERGEABLE over a hole: mmap failed: %s\n",
				      strerror(errno));
		return;
	}
	last = map + 2 * page_size;
	if (munmap(map + page_size, page_size)) {
		ksft_test_result_fail("MADV_MERGEABLE over a hole: munmap failed: %s\n",
				      strerror(errno));
		munmap(map, size);
		return;
	}
	ret = madvise(map, size, MADV_MERGEABLE);
	err = errno;
	expect(&ok, ret == -1 && err == ENOMEM,
	       "madvise(MADV_MERGEABLE) over [page][hole][page] returned %s, expected -1 (ENOMEM)\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	expect_mg(&ok, 0, map, true, "the page before the hole");
	expect_mg(&ok, 0, last, true, "the page after the hole");
	expect_stat_flags(&ok, 0, 1, 0, "after MADV_MERGEABLE over a hole");
	munmap(map, page_size);
	munmap(last, page_size);

	ksft_test_result(ok, "MADV_MERGEABLE over a hole: fails with ENOMEM, the pages on both sides get \"mg\"\n");
}

/* 5: PR_SET_MEMORY_MERGE marks existing and new compatible VMAs. */
static void test_prctl_set(void)
{
	unsigned long size = 2 * page_size;
	const void *text = (const void *)(uintptr_t)test_prctl_set;
	char *new_shared;
	bool ok = true;
	char rs[96];
	long ret;
	int err;

	existing_map = map_anon(size, false);
	if (!existing_map) {
		ksft_test_result_fail("PR_SET_MEMORY_MERGE 1: mmap failed: %s\n",
				      strerror(errno));
		return;
	}
	expect_mg(&ok, 0, existing_map, false, "before PR_SET_MEMORY_MERGE");
	expect_mg(&ok, 0, text, false, "program text before PR_SET_MEMORY_MERGE");

	ret = prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0);
	err = errno;
	expect(&ok, ret == 0, "prctl(PR_SET_MEMORY_MERGE, 1) returned %s\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	ret = get_memory_merge(&err);
	expect(&ok, ret == 1, "prctl(PR_GET_MEMORY_MERGE) returned %s, expected 1\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	expect_stat_flags(&ok, 0, 1, 1, "after PR_SET_MEMORY_MERGE 1");

	/* ksm_add_vmas(): every compatible VMA, file-backed private too. */
	expect_mg(&ok, 0, existing_map, true,
		  "private anon mapped before PR_SET_MEMORY_MERGE");
	expect_mg(&ok, 0, text, true, "program text");
	expect_mg(&ok, 0, shared_map, false,
		  "shared anon mapped before PR_SET_MEMORY_MERGE");

	/* ksm_vma_flags(): new compatible VMAs. */
	later_map = map_anon(size, false);
	expect(&ok, later_map, "mmap after PR_SET_MEMORY_MERGE failed: %s\n",
	       strerror(errno));
	if (later_map)
		expect_mg(&ok, 0, later_map, true,
			  "private anon mapped after PR_SET_MEMORY_MERGE");
	new_shared = map_anon(size, true);
	expect(&ok, new_shared, "shared mmap after PR_SET_MEMORY_MERGE failed: %s\n",
	       strerror(errno));
	if (new_shared) {
		expect_mg(&ok, 0, new_shared, false,
			  "shared anon mapped after PR_SET_MEMORY_MERGE");
		munmap(new_shared, size);
	}

	ksft_test_result(ok, "PR_SET_MEMORY_MERGE 1: returns 0, PR_GET gives 1, ksm_merge_any: yes, old and new private VMAs get \"mg\", shared ones not\n");
}

/* The checks of test 6, in the child; its exit status tells the result. */
static void fork_child(void)
{
	unsigned long size = 2 * page_size;
	const void *text = (const void *)(uintptr_t)fork_child;
	bool ok = true;
	char rs[96];
	char *map;
	long ret;
	int err;

	ret = get_memory_merge(&err);
	expect(&ok, ret == 1, "child: prctl(PR_GET_MEMORY_MERGE) returned %s, expected 1\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	expect_stat_flags(&ok, 0, 1, 1, "child");
	if (existing_map)
		expect_mg(&ok, 0, existing_map, true, "child: inherited mapping");
	if (later_map)
		expect_mg(&ok, 0, later_map, true, "child: inherited mapping");
	expect_mg(&ok, 0, text, true, "child: program text");
	map = map_anon(size, false);
	expect(&ok, map, "child: mmap failed: %s\n", strerror(errno));
	if (map)
		expect_mg(&ok, 0, map, true, "child: private anon mapped in the child");
	fflush(stdout);
	_exit(ok ? 0 : 1);
}

/* 6: fork() inherits MMF_VM_MERGE_ANY and the VMAs' VM_MERGEABLE. */
static void test_fork(void)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		ksft_test_result_fail("after fork: fork failed: %s\n",
				      strerror(errno));
		return;
	}
	if (!pid)
		fork_child();
	ksft_test_result(wait_child(pid, "the child"),
			 "after fork: the child gets PR_GET_MEMORY_MERGE 1, ksm_merge_any: yes, \"mg\" on inherited and new mappings\n");
}

/* The program that test 7 executes; its exit status tells the result. */
static int exec_child_main(void)
{
	const void *text = (const void *)(uintptr_t)exec_child_main;
	bool ok = true;
	char rs[96];
	char *map;
	long ret;
	int err;

	ret = get_memory_merge(&err);
	expect(&ok, ret == 1, "after execve: prctl(PR_GET_MEMORY_MERGE) returned %s, expected 1\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	expect_stat_flags(&ok, 0, 1, 1, "after execve");
	/* ksm_execve() and ksm_vma_flags() for the mappings of the ELF. */
	expect_mg(&ok, 0, text, true, "after execve: program text");
	map = map_anon(2 * page_size, false);
	expect(&ok, map, "after execve: mmap failed: %s\n", strerror(errno));
	if (map)
		expect_mg(&ok, 0, map, true, "after execve: new private anon mapping");
	fflush(stdout);
	return ok ? 0 : 1;
}

/* 7: execve() keeps MMF_VM_MERGE_ANY. */
static void test_fork_exec(const char *argv0)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		ksft_test_result_fail("after fork+execve: fork failed: %s\n",
				      strerror(errno));
		return;
	}
	if (!pid) {
		char *args[3];

		args[0] = (char *)argv0;
		args[1] = EXEC_CHILD_ARG;
		args[2] = NULL;
		execv("/proc/self/exe", args);
		ksft_print_msg("   execv(/proc/self/exe) failed: %s\n",
			       strerror(errno));
		fflush(stdout);
		_exit(2);
	}
	ksft_test_result(wait_child(pid, "the executed program"),
			 "after fork+execve: the new program gets PR_GET_MEMORY_MERGE 1, ksm_merge_any: yes, \"mg\" on its mappings\n");
}

/* 8: PR_SET_MEMORY_MERGE 0 clears VM_MERGEABLE from every VMA. */
static void test_prctl_clear(void)
{
	unsigned long size = 2 * page_size;
	const void *text = (const void *)(uintptr_t)test_prctl_clear;
	bool ok = true;
	char rs[96];
	char *map;
	long ret;
	int err;

	ret = prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0);
	err = errno;
	expect(&ok, ret == 0, "prctl(PR_SET_MEMORY_MERGE, 0) returned %s\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	ret = get_memory_merge(&err);
	expect(&ok, ret == 0, "prctl(PR_GET_MEMORY_MERGE) returned %s, expected 0\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	expect_stat_flags(&ok, 0, 0, 0, "after PR_SET_MEMORY_MERGE 0");
	if (existing_map)
		expect_mg(&ok, 0, existing_map, false,
			  "private anon mapped before PR_SET_MEMORY_MERGE 1");
	if (later_map)
		expect_mg(&ok, 0, later_map, false,
			  "private anon mapped after PR_SET_MEMORY_MERGE 1");
	expect_mg(&ok, 0, text, false, "program text");
	expect_no_mg_vmas(&ok, 0, "after PR_SET_MEMORY_MERGE 0");
	map = map_anon(size, false);
	expect(&ok, map, "mmap failed: %s\n", strerror(errno));
	if (map) {
		expect_mg(&ok, 0, map, false,
			  "private anon mapped after PR_SET_MEMORY_MERGE 0");
		munmap(map, size);
	}
	unmap(&existing_map, size);
	unmap(&later_map, size);
	unmap(&shared_map, 4 * page_size);

	ksft_test_result(ok, "PR_SET_MEMORY_MERGE 0: returns 0, PR_GET gives 0, ksm_merge_any: no, no VMA keeps \"mg\"\n");
}

/* 9: ksmd scans what is registered, with nothing to merge. */
static void test_ksmd_scans(void)
{
	unsigned long npages = SCAN_AREA_SIZE / page_size;
	unsigned long full0 = 0, full = 0, scanned0 = 0, scanned = 0;
	unsigned long start, waited;
	char mode[64], rs[96];
	struct ksm_stat st;
	bool ok = true;
	long ret;
	int err;

	scan_area = map_anon(SCAN_AREA_SIZE, false);
	if (!scan_area) {
		ksft_test_result_fail("ksmd scan: mmap failed: %s\n",
				      strerror(errno));
		return;
	}
	/* Small pages only: one page per rmap_item, whatever THP does. */
	madvise(scan_area, SCAN_AREA_SIZE, MADV_NOHUGEPAGE);
	ret = madvise(scan_area, SCAN_AREA_SIZE, MADV_MERGEABLE);
	err = errno;
	expect(&ok, ret == 0, "madvise(MADV_MERGEABLE) returned %s\n",
	       ret_str(ret, err, rs, sizeof(rs)));
	fill_distinct(scan_area, npages);

	/* pages_to_scan cannot be written under the scan-time advisor. */
	if (sysfs_read("advisor_mode", mode, sizeof(mode))) {
		selected_word(mode);
		if (strcmp(mode, "none"))
			expect(&ok, set_attr("advisor_mode", "none"),
			       "cannot set advisor_mode to none\n");
	}
	expect(&ok, set_attr("sleep_millisecs", "0"),
	       "cannot set sleep_millisecs to 0\n");
	expect(&ok, set_attr("pages_to_scan", "1000"),
	       "cannot set pages_to_scan to 1000\n");
	expect(&ok, sysfs_read_ul("full_scans", &full0) &&
	       sysfs_read_ul("pages_scanned", &scanned0),
	       "cannot read full_scans or pages_scanned\n");
	expect(&ok, set_attr("run", "1"), "cannot set run to 1\n");

	start = now_ms();
	do {
		if (!sysfs_read_ul("full_scans", &full))
			break;
		if (full >= full0 + SCAN_FULL_SCANS)
			break;
		usleep(20000);
	} while (now_ms() - start < SCAN_TIMEOUT_MS);
	waited = now_ms() - start;
	expect(&ok, sysfs_read_ul("full_scans", &full) &&
	       sysfs_read_ul("pages_scanned", &scanned),
	       "cannot read full_scans or pages_scanned\n");
	ksft_print_msg("ksmd: full_scans %lu -> %lu, pages_scanned %lu -> %lu in %lu ms; the area has %lu pages\n",
		       full0, full, scanned0, scanned, waited, npages);
	expect(&ok, full >= full0 + SCAN_FULL_SCANS,
	       "full_scans went from %lu to %lu in %lu ms, expected +%d\n",
	       full0, full, waited, SCAN_FULL_SCANS);
	expect(&ok, scanned >= scanned0 && scanned - scanned0 >= npages,
	       "pages_scanned went from %lu to %lu, expected +%lu at least\n",
	       scanned0, scanned, npages);

	if (get_ksm_stat(&ok, 0, &st)) {
		ksft_print_msg("ksm_stat: rmap_items %ld zero_pages %ld merging_pages %ld process_profit %ld\n",
			       st.rmap_items, st.zero_pages, st.merging_pages,
			       st.profit);
		/* All pages differ and none is zero: nothing can merge. */
		expect(&ok, st.merging_pages == 0,
		       "ksm_merging_pages %ld, expected 0\n", st.merging_pages);
		expect(&ok, st.zero_pages == 0,
		       "ksm_zero_pages %ld, expected 0\n", st.zero_pages);
		/* At most one rmap_item per page of the only mergeable VMA. */
		expect(&ok, st.rmap_items >= 0 &&
		       st.rmap_items <= (long)npages,
		       "ksm_rmap_items %ld, expected 0 to %lu\n",
		       st.rmap_items, npages);
		/*
		 * ksm_process_profit() = (merging + zero pages) * PAGE_SIZE -
		 * rmap_items * sizeof(struct ksm_rmap_item): here minus a
		 * whole multiple of rmap_items, 0 if there are none.
		 */
		if (st.rmap_items > 0)
			expect(&ok, st.profit < 0 &&
			       -st.profit % st.rmap_items == 0,
			       "ksm_process_profit %ld with %ld rmap_items and nothing merged, expected -(rmap_items * item size)\n",
			       st.profit, st.rmap_items);
		else
			expect(&ok, st.profit == 0,
			       "ksm_process_profit %ld with no rmap_items and nothing merged, expected 0\n",
			       st.profit);
		expect(&ok, st.mergeable == 1,
		       "ksm_mergeable: %s, expected yes\n", yes_no_str(st.mergeable));
	}

	ksft_test_result(ok, "ksmd scan: %d full scans within %d s scan all %lu pages of a MADV_MERGEABLE area, ksm_stat merging_pages 0, profit <= 0\n",
			 SCAN_FULL_SCANS, SCAN_TIMEOUT_MS / 1000, npages);
}

/* 10: run=2 unmerges everything, drops the rmap_items, full_scans = 0. */
static void test_run_unmerge(void)
{
	const struct saved_attr *run_saved = &saved_attrs[0];
	unsigned long full_before = 0, full = ULONG_MAX;
	char run[64] = "", orig[64] = "";
	struct ksm_stat st;
	bool ok = true;

	expect(&ok, sysfs_read_ul("full_scans", &full_before),
	       "cannot read full_scans\n");
	/* Otherwise there would be nothing to reset. */
	expect(&ok, full_before > 0,
	       "full_scans reads %lu before run=2: ksmd has not completed a scan (see the ksmd scan test), nothing to reset\n",
	       full_before);
	if (run_saved->saved)
		snprintf(orig, sizeof(orig), "%s", run_saved->val);
	else
		sysfs_read("run", orig, sizeof(orig));

	expect(&ok, set_attr("run", "2"), "cannot set run to 2\n");
	expect(&ok, sysfs_read("run", run, sizeof(run)) && !strcmp(run, "2"),
	       "run reads \"%s\" after writing 2\n", run);
	expect(&ok, sysfs_read_ul("full_scans", &full) && full == 0,
	       "full_scans reads %lu after run=2 (it was %lu), expected 0\n",
	       full, full_before);
	if (get_ksm_stat(&ok, 0, &st)) {
		expect(&ok, st.rmap_items == 0,
		       "ksm_rmap_items %ld after run=2, expected 0\n",
		       st.rmap_items);
		expect(&ok, st.profit == 0,
		       "ksm_process_profit %ld after run=2, expected 0\n",
		       st.profit);
		expect(&ok, st.merging_pages == 0,
		       "ksm_merging_pages %ld after run=2, expected 0\n",
		       st.merging_pages);
	}

	restore_attrs();
	expect(&ok, sysfs_read("run", run, sizeof(run)) && !strcmp(run, orig),
	       "run reads \"%s\" after putting back \"%s\"\n", run, orig);
	unmap(&scan_area, SCAN_AREA_SIZE);

	ksft_test_result(ok, "run=2: run reads 2, full_scans goes back to 0, ksm_rmap_items 0; run put back to \"%s\"\n",
			 orig);
}

/* The program that test 11 executes: it waits until it is released. */
static int idle_child_main(const char *ready, const char *hold)
{
	int ready_fd = atoi(ready), hold_fd = atoi(hold);
	char c = 'r';

	if (write(ready_fd, &c, 1) != 1)
		return 1;
	close(ready_fd);
	while (read(hold_fd, &c, 1) > 0)
		;
	return 0;
}

/*
 * 11: a process that never used KSM. It is executed afresh, with merge-any
 * off: a plain fork() of this process would be registered by ksm_fork().
 */
static void test_fresh_process(const char *argv0)
{
	int ready[2], hold[2];
	struct ksm_stat st;
	bool ok = true;
	char c;
	pid_t pid;

	if (pipe(ready) || pipe(hold)) {
		ksft_test_result_fail("process that never used KSM: pipe failed: %s\n",
				      strerror(errno));
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		ksft_test_result_fail("process that never used KSM: fork failed: %s\n",
				      strerror(errno));
		return;
	}
	if (!pid) {
		char rfd[16], hfd[16];
		char *args[5];

		close(ready[0]);
		close(hold[1]);
		snprintf(rfd, sizeof(rfd), "%d", ready[1]);
		snprintf(hfd, sizeof(hfd), "%d", hold[0]);
		args[0] = (char *)argv0;
		args[1] = IDLE_CHILD_ARG;
		args[2] = rfd;
		args[3] = hfd;
		args[4] = NULL;
		execv("/proc/self/exe", args);
		ksft_print_msg("   execv(/proc/self/exe) failed: %s\n",
			       strerror(errno));
		fflush(stdout);
		_exit(2);
	}
	close(ready[1]);
	close(hold[0]);

	if (read(ready[0], &c, 1) == 1) {
		if (get_ksm_stat(&ok, pid, &st)) {
			expect(&ok, st.mergeable == 0,
			       "ksm_mergeable: %s, expected no\n",
			       yes_no_str(st.mergeable));
			expect(&ok, st.merge_any == 0,
			       "ksm_merge_any: %s, expected no\n",
			       yes_no_str(st.merge_any));
			expect(&ok, !st.rmap_items && !st.zero_pages &&
			       !st.merging_pages && !st.profit,
			       "ksm_rmap_items %ld ksm_zero_pages %ld ksm_merging_pages %ld ksm_process_profit %ld, expected all 0\n",
			       st.rmap_items, st.zero_pages, st.merging_pages,
			       st.profit);
		}
		expect_no_mg_vmas(&ok, pid, "the fresh process");
	} else {
		expect(&ok, false, "the fresh process did not start\n");
	}
	close(hold[1]);
	close(ready[0]);
	if (!wait_child(pid, "the fresh process"))
		ok = false;

	ksft_test_result(ok, "/proc/<pid>/ksm_stat of a process that never used KSM: ksm_mergeable: no, ksm_merge_any: no, counters 0\n");
}

int main(int argc, char **argv)
{
	page_size = sysconf(_SC_PAGESIZE);
	main_pid = getpid();

	if (argc == 2 && !strcmp(argv[1], EXEC_CHILD_ARG))
		return exec_child_main();
	if (argc == 4 && !strcmp(argv[1], IDLE_CHILD_ARG))
		return idle_child_main(argv[2], argv[3]);

	ksft_print_header();
	if (geteuid())
		ksft_exit_skip("needs root\n");
	if (access(KSM_DIR, F_OK))
		ksft_exit_skip(KSM_DIR " is missing: no CONFIG_KSM\n");
	ksft_set_plan(NR_TESTS);
	atexit(restore_attrs);

	/* Start from a process that does not use KSM. */
	if (prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1) {
		ksft_print_msg("PR_GET_MEMORY_MERGE is 1 at start: setting it to 0\n");
		prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0);
	}

	test_madv_mergeable();
	test_madv_unmergeable();
	test_madv_shared();
	test_madv_hole();
	test_prctl_set();
	test_fork();
	test_fork_exec(argv[0]);
	test_prctl_clear();
	test_ksmd_scans();
	test_run_unmerge();
	test_fresh_process(argv[0]);

	restore_attrs();
	ksft_finished();
}
