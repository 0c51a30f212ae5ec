// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_sysfs_abi: the user ABI of /sys/kernel/mm/ksm, attribute by
 * attribute, as mm/ksm.c defines it: which files exist and with which mode,
 * their values right after boot, which writes are accepted and what they
 * read back as, which writes are rejected and with which errno (a rejected
 * write must leave the value alone), and that the read-only counters cannot
 * be opened for writing.
 *
 * The expectations come from mm/ksm.c (the show and store functions and
 * ksm_attrs[]), lib/kstrtox.c (kstrtouint, kstrtoul, kstrtoint, kstrtobool),
 * lib/string_helpers.c (sysfs_streq) and fs/kernfs/file.c (a write is cut
 * to PAGE_SIZE bytes and NUL-terminated before the store sees it).
 *
 * The boot defaults can only be checked on a kernel where KSM has not been
 * used yet: they are skipped when ksmd has already scanned pages
 * (full_scans or pages_scanned not 0), unless -f says the kernel is fresh.
 * Every writable attribute is put back to its value at start on exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "kselftest.h"

#define KSM_DIR		"/sys/kernel/mm/ksm"
#define NODE_DIR	"/sys/devices/system/node"
#define VAL_MAX		128

#define MODE_NONE	"[none] scan-time"
#define MODE_SCAN	"none [scan-time]"

/* Inputs longer than a page, generated at run time. */
enum gen {
	GEN_NONE,
	GEN_TRUNC7,	/* PAGE_SIZE - 1 '0's, '7', then 100 'x's */
	GEN_TRUNC1,	/* PAGE_SIZE - 1 '0's, '1', then 100 'x's */
	GEN_NINES,	/* PAGE_SIZE + 100 '9's */
	GEN_JUNK,	/* PAGE_SIZE + 100 'x's */
	GEN_NR,
};

/* What a successful write(2) returns. */
enum wret {
	RET_LEN,	/* all the bytes given */
	RET_PAGE,	/* PAGE_SIZE: kernfs cut the write */
	RET_ZERO,	/* 0: an empty write never reaches the store */
};

struct wcase {
	const char *in;		/* NULL: the generated input gen */
	size_t len;		/* bytes to write, 0: strlen(in) */
	enum gen gen;
	int err;		/* errno of a rejected write, 0: accepted */
	enum wret ret;
	const char *after;	/* read back (no '\n'), NULL: unchanged */
};

#define ACCEPT(s, v)		{ .in = (s), .after = (v) }
#define ACCEPT_N(s, n, v)	{ .in = (s), .len = (n), .after = (v) }
#define REJECT(s, e)		{ .in = (s), .err = (e) }
#define EMPTY_WRITE		{ .in = "", .ret = RET_ZERO }
#define LONG_ACCEPT(g, v)	{ .gen = (g), .ret = RET_PAGE, .after = (v) }
#define LONG_REJECT(g, e)	{ .gen = (g), .err = (e) }

/* A run of cases; an attribute's cases are a list of such runs. */
struct seg {
	const struct wcase *cases;
	size_t n;
};

#define SEG(arr)	{ .cases = (arr), .n = ARRAY_SIZE(arr) }

static const struct wcase set0[] = { ACCEPT("0", "0") };
static const struct wcase set1[] = { ACCEPT("1", "1") };

/*
 * pages_to_scan, sleep_millisecs, stable_node_chains_prune_millisecs:
 * kstrtouint(), any error (-ERANGE included) returned as -EINVAL.
 */
static const struct wcase uint_cases[] = {
	ACCEPT("0", "0"),
	ACCEPT("1", "1"),
	ACCEPT("4294967295", "4294967295"),
	ACCEPT("42\n", "42"),
	ACCEPT("+17", "17"),
	ACCEPT("0010", "10"),
	ACCEPT_N("5\0junk", 6, "5"),
	LONG_ACCEPT(GEN_TRUNC7, "7"),
	ACCEPT("123", "123"),
	REJECT("-1", EINVAL),
	REJECT("-0", EINVAL),
	REJECT("4294967296", EINVAL),
	REJECT("4294967419", EINVAL),
	REJECT("18446744073709551616", EINVAL),
	REJECT("abc", EINVAL),
	REJECT("12abc", EINVAL),
	REJECT("0x10", EINVAL),
	REJECT("1.5", EINVAL),
	REJECT(" 5", EINVAL),
	REJECT("5 ", EINVAL),
	REJECT("5\n\n", EINVAL),
	REJECT("\n5", EINVAL),
	REJECT("\n", EINVAL),
	EMPTY_WRITE,
	LONG_REJECT(GEN_NINES, EINVAL),
	LONG_REJECT(GEN_JUNK, EINVAL),
};

static const struct seg uint_segs[] = { SEG(uint_cases) };

/*
 * advisor_min_pages_to_scan, advisor_max_pages_to_scan: kstrtoul(), any
 * error returned as -EINVAL, no range check (not even min <= max).
 */
static const struct wcase ulong_accepts[] = {
	ACCEPT("0", "0"),
	ACCEPT("1", "1"),
	ACCEPT("4294967296", "4294967296"),
	ACCEPT("18446744073709551615", "18446744073709551615"),
	ACCEPT("42\n", "42"),
	ACCEPT("+17", "17"),
	ACCEPT("0010", "10"),
	ACCEPT_N("5\0junk", 6, "5"),
	LONG_ACCEPT(GEN_TRUNC7, "7"),
	ACCEPT("123", "123"),
};

