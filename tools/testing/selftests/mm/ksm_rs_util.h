/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers of the ksm_rs_* selftests: reading and writing the attributes of
 * /sys/kernel/mm/ksm, and putting back the ones a test changed.
 */
#ifndef __KSM_RS_UTIL_H
#define __KSM_RS_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"

#define KSM_DIR			"/sys/kernel/mm/ksm"

static inline unsigned long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000UL + ts.tv_nsec / 1000000;
}

/* Reads @attr into @buf, without the trailing newline. */
static inline bool sysfs_read(const char *attr, char *buf, size_t size)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), KSM_DIR "/%s", attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

static inline bool sysfs_read_ul(const char *attr, unsigned long *val)
{
	char buf[64], *end;

	if (!sysfs_read(attr, buf, sizeof(buf)) || !buf[0])
		return false;
	errno = 0;
	*val = strtoul(buf, &end, 10);
	return !errno && !*end;
}

/* The value of @attr, ULONG_MAX if it cannot be read. */
static inline unsigned long ksm_ul(const char *attr)
{
	unsigned long val;

	return sysfs_read_ul(attr, &val) ? val : ULONG_MAX;
}

/* Writes @val to @attr; errno is the write's on failure. */
static inline bool sysfs_write(const char *attr, const char *val)
{
	size_t len = strlen(val);
	char path[128];
	ssize_t n;
	int fd, err;

	snprintf(path, sizeof(path), KSM_DIR "/%s", attr);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return false;
	n = write(fd, val, len);
	err = errno;
	close(fd);
	errno = err;
	return n == (ssize_t)len;
}

/* An attribute a test may change, and its value before the first change. */
struct saved_attr {
	const char *name;
	char val[64];
	bool saved;
};

/* advisor_mode reads "[none] scan-time", merge_scope "[global] ...": keep the word in brackets. */
static inline void selected_word(char *val)
{
	char *open = strchr(val, '['), *close;

	if (!open)
		return;
	close = strchr(open, ']');
	if (!close)
		return;
	memmove(val, open + 1, close - open - 1);
	val[close - open - 1] = '\0';
}

/*
 * Writes @val to @attr, which must be one of the @n @attrs, saving its value
 * first the first time, to put it back with saved_attrs_restore().
 */
static inline bool saved_attr_set(struct saved_attr *attrs, size_t n,
				  const char *attr, const char *val)
{
	struct saved_attr *s = NULL;
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(attrs[i].name, attr))
			s = &attrs[i];
	if (!s)
		ksft_exit_fail_msg("%s is not in saved_attrs\n", attr);
	if (!s->saved) {
		if (!sysfs_read(attr, s->val, sizeof(s->val))) {
			ksft_print_msg("reading %s/%s failed: %s\n", KSM_DIR,
				       attr, strerror(errno));
			return false;
		}
		/* advisor_mode, merge_scope: "[none] scan-time" */
		if (strchr(s->val, '['))
			selected_word(s->val);
		s->saved = true;
	}
	if (sysfs_write(attr, val))
		return true;
	ksft_print_msg("writing \"%s\" to %s/%s failed: %s\n", val, KSM_DIR,
		       attr, strerror(errno));
	return false;
}

/*
 * Puts back every saved attribute of the @n @attrs, in their order; with
 * @unmerge, after run=2, so that none is EBUSY for KSM pages still around.
 */
static inline bool saved_attrs_restore(struct saved_attr *attrs, size_t n,
				       bool unmerge)
{
	bool ok = true, any = false;
	size_t i;

	for (i = 0; i < n; i++)
		any |= attrs[i].saved;
	if (!any)
		return true;
	if (unmerge && !sysfs_write("run", "2")) {
		ksft_print_msg("writing 2 to %s/run failed: %s\n", KSM_DIR,
			       strerror(errno));
		ok = false;
	}
	for (i = 0; i < n; i++) {
		struct saved_attr *s = &attrs[i];

		if (!s->saved)
			continue;
		if (!sysfs_write(s->name, s->val)) {
			ksft_print_msg("putting back \"%s\" in %s/%s failed: %s\n",
				       s->val, KSM_DIR, s->name,
				       strerror(errno));
			ok = false;
		}
		s->saved = false;
	}
	return ok;
}