static const struct wcase ulong_rejects[] = {
	REJECT("-1", EINVAL),
	REJECT("-0", EINVAL),
	REJECT("18446744073709551616", EINVAL),
	REJECT("18446744073709551739", EINVAL),
	REJECT("99999999999999999999", EINVAL),
	REJECT("abc", EINVAL),
	REJECT("12abc", EINVAL),
	REJECT("0x10", EINVAL),
	REJECT("1.5", EINVAL),
	REJECT(" 5", EINVAL),
	REJECT("5 ", EINVAL),
	REJECT("5\n\n", EINVAL),
	REJECT("\n5", EINVAL),
	REJECT("\n", EINVAL),
	EMPTY_WRITE,
	LONG_REJECT(GEN_NINES, EINVAL),
	LONG_REJECT(GEN_JUNK, EINVAL),
};

static const struct seg ulong_segs[] = {
	SEG(ulong_accepts), SEG(ulong_rejects),
};

/* advisor_target_scan_time: as above, but 0 is -EINVAL. */
static const struct wcase target_accepts[] = {
	ACCEPT("1", "1"),
	ACCEPT("4294967296", "4294967296"),
	ACCEPT("18446744073709551615", "18446744073709551615"),
	ACCEPT("42\n", "42"),
	ACCEPT("+17", "17"),
	ACCEPT("0010", "10"),
	ACCEPT_N("5\0junk", 6, "5"),
	LONG_ACCEPT(GEN_TRUNC7, "7"),
	ACCEPT("123", "123"),
	REJECT("0", EINVAL),
	REJECT("0\n", EINVAL),
	REJECT("000", EINVAL),
};

static const struct seg target_segs[] = {
	SEG(target_accepts), SEG(ulong_rejects),
};

/*
 * advisor_max_cpu: parsed with kstrtoul() into an unsigned int, with no
 * upper limit: a value above UINT_MAX is cut to its low 32 bits.
 */
static const struct wcase max_cpu_accepts[] = {
	ACCEPT("0", "0"),
	ACCEPT("1", "1"),
	ACCEPT("100", "100"),
	ACCEPT("101", "101"),
	ACCEPT("4294967295", "4294967295"),
	ACCEPT("4294967296", "0"),
	ACCEPT("4294967297", "1"),
	ACCEPT("18446744073709551615", "4294967295"),
	ACCEPT("42\n", "42"),
	ACCEPT("+17", "17"),
	ACCEPT("0010", "10"),
	ACCEPT_N("5\0junk", 6, "5"),
	LONG_ACCEPT(GEN_TRUNC7, "7"),
	ACCEPT("123", "123"),
};

static const struct seg max_cpu_segs[] = {
	SEG(max_cpu_accepts), SEG(ulong_rejects),
};

/* run: kstrtouint(), then only 0, 1 and 2; every error is -EINVAL. */
static const struct wcase run_accepts[] = {
	ACCEPT("1", "1"),
	ACCEPT("0", "0"),
	ACCEPT("2", "2"),
	ACCEPT("0\n", "0"),
	ACCEPT("1\n", "1"),
	ACCEPT("2\n", "2"),
	ACCEPT("+0", "0"),
	ACCEPT("01", "1"),
	ACCEPT_N("2\0junk", 6, "2"),
	ACCEPT("0", "0"),
};

static const struct wcase run_rejects[] = {
	REJECT("3", EINVAL),
	REJECT("4", EINVAL),
	REJECT("-1", EINVAL),
	REJECT("4294967296", EINVAL),
	REJECT("4294967297", EINVAL),
	REJECT("abc", EINVAL),
	REJECT("1abc", EINVAL),
	REJECT(" 1", EINVAL),
	REJECT("1 ", EINVAL),
	REJECT("\n", EINVAL),
	EMPTY_WRITE,
	LONG_REJECT(GEN_NINES, EINVAL),
	LONG_REJECT(GEN_JUNK, EINVAL),
};

static const struct wcase run_tail[] = {
	ACCEPT("2", "2"),
	LONG_ACCEPT(GEN_TRUNC1, "1"),
	ACCEPT("0", "0"),
};

static const struct seg run_segs[] = {
	SEG(run_accepts), SEG(run_rejects), SEG(set1), SEG(run_rejects),
	SEG(run_tail),
};

/*
 * use_zero_pages, smart_scan: kstrtobool(), which only looks at the first
 * character (two for "on"/"off"), errors returned as -EINVAL.
 */
static const struct wcase bool_accepts[] = {
	ACCEPT("1", "1"),
	ACCEPT("0", "0"),
	ACCEPT("y", "1"),
	ACCEPT("n", "0"),
	ACCEPT("Y", "1"),
	ACCEPT("N", "0"),
	ACCEPT("yes", "1"),
	ACCEPT("no", "0"),
	ACCEPT("t", "1"),
	ACCEPT("f", "0"),
	ACCEPT("T", "1"),
	ACCEPT("F", "0"),
	ACCEPT("true", "1"),
	ACCEPT("false", "0"),
	ACCEPT("on", "1"),
	ACCEPT("off", "0"),
	ACCEPT("ON", "1"),
	ACCEPT("OFF", "0"),
	ACCEPT("oN", "1"),
	ACCEPT("oF", "0"),
	ACCEPT("e", "1"),
	ACCEPT("d", "0"),
	ACCEPT("E", "1"),
	ACCEPT("D", "0"),
	ACCEPT("enable", "1"),
	ACCEPT("disable", "0"),
	ACCEPT("1\n", "1"),
	ACCEPT("0\n", "0"),
	ACCEPT("12abc", "1"),
	ACCEPT("0abc", "0"),
	ACCEPT("yolo", "1"),
	ACCEPT("nonsense", "0"),
	ACCEPT("1", "1"),
	LONG_ACCEPT(GEN_TRUNC7, "0"),
	ACCEPT("1", "1"),
};

static const struct wcase bool_rejects[] = {
	REJECT("2", EINVAL),
	REJECT("-1", EINVAL),
	REJECT("+1", EINVAL),
	REJECT("abc", EINVAL),
	REJECT("o", EINVAL),
	REJECT("ox", EINVAL),
	REJECT("x1", EINVAL),
	REJECT(" 1", EINVAL),
	REJECT("\n1", EINVAL),
	REJECT("\n", EINVAL),
	REJECT("4294967296", EINVAL),
	EMPTY_WRITE,
	LONG_REJECT(GEN_NINES, EINVAL),
	LONG_REJECT(GEN_JUNK, EINVAL),
};

static const struct seg bool_segs[] = {
	SEG(bool_accepts), SEG(bool_rejects), SEG(set0), SEG(bool_rejects),
};

/*
 * merge_across_nodes: kstrtoul() whose error is returned as is (-ERANGE
 * on overflow), then -EINVAL above 1.
 */
static const struct wcase man_accepts[] = {
	ACCEPT("0", "0"),
	ACCEPT("1", "1"),
	ACCEPT("0\n", "0"),
	ACCEPT("1\n", "1"),
	ACCEPT("+0", "0"),
	ACCEPT("01", "1"),
	ACCEPT("000", "0"),
	ACCEPT_N("1\0junk", 6, "1"),
	ACCEPT("0", "0"),
	LONG_ACCEPT(GEN_TRUNC1, "1"),
};

static const struct wcase man_rejects[] = {
	REJECT("2", EINVAL),
	REJECT("-1", EINVAL),
	REJECT("4294967296", EINVAL),
	REJECT("4294967297", EINVAL),
	REJECT("18446744073709551615", EINVAL),
	REJECT("18446744073709551616", ERANGE),
	REJECT("18446744073709551617", ERANGE),
	REJECT("99999999999999999999", ERANGE),
	REJECT("abc", EINVAL),
	REJECT("0abc", EINVAL),
	REJECT("1abc", EINVAL),
	REJECT("y", EINVAL),
	REJECT(" 1", EINVAL),
	REJECT("\n", EINVAL),
	EMPTY_WRITE,
	LONG_REJECT(GEN_NINES, ERANGE),
	LONG_REJECT(GEN_JUNK, EINVAL),
};

static const struct seg man_segs[] = {
	SEG(man_accepts), SEG(man_rejects), SEG(set0), SEG(man_rejects),
	SEG(set1),
};

/*
 * max_page_sharing: kstrtoint() whose error is returned as is (-ERANGE
 * outside int), then -EINVAL below 2.
 */
static const struct wcase mps_cases[] = {
	ACCEPT("2", "2"),
	ACCEPT("3", "3"),
	ACCEPT("2147483647", "2147483647"),
	ACCEPT("256\n", "256"),
	ACCEPT("+5", "5"),
	ACCEPT("0010", "10"),
	ACCEPT_N("7\0junk", 6, "7"),
	ACCEPT("2", "2"),
	LONG_ACCEPT(GEN_TRUNC7, "7"),
	ACCEPT("123", "123"),
	REJECT("1", EINVAL),
	REJECT("0", EINVAL),
	REJECT("-0", EINVAL),
	REJECT("-1", EINVAL),
	REJECT("-2", EINVAL),
	REJECT("-2147483648", EINVAL),
	REJECT("-2147483649", ERANGE),
	REJECT("2147483648", ERANGE),
	REJECT("4294967296", ERANGE),
	REJECT("4294967298", ERANGE),
	REJECT("18446744073709551616", ERANGE),
	REJECT("-18446744073709551616", ERANGE),
	REJECT("99999999999999999999", ERANGE),
	REJECT("abc", EINVAL),
	REJECT("12abc", EINVAL),
	REJECT("0x10", EINVAL),
	REJECT("-", EINVAL),
	REJECT("--5", EINVAL),
	REJECT("+-5", EINVAL),
	REJECT(" 5", EINVAL),
	REJECT("5 ", EINVAL),
	REJECT("5\n\n", EINVAL),
	REJECT("\n", EINVAL),
	EMPTY_WRITE,
	LONG_REJECT(GEN_NINES, ERANGE),
	LONG_REJECT(GEN_JUNK, EINVAL),
};

static const struct seg mps_segs[] = { SEG(mps_cases) };