/* Fails a check (*ok = false) with a "#" line, unless cond holds. */
static inline __printf(3, 4) void expect(bool *ok, bool cond, const char *fmt, ...)
{
	va_list ap;

	if (cond)
		return;
	*ok = false;
	va_start(ap, fmt);
	printf("#    ");
	vprintf(fmt, ap);
	va_end(ap);
}

/* The number in the file at @path, LONG_MIN if it cannot be read. */
static inline long read_long(const char *path)
{
	char buf[64];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return LONG_MIN;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return LONG_MIN;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/* The pid of ksmd, 0 if there is none. */
static inline pid_t ksmd_pid(void)
{
	struct dirent *d;
	DIR *dir = opendir("/proc");
	pid_t pid = 0;

	while (dir && !pid && (d = readdir(dir))) {
		char path[300], comm[32] = "";
		int fd;

		if (d->d_name[0] < '1' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", d->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		if (read(fd, comm, sizeof(comm) - 1) > 0 && !strcmp(comm, "ksmd\n"))
			pid = atoi(d->d_name);
		close(fd);
	}
	if (dir)
		closedir(dir);
	return pid;
}

/* A bounded wait: the full scans since its start, and the time. */
struct scan_wait {
	long full0;
	unsigned long start;
};

static inline void scan_wait_start(struct scan_wait *w)
{
	w->full0 = ksm_ul("full_scans");
	w->start = now_ms();
}

/* Full scans that started after scan_wait_start() and ended. */
static inline long scan_wait_scans(const struct scan_wait *w)
{
	long full = ksm_ul("full_scans");

	/* The scan running at scan_wait_start() may have passed our pages. */
	return full > w->full0 ? full - w->full0 - 1 : 0;
}

static inline void scan_wait_note(const struct scan_wait *w, const char *what)
{
	ksft_print_msg("%s: %lu ms, %ld full scans\n", what,
		       now_ms() - w->start, scan_wait_scans(w));
}

/* The rest is async-signal-safe, for watchdogs: write(2) and no stdio. */
static inline void put_str(const char *s)
{
	ssize_t n = write(STDOUT_FILENO, s, strlen(s));

	(void)n;
}

/* Writes @val to the file at @path; errno is the write's on failure. */
static inline bool write_path(const char *path, const char *val)
{
	ssize_t len = strlen(val), n;
	int fd = open(path, O_WRONLY), err;

	if (fd < 0)
		return false;
	n = write(fd, val, len);
	err = errno;
	close(fd);
	errno = err;
	return n == len;
}

/* sysfs_write() with async-signal-safe calls only. */
static inline void raw_sysfs_write(const char *attr, const char *val)
{
	char path[128] = KSM_DIR "/";
	ssize_t n;
	int fd;

	if (strlen(path) + strlen(attr) >= sizeof(path))
		return;
	strcat(path, attr);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return;
	n = write(fd, val, strlen(val));
	(void)n;
	close(fd);
}

/* " @attr value" of /sys/kernel/mm/ksm, async-signal-safe. */
static inline void raw_sysfs_print(const char *attr)
{
	char path[128] = KSM_DIR "/", buf[32];
	ssize_t n;
	int fd;

	if (strlen(path) + strlen(attr) >= sizeof(path))
		return;
	strcat(path, attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	while (n > 0 && buf[n - 1] == '\n')
		n--;
	buf[n] = '\0';
	put_str(" ");
	put_str(attr);
	put_str(" ");
	put_str(buf);
}

/*
 * A watchdog's report: " @attr value" for each of @attrs, then "Bail out!"
 * with the @stage the test was stuck in.
 */
static inline void watchdog_report(const char *const *attrs, size_t n,
				   const char *stage)
{
	size_t i;

	put_str("\n# watchdog:");
	for (i = 0; i < n; i++)
		raw_sysfs_print(attrs[i]);
	put_str("\nBail out! watchdog: the test did not end in time, stuck in: ");
	put_str(stage);
	put_str("\n");
}

/*
 * A watchdog's clean-up: unmerges everything (run=2), then puts back the
 * attributes of @attrs that the test changed.
 */
static inline void watchdog_restore(const struct saved_attr *attrs, size_t n)
{
	size_t i;

	raw_sysfs_write("run", "2");
	for (i = 0; i < n; i++)
		if (attrs[i].saved)
			raw_sysfs_write(attrs[i].name, attrs[i].val);
}

#endif /* __KSM_RS_UTIL_H */