/* advisor_mode: sysfs_streq() with "scan-time" or "none", else -EINVAL. */
static const struct wcase mode_accepts[] = {
	ACCEPT("scan-time", MODE_SCAN),
	ACCEPT("none", MODE_NONE),
	ACCEPT("scan-time\n", MODE_SCAN),
	ACCEPT("none\n", MODE_NONE),
	ACCEPT_N("scan-time\0junk", 14, MODE_SCAN),
	ACCEPT_N("none\0junk", 9, MODE_NONE),
	ACCEPT("scan-time", MODE_SCAN),
};

static const struct wcase mode_rejects[] = {
	REJECT("foo", EINVAL),
	REJECT("NONE", EINVAL),
	REJECT("None", EINVAL),
	REJECT("Scan-time", EINVAL),
	REJECT("scan_time", EINVAL),
	REJECT("scantime", EINVAL),
	REJECT("scan", EINVAL),
	REJECT("non", EINVAL),
	REJECT("nonex", EINVAL),
	REJECT("none ", EINVAL),
	REJECT("scan-time ", EINVAL),
	REJECT(" none", EINVAL),
	REJECT("none\n\n", EINVAL),
	REJECT("scan-time\n\n", EINVAL),
	REJECT("\nnone", EINVAL),
	REJECT("[none]", EINVAL),
	REJECT("[none] scan-time", EINVAL),
	REJECT("none [scan-time]", EINVAL),
	REJECT("0", EINVAL),
	REJECT("1", EINVAL),
	REJECT("\n", EINVAL),
	EMPTY_WRITE,
	LONG_REJECT(GEN_NINES, EINVAL),
	LONG_REJECT(GEN_JUNK, EINVAL),
};

static const struct wcase mode_set_none[] = { ACCEPT("none", MODE_NONE) };

static const struct seg mode_segs[] = {
	SEG(mode_accepts), SEG(mode_rejects), SEG(mode_set_none),
	SEG(mode_rejects),
};

struct rw_attr {
	const char *name;
	const char *def;	/* value at boot, without the '\n' */
	const struct seg *segs;
	size_t nsegs;
	bool numa;		/* only with CONFIG_NUMA */
};

#define RW(n, d, s)	{ .name = (n), .def = (d), .segs = (s),		\
			  .nsegs = ARRAY_SIZE(s) }

/* In the order the cases run: run and advisor_mode after the others. */
static const struct rw_attr rw_attrs[] = {
	RW("pages_to_scan", "100", uint_segs),
	RW("sleep_millisecs", "20", uint_segs),
	{ .name = "merge_across_nodes", .def = "1", .segs = man_segs,
	  .nsegs = ARRAY_SIZE(man_segs), .numa = true },
	RW("use_zero_pages", "0", bool_segs),
	RW("max_page_sharing", "256", mps_segs),
	RW("stable_node_chains_prune_millisecs", "2000", uint_segs),
	RW("smart_scan", "1", bool_segs),
	RW("advisor_max_cpu", "70", max_cpu_segs),
	RW("advisor_min_pages_to_scan", "500", ulong_segs),
	RW("advisor_max_pages_to_scan", "30000", ulong_segs),
	RW("advisor_target_scan_time", "200", target_segs),
	RW("advisor_mode", MODE_NONE, mode_segs),
	RW("run", "0", run_segs),
};

#define NR_RW	ARRAY_SIZE(rw_attrs)

/* Read-only counters: all 0 on a kernel where KSM was never used. */
static const char * const ro_attrs[] = {
	"full_scans",
	"pages_scanned",
	"pages_shared",
	"pages_sharing",
	"pages_unshared",
	"pages_volatile",
	"pages_skipped",
	"ksm_zero_pages",
	"general_profit",
	"stable_node_chains",
	"stable_node_dups",
};

#define NR_RO	ARRAY_SIZE(ro_attrs)

#define NR_INTERPLAY	6

static size_t pagesize;
static bool numa;
static char *gen_buf[GEN_NR];
static char gen_desc[GEN_NR][64];
static char orig[NR_RW][VAL_MAX];
static bool have_orig[NR_RW];
static bool restored;

static bool present(const struct rw_attr *a)
{
	return !a->numa || numa;
}

static size_t nr_cases(const struct rw_attr *a)
{
	size_t i, n = 0;

	for (i = 0; i < a->nsegs; i++)
		n += a->segs[i].n;
	return n;
}

static const char *errname(int err)
{
	static char buf[32];

	switch (err) {
	case 0:
		return "no error";
	case EINVAL:
		return "EINVAL";
	case ERANGE:
		return "ERANGE";
	case EACCES:
		return "EACCES";
	case EPERM:
		return "EPERM";
	case EBUSY:
		return "EBUSY";
	case E2BIG:
		return "E2BIG";
	case ENOENT:
		return "ENOENT";
	case ENOMEM:
		return "ENOMEM";
	case EFAULT:
		return "EFAULT";
	case ENODEV:
		return "ENODEV";
	case EIO:
		return "EIO";
	}
	snprintf(buf, sizeof(buf), "errno %d", err);
	return buf;
}

static void path_of(char *path, size_t size, const char *name)
{
	snprintf(path, size, "%s/%s", KSM_DIR, name);
}

/* Reads a whole attribute into val; returns 0 or -errno. */
static int read_attr(const char *name, char *val, size_t size)
{
	char path[PATH_MAX];
	size_t off = 0;
	ssize_t ret;
	int fd;

	val[0] = '\0';
	path_of(path, sizeof(path), name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	while (off < size - 1) {
		ret = read(fd, val + off, size - 1 - off);
		if (ret < 0) {
			ret = -errno;
			close(fd);
			return ret;
		}
		if (!ret)
			break;
		off += ret;
	}
	val[off] = '\0';
	close(fd);
	return 0;
}

/*
 * One write(2) of len bytes on a fresh O_WRONLY fd. Returns what write
 * returned (-1 with *err set) or -2 when open() failed (*err set).
 */
static ssize_t write_attr(const char *name, const char *buf, size_t len,
			  int *err)
{
	char path[PATH_MAX];
	ssize_t ret;
	int fd;

	*err = 0;
	path_of(path, sizeof(path), name);
	fd = open(path, O_WRONLY);
	if (fd < 0) {
		*err = errno;
		return -2;
	}
	ret = write(fd, buf, len);
	if (ret < 0)
		*err = errno;
	close(fd);
	return ret;
}

/* Writes a string, true when the whole of it was accepted. */
static bool set_attr(const char *name, const char *val)
{
	size_t len = strlen(val);
	int err;

	if (write_attr(name, val, len, &err) == (ssize_t)len)
		return true;
	ksft_print_msg("setting %s to \"%s\" failed: %s\n", name, val,
		       errname(err));
	return false;
}

/* Reads an attribute and compares it with want plus a newline. */
static bool attr_is(const char *name, const char *want, char *got,
		    size_t size)
{
	size_t len = strlen(want);

	if (read_attr(name, got, size))
		return false;
	return !strncmp(got, want, len) && got[len] == '\n' && !got[len + 1];
}

/* A value as read, without its newline, for messages. */
static const char *chomp(const char *val)
{
	static char buf[2][VAL_MAX];
	static int i;
	char *p = buf[i++ & 1];
	size_t len;

	snprintf(p, VAL_MAX, "%s", val);
	len = strlen(p);
	if (len && p[len - 1] == '\n')
		p[len - 1] = '\0';
	return p;
}

/* The input of a case, quoted with C escapes, for messages. */
static const char *quote(const struct wcase *c, char *buf, size_t size)
{
	size_t len, i, o = 0;

	if (!c->in)
		return gen_desc[c->gen];
	len = c->len ? c->len : strlen(c->in);
	buf[o++] = '"';
	for (i = 0; i < len && o + 6 < size; i++) {
		unsigned char ch = c->in[i];

		if (ch == '\n')
			o += snprintf(buf + o, size - o, "\\n");
		else if (ch == '\0')
			o += snprintf(buf + o, size - o, "\\0");
		else if (ch == '"' || ch == '\\')
			o += snprintf(buf + o, size - o, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			o += snprintf(buf + o, size - o, "\\x%02x", ch);
		else
			buf[o++] = ch;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

static void make_gen(void)
{
	size_t n = pagesize + 100;
	int g;

	for (g = GEN_TRUNC7; g < GEN_NR; g++) {
		gen_buf[g] = malloc(n + 1);
		if (!gen_buf[g])
			ksft_exit_fail_msg("out of memory\n");
	}
	memset(gen_buf[GEN_TRUNC7], '0', pagesize - 1);
	gen_buf[GEN_TRUNC7][pagesize - 1] = '7';
	memset(gen_buf[GEN_TRUNC7] + pagesize, 'x', 100);
	memcpy(gen_buf[GEN_TRUNC1], gen_buf[GEN_TRUNC7], n);
	gen_buf[GEN_TRUNC1][pagesize - 1] = '1';
	memset(gen_buf[GEN_NINES], '9', n);
	memset(gen_buf[GEN_JUNK], 'x', n);
	for (g = GEN_TRUNC7; g < GEN_NR; g++)
		gen_buf[g][n] = '\0';

	snprintf(gen_desc[GEN_TRUNC7], 64, "[%zu '0' then '7' then 100 'x': %zu bytes]",
		 pagesize - 1, n);
	snprintf(gen_desc[GEN_TRUNC1], 64, "[%zu '0' then '1' then 100 'x': %zu bytes]",
		 pagesize - 1, n);
	snprintf(gen_desc[GEN_NINES], 64, "[%zu '9']", n);
	snprintf(gen_desc[GEN_JUNK], 64, "[%zu 'x']", n);
}

static void print_inputs(const struct rw_attr *a)
{
	char line[160], q[96];
	size_t i, j, o = 0;

	ksft_print_msg("%s: inputs tried, in this order:\n", a->name);
	for (i = 0; i < a->nsegs; i++) {
		for (j = 0; j < a->segs[i].n; j++) {
			const char *s = quote(&a->segs[i].cases[j], q,
					      sizeof(q));

			if (o && o + strlen(s) + 2 > 76) {
				ksft_print_msg("  %s\n", line);
				o = 0;
			}
			o += snprintf(line + o, sizeof(line) - o, "%s%s",
				      o ? ", " : "", s);
		}
	}
	if (o)
		ksft_print_msg("  %s\n", line);
}

static void run_case(const struct rw_attr *a, const struct wcase *c)
{
	char pre[VAL_MAX], post[VAL_MAX], q[96];
	const char *in = c->in ? c->in : gen_buf[c->gen];
	size_t len = c->in ? (c->len ? c->len : strlen(c->in)) : strlen(in);
	const char *desc = quote(c, q, sizeof(q));
	ssize_t want, ret;
	bool ok;
	int err;

	if (read_attr(a->name, pre, sizeof(pre))) {
		ksft_test_result_fail("%s: write %s: cannot read the value before\n",
				      a->name, desc);
		return;
	}
	ret = write_attr(a->name, in, len, &err);
	if (read_attr(a->name, post, sizeof(post)))
		snprintf(post, sizeof(post), "(unreadable)");

	if (c->err) {
		ok = ret == -1 && err == c->err && !strcmp(pre, post);
		ksft_test_result(ok, "%s: write %s fails with %s and leaves %s\n",
				 a->name, desc, errname(c->err), chomp(pre));
	} else if (c->ret == RET_ZERO) {
		ok = ret == 0 && !strcmp(pre, post);
		ksft_test_result(ok, "%s: write %s (0 bytes) returns 0 and leaves %s\n",
				 a->name, desc, chomp(pre));
	} else {
		size_t alen = strlen(c->after);

		want = c->ret == RET_PAGE ? (ssize_t)pagesize : (ssize_t)len;
		ok = ret == want && !strncmp(post, c->after, alen) &&
		     post[alen] == '\n' && !post[alen + 1];
		ksft_test_result(ok, "%s: write %s returns %zd and reads back %s\n",
				 a->name, desc, want, c->after);
	}
	if (!ok)
		ksft_print_msg("   got: write returned %zd (%s), value before \"%s\", after \"%s\"\n",
			       ret, ret == -2 ? "open failed" : errname(err),
			       chomp(pre), chomp(post));
}

static bool is_decimal_line(const char *s)
{
	if (*s == '-')
		s++;
	if (*s < '0' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9')
		s++;
	return s[0] == '\n' && !s[1];
}

static void check_mode(const char *name, mode_t want)
{
	char path[PATH_MAX];
	struct stat st;
	int ret, err;
	bool ok;

	path_of(path, sizeof(path), name);
	ret = stat(path, &st);
	err = errno;
	ok = !ret && S_ISREG(st.st_mode) && (st.st_mode & 07777) == want;
	ksft_test_result(ok, "%s: exists, a regular file with mode 0%o\n",
			 name, want);
	if (ret)
		ksft_print_msg("   stat: %s\n", errname(err));
	else if (!ok)
		ksft_print_msg("   st_mode 0%o\n", st.st_mode);
}

static void check_default(const char *name, const char *def, bool fresh)
{
	char val[VAL_MAX];
	bool ok;

	if (!fresh) {
		ksft_test_result_skip("%s: reads %s at boot (KSM was used already)\n",
				      name, def);
		return;
	}
	ok = attr_is(name, def, val, sizeof(val));
	ksft_test_result(ok, "%s: reads %s at boot\n", name, def);
	if (!ok)
		ksft_print_msg("   got \"%s\"\n", chomp(val));
}

/*
 * ksm_rs extensions, absent from mm/ksm.c: accepted in the listing when
 * present, never required; the upstream names above must all be there.
 * advisor_pressure_*: the pressure-following policy (advisor_mode pressure,
 * Documentation/mm/ksm_rs.rst), tested by ksm_rs_pressure; merge_scope: merge
 * domains, tested by ksm_rs_domains.
 */
static const char * const ext_attrs[] = {
	"merge_scope",
	"merge_now",		/* ksm_rs_merge_now */
	"merge_fresh_frame",	/* ksm_rs_fresh_frame */
	"advisor_pressure_interval_millisecs",
	"advisor_pressure_boost",
	"advisor_pressure_decay",
	"advisor_pressure_min_pages_to_scan",
	"advisor_pressure_max_pages_to_scan",
	"advisor_pressure_thres_percent",
	"advisor_pressure_thres_kbytes",
	"advisor_pressure_active",
};

static bool is_ext_attr(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ext_attrs); i++)
		if (!strcmp(name, ext_attrs[i]))
			return true;
	return false;
}

/* Every name in the directory, and nothing else (but the extensions). */
static void check_listing(void)
{
	bool seen_rw[NR_RW] = { }, seen_ro[NR_RO] = { };
	struct dirent *de;
	bool ok = true;
	size_t i;
	DIR *dir;

	dir = opendir(KSM_DIR);
	if (!dir) {
		ksft_test_result_fail("%s lists exactly the upstream attributes\n",
				      KSM_DIR);
		return;
	}
	while ((de = readdir(dir))) {
		bool known = false;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		for (i = 0; i < NR_RW; i++) {
			if (present(&rw_attrs[i]) &&
			    !strcmp(de->d_name, rw_attrs[i].name)) {
				seen_rw[i] = known = true;
			}
		}
		for (i = 0; i < NR_RO; i++) {
			if (!strcmp(de->d_name, ro_attrs[i]))
				seen_ro[i] = known = true;
		}
		if (!known && is_ext_attr(de->d_name)) {
			ksft_print_msg("   ksm_rs extension %s\n", de->d_name);
			known = true;
		}
		if (!known) {
			ksft_print_msg("   unexpected entry %s\n", de->d_name);
			ok = false;
		}
	}
	closedir(dir);
	for (i = 0; i < NR_RW; i++) {
		if (present(&rw_attrs[i]) && !seen_rw[i]) {
			ksft_print_msg("   missing %s\n", rw_attrs[i].name);
			ok = false;
		}
	}
	for (i = 0; i < NR_RO; i++) {
		if (!seen_ro[i]) {
			ksft_print_msg("   missing %s\n", ro_attrs[i]);
			ok = false;
		}
	}
	ksft_test_result(ok, "%s lists exactly the %zu upstream attributes%s\n",
			 KSM_DIR, NR_RO + NR_RW - (numa ? 0 : 1),
			 numa ? "" : " (no merge_across_nodes without NUMA)");
}

static void check_ro(const char *name)
{
	char path[PATH_MAX], val[VAL_MAX];
	int fd, err;
	bool ok;

	ok = !read_attr(name, val, sizeof(val)) && is_decimal_line(val);
	ksft_test_result(ok, "%s: reads as a decimal number and a newline\n",
			 name);
	if (!ok)
		ksft_print_msg("   got \"%s\"\n", chomp(val));

	path_of(path, sizeof(path), name);
	fd = open(path, O_WRONLY);
	err = errno;
	ksft_test_result(fd < 0 && err == EACCES,
			 "%s: open(O_WRONLY) fails with EACCES\n", name);
	if (fd >= 0) {
		ksft_print_msg("   open succeeded\n");
		close(fd);
	} else if (err != EACCES) {
		ksft_print_msg("   got %s\n", errname(err));
	}

	fd = open(path, O_RDWR);
	err = errno;
	ksft_test_result(fd < 0 && err == EACCES,
			 "%s: open(O_RDWR) fails with EACCES\n", name);
	if (fd >= 0) {
		ksft_print_msg("   open succeeded\n");
		close(fd);
	} else if (err != EACCES) {
		ksft_print_msg("   got %s\n", errname(err));
	}
}

/* A check that a write is accepted and an attribute reads want. */
static void expect(bool ok, const char *name, const char *want,
		   const char *what)
{
	char val[VAL_MAX] = "";

	ok = ok && attr_is(name, want, val, sizeof(val));
	ksft_test_result(ok, "%s\n", what);
	if (!ok)
		ksft_print_msg("   %s reads \"%s\", expected \"%s\"\n", name,
			       chomp(val), want);
}

/*
 * advisor_mode and pages_to_scan: turning the scan-time advisor on sets
 * pages_to_scan to advisor_min_pages_to_scan and makes pages_to_scan
 * read-only (-EINVAL); turning it off sets pages_to_scan back to 100.
 * Writing the mode already in force changes nothing.
 */
static void check_interplay(void)
{
	char val[VAL_MAX] = "";
	bool ok;
	int err = 0;

	ksft_print_msg("advisor_mode and pages_to_scan, writes in this order:\n");
	ksft_print_msg("  advisor_mode none, advisor_min_pages_to_scan 777\n");
	ksft_print_msg("  pages_to_scan 1234, advisor_mode scan-time\n");
	ksft_print_msg("  pages_to_scan 100, advisor_min_pages_to_scan 888\n");
	ksft_print_msg("  advisor_mode scan-time, advisor_mode none\n");
	ksft_print_msg("  pages_to_scan 1234, advisor_mode none\n");
	ok = set_attr("advisor_mode", "none") &&
	     set_attr("advisor_min_pages_to_scan", "777") &&
	     set_attr("pages_to_scan", "1234") &&
	     set_attr("advisor_mode", "scan-time");
	expect(ok, "pages_to_scan", "777",
	       "advisor_mode: none -> scan-time sets pages_to_scan to advisor_min_pages_to_scan (777)");

	ok = write_attr("pages_to_scan", "100", 3, &err) == -1 &&
	     err == EINVAL && attr_is("pages_to_scan", "777", val, sizeof(val));
	ksft_test_result(ok, "pages_to_scan: write \"100\" fails with EINVAL, leaves 777 (scan-time)\n");
	if (!ok)
		ksft_print_msg("   got %s, pages_to_scan \"%s\"\n",
			       errname(err), chomp(val));

	ok = set_attr("advisor_min_pages_to_scan", "888") &&
	     attr_is("advisor_min_pages_to_scan", "888", val, sizeof(val)) &&
	     set_attr("advisor_mode", "scan-time");
	expect(ok, "pages_to_scan", "777",
	       "advisor_mode: scan-time -> scan-time leaves pages_to_scan at 777, not 888");

	ok = set_attr("advisor_mode", "none");
	expect(ok, "pages_to_scan", "100",
	       "advisor_mode: scan-time -> none sets pages_to_scan to 100, not the 1234 written before");

	ok = set_attr("pages_to_scan", "1234");
	expect(ok, "pages_to_scan", "1234",
	       "pages_to_scan: write \"1234\" accepted again once advisor_mode is none");

	ok = set_attr("advisor_mode", "none");
	expect(ok, "pages_to_scan", "1234",
	       "advisor_mode: none -> none leaves pages_to_scan at 1234");
}

static const char *mode_word(const char *val)
{
	return strstr(val, "[scan-time]") ? "scan-time" : "none";
}

static int find_rw(const char *name)
{
	size_t i;

	for (i = 0; i < NR_RW; i++)
		if (!strcmp(rw_attrs[i].name, name))
			return i;
	return -1;
}

/*
 * Puts every writable attribute back: advisor_mode to none first (so that
 * pages_to_scan can be written), then the plain tunables, then
 * advisor_mode and last run.
 */
static void restore_all(bool report)
{
	int mode = find_rw("advisor_mode"), run = find_rw("run");
	char val[VAL_MAX];
	size_t i;
	int err;

	if (restored)
		return;
	restored = true;

	write_attr("advisor_mode", "none", 4, &err);
	for (i = 0; i < NR_RW; i++) {
		if ((int)i == mode || (int)i == run || !have_orig[i])
			continue;
		write_attr(rw_attrs[i].name, orig[i], strlen(orig[i]), &err);
	}
	if (have_orig[mode])
		write_attr("advisor_mode", mode_word(orig[mode]),
			   strlen(mode_word(orig[mode])), &err);
	if (have_orig[run])
		write_attr("run", orig[run], strlen(orig[run]), &err);

	if (!report)
		return;
	for (i = 0; i < NR_RW; i++) {
		const struct rw_attr *a = &rw_attrs[i];
		bool ok;

		if (!present(a))
			continue;
		ok = have_orig[i] && !read_attr(a->name, val, sizeof(val)) &&
		     !strcmp(val, orig[i]);
		ksft_test_result(ok, "restore: %s back to %s\n", a->name,
				 chomp(orig[i]));
		if (!ok)
			ksft_print_msg("   reads \"%s\"\n", chomp(val));
	}
}

static void restore_at_exit(void)
{
	restore_all(false);
}

static unsigned long read_ulong(const char *name)
{
	char val[VAL_MAX];

	if (read_attr(name, val, sizeof(val)))
		return 0;
	return strtoul(val, NULL, 10);
}

int main(int argc, char **argv)
{
	unsigned long full_scans, pages_scanned;
	unsigned int plan;
	bool fresh;
	size_t i, j, k;
	int opt;

	fresh = false;
	while ((opt = getopt(argc, argv, "f")) != -1) {
		if (opt != 'f') {
			fprintf(stderr, "usage: %s [-f]\n", argv[0]);
			return KSFT_FAIL;
		}
		fresh = true;
	}

	ksft_print_header();
	if (access(KSM_DIR, F_OK))
		ksft_exit_skip("%s does not exist (no CONFIG_KSM)\n", KSM_DIR);
	if (geteuid())
		ksft_exit_skip("must run as root\n");

	pagesize = sysconf(_SC_PAGESIZE);
	numa = !access(NODE_DIR, F_OK);
	make_gen();

	plan = 1 + NR_RO * 5 + NR_INTERPLAY;
	for (i = 0; i < NR_RW; i++)
		plan += present(&rw_attrs[i]) ? nr_cases(&rw_attrs[i]) + 3 : 1;
	ksft_set_plan(plan);

	full_scans = read_ulong("full_scans");
	pages_scanned = read_ulong("pages_scanned");
	if (full_scans || pages_scanned) {
		ksft_print_msg("KSM has run since boot: full_scans %lu, pages_scanned %lu\n",
			       full_scans, pages_scanned);
		if (!fresh)
			ksft_print_msg("boot defaults are skipped (-f checks them anyway)\n");
	} else {
		fresh = true;
	}
	ksft_print_msg("page size %zu, NUMA %s\n", pagesize, numa ? "yes" : "no");

	/* Save everything first, so that a bail out can put it back. */
	for (i = 0; i < NR_RW; i++) {
		if (!present(&rw_attrs[i]))
			continue;
		have_orig[i] = !read_attr(rw_attrs[i].name, orig[i],
					  sizeof(orig[i])) && orig[i][0];
		if (have_orig[i])
			ksft_print_msg("%s was %s\n", rw_attrs[i].name,
				       chomp(orig[i]));
	}
	atexit(restore_at_exit);

	check_listing();

	/* Modes and boot values, before anything is written. */
	for (i = 0; i < NR_RW; i++) {
		const struct rw_attr *a = &rw_attrs[i];
		char path[PATH_MAX];
		bool ok;

		if (!present(a)) {
			path_of(path, sizeof(path), a->name);
			ok = access(path, F_OK) && errno == ENOENT;
			ksft_test_result(ok, "%s: absent without CONFIG_NUMA\n",
					 a->name);
			continue;
		}
		check_mode(a->name, 0644);
		check_default(a->name, a->def, fresh);
	}
	for (i = 0; i < NR_RO; i++) {
		check_mode(ro_attrs[i], 0444);
		check_default(ro_attrs[i], "0", fresh);
	}
	for (i = 0; i < NR_RO; i++)
		check_ro(ro_attrs[i]);

	/* ksmd stopped and no advisor while the tunables are exercised. */
	if (!set_attr("run", "0") || !set_attr("advisor_mode", "none"))
		ksft_exit_fail_msg("cannot stop ksmd or the advisor\n");

	for (i = 0; i < NR_RW; i++) {
		const struct rw_attr *a = &rw_attrs[i];

		if (!present(a))
			continue;
		print_inputs(a);
		for (j = 0; j < a->nsegs; j++)
			for (k = 0; k < a->segs[j].n; k++)
				run_case(a, &a->segs[j].cases[k]);
	}

	check_interplay();

	restore_all(true);

	ksft_finished();
}
