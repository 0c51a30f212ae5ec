// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_rs_collide: pages of different contents whose xxh64 is the same must
 * merge with their true duplicates and never with each other. mm/ksm.c
 * orders its trees by the contents and keeps xxh64 (seed 0) as a checksum of
 * volatility only; ksm_rs keys its trees by an xxh64 with a seed drawn at
 * random at boot, and tells contents of one hash apart by a keyed
 * fingerprint (SipHash), then by comparing them. Three ways to make contents
 * collide, built and checked here first:
 *
 *  (a) full collisions of xxh64 with seed 0: xxh64 folds a page in 32-byte
 *      stripes into four lanes, round(v, x) = rotl64(v + x * P2, 31) * P1,
 *      a bijection in x, so the last stripe of a page can bring the four
 *      lanes to any chosen values: x = (rotr64(t * P1^-1, 31) - v) * P2^-1.
 *      2112 pages of distinct contents end in the same lanes: one xxh64 with
 *      seed 0 (mm/ksm.c's checksum). For another seed they do not collide;
 *  (b) collisions whatever the seed: flipping bit 63 of the word x of lane l
 *      in stripe j flips bit 63 of v + x * P2 (P2 is odd), that is adds
 *      +-2^30 after the rotation and +-D = +-2^30 * P1 after the round, the
 *      sign being bit 30 of the rotated state, which depends on the seed.
 *      Adding -+D * P2^-1 to the word of lane l in stripe j + 1 undoes it in
 *      one case of the two: of the two pages with either correction, exactly
 *      one has the base page's xxh64, whatever the seed. Three base pages and
 *      their variants (508 positions, two signs) make 2112 contents of which,
 *      for any seed, two groups of 509 and one of about 40 share one 64-bit
 *      hash each;
 *  (c) all in one hash whatever the seed: adding A = 2^33 * P2^-1 to the
 *      word x of lane l in stripe j adds 2^33 to the lane's sum
 *      s = v + x * P2, which rotl64(s, 31) turns into +1, and the round into
 *      +P1, unless the top 31 bits of s are all ones (then they wrap to 0);
 *      subtracting P1 * P2^-1 from the word of lane l in stripe j + 1 takes
 *      the P1 off again: the lanes, hence the xxh64, are the base page's with
 *      probability 1 - 2^-31 per correction, for any seed. One base page, its
 *      508 variants of one correction and 1603 of two (positions d = 1..4
 *      words apart, 4 being the same lane in consecutive stripes) make 2112
 *      contents of one 64-bit hash for any seed but a negligible fraction of
 *      them; the test predicts which from the lane sums of the base page, and
 *      checks the prediction with seed 0, random seeds, and one seed chosen to
 *      make the corrections of word 0 fail. An implementation that compares a
 *      page with every page of its hash spends time quadratic in the 4160
 *      pages on it: its merge is slow, and fails once it takes longer than
 *      the timeout, with the counters printed.
 *
 * For each construction, 2048 of the contents are in the area twice and 64
 * once, in a random order, and every tunable lets ksmd run flat out
 * (pages_to_scan=5000, sleep_millisecs=0, smart_scan=0). Once the counters
 * read what mm/ksm.c shows (pages_shared = pages_sharing = 2048,
 * pages_unshared = 64: one KSM page per duplicated contents, mapped twice,
 * and the single pages in the unstable tree), with ksmd stopped (run=0) the
 * test checks every byte of every page, that the two copies of a contents
 * map one KSM page and different contents never one, ksm_merging_pages and
 * ksm_rmap_items; then a write into 64 merged pages (one byte, a whole page)
 * lands in the writer's page only, and ksmd drops the writers from their KSM
 * pages (pages_sharing 1984, pages_unshared 128); then MADV_UNMERGEABLE
 * brings every counter back to 0. Last, 256 of the contents present 4 times
 * each with max_page_sharing=2 make one chain of two KSM pages per contents:
 * stable_node_chains 256, stable_node_dups 512, as mm/ksm.c counts them.
 *
 * Every wait for ksmd has a timeout (KSM_RS_COLLIDE_TIMEOUT seconds, default
 * 60, four times that with KSM_RS_FLAVOUR=debug; 10 s once one wait timed
 * out), and an alarm ends the test, with the counters printed and the
 * tunables put back, after eight times that. The seconds each merge took to
 * settle are printed. Every attribute of /sys/kernel/mm/ksm that is changed
 * is put back.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest.h"
#include "vm_util.h"
#include "ksm_rs_util.h"

#define NR_TESTS		17

/* The area of the merge tests: NR_DUP contents twice, NR_SINGLE once. */
#define NR_DUP			2048
#define NR_SINGLE		64
#define NR_CONTENTS		(NR_DUP + NR_SINGLE)
/* Content c is single if c % SINGLE_EVERY == SINGLE_EVERY - 1. */
#define SINGLE_EVERY		(NR_CONTENTS / NR_SINGLE)
/* Merged pages written to, one in every SINGLE_EVERY duplicated contents. */
#define NR_COW			64
/* The chain test: CHAIN_CONTENTS contents, CHAIN_COPIES times each. */
#define CHAIN_CONTENTS		256
#define CHAIN_COPIES		4
#define CHAIN_MAX_SHARING	"2"
/* Seeds constructions (b) and (c) are checked with, seed 0 first. */
#define CHECK_SEEDS		8
/* Counters unchanged over this many full scans: settled. */
#define STALL_SCANS		4

/* /proc/kpageflags (include/uapi/linux/kernel-page-flags.h). */
#define KPF_BIT_KSM		(1ULL << 21)

#define XXH_P1			11400714785074694791ULL
#define XXH_P2			14029467366897019727ULL
#define XXH_P3			1609587929392839161ULL
#define XXH_P4			9650029242287828579ULL
#define XXH_P5			2870177450012600261ULL

#define TAG_A			0x636f6c6c2d610000ULL
#define TAG_B			0x636f6c6c2d620000ULL
#define TAG_C			0x636f6c6c2d630000ULL
#define TAG_COW			0x636f6c6c2d770000ULL
#define TAG_LAYOUT		0x636f6c6c2d6c0000ULL

static unsigned long page_size, words;
static pid_t main_pid;
static int pagemap_fd = -1, kpageflags_fd = -1;
static unsigned long wait_ms;
static bool timed_out;
static const char *volatile stage = "start";

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

static void restore_at_exit(void)
{
	if (getpid() == main_pid)
		saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
}

static void on_alarm(int sig)
{
	static const char *const attrs[] = {
		"pages_shared", "pages_sharing", "pages_unshared",
		"pages_volatile", "full_scans",
	};

	(void)sig;
	watchdog_report(attrs, ARRAY_SIZE(attrs), stage);
	watchdog_restore(saved_attrs, ARRAY_SIZE(saved_attrs));
	_exit(KSFT_FAIL);
}

/* ---- xxh64, as lib/xxhash.c ---- */

static uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t xxh_round(uint64_t acc, uint64_t in)
{
	acc += in * XXH_P2;
	return rotl64(acc, 31) * XXH_P1;
}

static uint64_t xxh_merge_round(uint64_t h, uint64_t v)
{
	h ^= xxh_round(0, v);
	return h * XXH_P1 + XXH_P4;
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint32_t rd32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static void xxh_init(uint64_t v[4], uint64_t seed)
{
	v[0] = seed + XXH_P1 + XXH_P2;
	v[1] = seed + XXH_P2;
	v[2] = seed;
	v[3] = seed - XXH_P1;
}

static uint64_t xxh64(const void *input, size_t len, uint64_t seed)
{
	const unsigned char *p = input, *end = p + len;
	uint64_t h, v[4];

	if (len >= 32) {
		xxh_init(v, seed);
		do {
			v[0] = xxh_round(v[0], rd64(p));
			v[1] = xxh_round(v[1], rd64(p + 8));
			v[2] = xxh_round(v[2], rd64(p + 16));
			v[3] = xxh_round(v[3], rd64(p + 24));
			p += 32;
		} while (p + 32 <= end);
		h = rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) +
		    rotl64(v[3], 18);
		h = xxh_merge_round(h, v[0]);
		h = xxh_merge_round(h, v[1]);
		h = xxh_merge_round(h, v[2]);
		h = xxh_merge_round(h, v[3]);
	} else {
		h = seed + XXH_P5;
	}
	h += len;
	for (; p + 8 <= end; p += 8) {
		h ^= xxh_round(0, rd64(p));
		h = rotl64(h, 27) * XXH_P1 + XXH_P4;
	}
	if (p + 4 <= end) {
		h ^= (uint64_t)rd32(p) * XXH_P1;
		h = rotl64(h, 23) * XXH_P2 + XXH_P3;
		p += 4;
	}
	for (; p < end; p++) {
		h ^= *p * XXH_P5;
		h = rotl64(h, 11) * XXH_P1;
	}
	h ^= h >> 33;
	h *= XXH_P2;
	h ^= h >> 29;
	h *= XXH_P3;
	h ^= h >> 32;
	return h;
}

/* The inverse of an odd @a modulo 2^64 (Newton: 3, 6, ..., 96 bits). */
static uint64_t inv64(uint64_t a)
{
	uint64_t x = a;
	int i;

	for (i = 0; i < 5; i++)
		x *= 2 - a * x;
	return x;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t word_get(const unsigned char *page, unsigned long w)
{
	return rd64(page + w * 8);
}

static void word_set(unsigned char *page, unsigned long w, uint64_t v)
{
	v = htole64(v);
	memcpy(page + w * 8, &v, sizeof(v));
}

static void fill_words(unsigned char *page, uint64_t seed)
{
	unsigned long w;

	for (w = 0; w < words; w++)
		word_set(page, w, mix64(seed * 0x100000001b3ULL + w));
}

/* ---- construction (a): one xxh64 with seed 0 ---- */

/* Contents @c of construction (a): its own words, then the last stripe. */
static void gen_a(unsigned char *page, unsigned long c)
{
	uint64_t v[4], t;
	unsigned long w;
	int l;

	fill_words(page, TAG_A + c);
	xxh_init(v, 0);
	for (w = 0; w < words - 4; w++)
		v[w & 3] = xxh_round(v[w & 3], word_get(page, w));
	for (l = 0; l < 4; l++) {
		/* The lane after the last stripe: the same for all contents. */
		t = mix64(TAG_A - 1 - l);
		/* round(v, x) = t: x = (rotr(t * P1^-1, 31) - v) * P2^-1. */
		word_set(page, words - 4 + l,
			 (rotl64(t * inv64(XXH_P1), 33) - v[l]) * inv64(XXH_P2));
	}
}

/* ---- construction (b): pairs of which one collides, whatever the seed ---- */

/*
 * Positions (word w, corrected in word w + 4: the same lane, next stripe)
 * per base page, and contents per base page: the base, then two variants
 * per position.
 */
static unsigned long b_positions(void)
{
	return words - 4;
}

static unsigned long b_per_base(void)
{
	return 1 + 2 * b_positions();
}

/*
 * Contents @c of construction (b): base page c / b_per_base(); the variant
 * r = c % b_per_base() > 0 flips bit 63 of word (r - 1) / 2 and corrects
 * word (r - 1) / 2 + 4 for a state that went up by D = 2^30 * P1 (r odd)
 * or down by D (r even).
 */
static void gen_b(unsigned char *page, unsigned long c)
{
	unsigned long base = c / b_per_base(), r = c % b_per_base(), w;
	uint64_t d = (1ULL << 30) * XXH_P1 * inv64(XXH_P2);

	fill_words(page, TAG_B + base);
	if (!r)
		return;
	w = (r - 1) / 2;
	word_set(page, w, word_get(page, w) ^ (1ULL << 63));
	word_set(page, w + 4, word_get(page, w + 4) + (r & 1 ? -d : d));
}

/* ---- construction (c): one hash whatever the seed, but for 2^-31 ---- */

/* Positions: word w, corrected in word w + 4 (the same lane, next stripe). */
static unsigned long c_positions(void)
{
	return words - 4;
}

/*
 * The positions corrected in contents @c of construction (c), in @pos; their
 * number: none for the base page (c = 0), one for c = 1 .. c_positions(),
 * then two, d = 1, 2, 3, ... positions apart (modulo c_positions()), each
 * pair once as long as d < c_positions() / 2.
 */
static int c_positions_of(unsigned long c, unsigned long pos[2])
{
	unsigned long n = c_positions(), k;

	if (!c)
		return 0;
	if (c <= n) {
		pos[0] = c - 1;
		return 1;
	}
	k = c - 1 - n;
	pos[0] = k % n;
	pos[1] = (k % n + 1 + k / n) % n;
	return 2;
}

/*
 * Contents @c of construction (c): the base page, each position w of
 * c_positions_of() corrected: word w + A, A = 2^33 * P2^-1 (the lane's sum
 * goes up by 2^33, the state after the round by P1), word w + 4 - P1 * P2^-1
 * (the next round's sum loses that P1 again).
 */
static void gen_c(unsigned char *page, unsigned long c)
{
	uint64_t add = (1ULL << 33) * inv64(XXH_P2);
	uint64_t sub = XXH_P1 * inv64(XXH_P2);
	unsigned long pos[2], w;
	int i, n = c_positions_of(c, pos);

	fill_words(page, TAG_C);
	for (i = 0; i < n; i++) {
		w = pos[i];
		word_set(page, w, word_get(page, w) + add);
		word_set(page, w + 4, word_get(page, w + 4) - sub);
	}
}

/*
 * Of the base page @base of construction (c) with @seed: @bad[w] is whether
 * the lane sum v + x * P2 at word w has its top 31 bits all ones, where a
 * correction at w does not give the base's lanes back.
 */
static unsigned long c_bad_positions(const unsigned char *base, uint64_t seed,
				     bool *bad)
{
	unsigned long w, nbad = 0;
	uint64_t v[4], sum;

	xxh_init(v, seed);
	for (w = 0; w < words; w++) {
		sum = v[w & 3] + word_get(base, w) * XXH_P2;
		if (w < c_positions()) {
			bad[w] = sum >> 33 == 0x7fffffffULL;
			nbad += bad[w];
		}
		v[w & 3] = rotl64(sum, 31) * XXH_P1;
	}
	return nbad;
}

/* ---- checks of the constructions ---- */

static const unsigned char *sort_contents;

static int cmp_contents(const void *a, const void *b)
{
	unsigned long i = *(const unsigned long *)a;
	unsigned long j = *(const unsigned long *)b;

	return memcmp(sort_contents + i * page_size,
		      sort_contents + j * page_size, page_size);
}

/* The number of contents among the @n of @contents equal to another. */
static unsigned long count_equal(const unsigned char *contents, unsigned long n)
{
	unsigned long *idx = malloc(n * sizeof(*idx)), i, equal = 0;

	if (!idx)
		ksft_exit_fail_msg("no memory\n");
	for (i = 0; i < n; i++)
		idx[i] = i;
	sort_contents = contents;
	qsort(idx, n, sizeof(*idx), cmp_contents);
	for (i = 1; i < n; i++)
		equal += !cmp_contents(&idx[i - 1], &idx[i]);
	free(idx);
	return equal;
}

/* 1: the test's xxh64 is lib/xxhash.c's. */
static void test_xxh64(void)
{
	unsigned char *page = malloc(page_size);
	bool ok = true;
	unsigned long i;
	uint64_t h;

	if (!page)
		ksft_exit_fail_msg("no memory\n");
	/* Upstream XXH64 test vectors. */
	h = xxh64("", 0, 0);
	expect(&ok, h == 0xef46db3751d8e999ULL, "xxh64(\"\", 0) = %016llx\n",
	       (unsigned long long)h);
	h = xxh64("abc", 3, 0);
	expect(&ok, h == 0x44bc2cf5ad770999ULL, "xxh64(\"abc\", 0) = %016llx\n",
	       (unsigned long long)h);
	/* lib/xxhash.c's xxh64, built on the host, of bytes 7i+3. */
	for (i = 0; i < page_size; i++)
		page[i] = i * 7 + 3;
	h = xxh64(page, 45, 1);
	expect(&ok, h == 0xb92a1c5ad80eed36ULL, "xxh64(45 bytes, 1) = %016llx\n",
	       (unsigned long long)h);
	if (page_size == 4096) {
		h = xxh64(page, page_size, 0);
		expect(&ok, h == 0x796398cd432797ccULL,
		       "xxh64(page, 0) = %016llx\n", (unsigned long long)h);
		h = xxh64(page, page_size, 0x9e3779b97f4a7c15ULL);
		expect(&ok, h == 0xc12f98913fe0f03dULL,
		       "xxh64(page, 0x9e3779b97f4a7c15) = %016llx\n",
		       (unsigned long long)h);
	}
	expect(&ok, XXH_P1 * inv64(XXH_P1) == 1 && XXH_P2 * inv64(XXH_P2) == 1,
	       "inv64 is not an inverse modulo 2^64\n");
	free(page);
	ksft_test_result(ok, "xxh64: the test's xxh64 gives lib/xxhash.c's values\n");
}

static unsigned char *contents_a, *contents_b, *contents_c;

/* 2: construction (a). */
static void test_construction_a(void)
{
	unsigned long c, equal, other = 0;
	uint64_t h0 = 0, h;
	bool ok = true;

	contents_a = malloc(NR_CONTENTS * page_size);
	if (!contents_a)
		ksft_exit_fail_msg("no memory\n");
	for (c = 0; c < NR_CONTENTS; c++) {
		gen_a(contents_a + c * page_size, c);
		h = xxh64(contents_a + c * page_size, page_size, 0);
		if (!c)
			h0 = h;
		else if (h != h0 && other++ < 5)
			printf("#    (a): contents %lu: xxh64 %016llx, contents 0: %016llx\n",
			       c, (unsigned long long)h, (unsigned long long)h0);
		if (c && !memcmp(contents_a, contents_a + c * page_size,
				 page_size - 32))
			expect(&ok, false, "(a): contents %lu starts as contents 0\n",
			       c);
	}
	expect(&ok, !other, "(a): %lu of %d contents have another xxh64 (seed 0)\n",
	       other, NR_CONTENTS);
	equal = count_equal(contents_a, NR_CONTENTS);
	expect(&ok, !equal, "(a): %lu contents are equal to another\n", equal);
	/* With another seed the lanes start elsewhere: no collision. */
	h = xxh64(contents_a + page_size, page_size, 1);
	ksft_print_msg("(a): %d distinct contents, xxh64 seed 0 %016llx for all; seed 1: %016llx and %016llx\n",
		       NR_CONTENTS, (unsigned long long)h0,
		       (unsigned long long)xxh64(contents_a, page_size, 1),
		       (unsigned long long)h);
	ksft_test_result(ok, "construction (a): %d distinct contents, one 64-bit xxh64 with seed 0\n",
			 NR_CONTENTS);
}

/* 3: construction (b). */
static void test_construction_b(void)
{
	unsigned long per = b_per_base(), c, r, equal, pairs = 0, bad = 0;
	unsigned long collide = 0, variants = 0, largest = 0;
	uint64_t seeds[CHECK_SEEDS], hb = 0;
	unsigned char *base;
	bool ok = true;
	int s;

	contents_b = malloc(NR_CONTENTS * page_size);
	if (!contents_b)
		ksft_exit_fail_msg("no memory\n");
	for (c = 0; c < NR_CONTENTS; c++)
		gen_b(contents_b + c * page_size, c);
	equal = count_equal(contents_b, NR_CONTENTS);
	expect(&ok, !equal, "(b): %lu contents are equal to another\n", equal);
	seeds[0] = 0;
	for (s = 1; s < CHECK_SEEDS; s++)
		seeds[s] = mix64(TAG_B + s) ^ (uint64_t)now_ms() << 20;
	for (s = 0; s < CHECK_SEEDS; s++) {
		unsigned long group = 0, group_max = 0;

		for (c = 0; c < NR_CONTENTS; c++) {
			uint64_t h;

			r = c % per;
			base = contents_b + (c - r) * page_size;
			if (!r) {
				hb = xxh64(base, page_size, seeds[s]);
				group = 1;
				continue;
			}
			h = xxh64(contents_b + c * page_size, page_size,
				  seeds[s]);
			variants++;
			collide += h == hb;
			group += h == hb;
			if (group > group_max)
				group_max = group;
			/* r odd: its pair is r + 1, if there is one. */
			if (!(r & 1) || c + 1 >= NR_CONTENTS || r + 1 >= per)
				continue;
			pairs++;
			if ((h == hb) + (xxh64(contents_b + (c + 1) * page_size,
					       page_size, seeds[s]) == hb) != 1 &&
			    bad++ < 5)
				printf("#    (b): seed %016llx: of contents %lu and %lu, %s the base's xxh64\n",
				       (unsigned long long)seeds[s], c, c + 1,
				       h == hb ? "both have" : "neither has");
		}
		if (group_max > largest)
			largest = group_max;
	}
	expect(&ok, !bad, "(b): %lu of %lu pairs do not have exactly one page of the base's xxh64\n",
	       bad, pairs);
	ksft_print_msg("(b): %d distinct contents from %lu base pages; over %d seeds (seed 0 and %d random) %lu of %lu variants (%.4f) have their base's xxh64, exactly one in %lu of %lu pairs; largest group of one hash %lu pages\n",
		       NR_CONTENTS, (NR_CONTENTS + per - 1) / per, CHECK_SEEDS,
		       CHECK_SEEDS - 1, collide, variants,
		       variants ? (double)collide / variants : 0.0,
		       pairs - bad, pairs, largest);
	ksft_test_result(ok, "construction (b): %d distinct contents; for every seed tried, exactly one page of each pair has its base page's xxh64\n",
			 NR_CONTENTS);
}

/* 4: construction (c). */
static void test_construction_c(void)
{
	unsigned long c, equal, variants = 0, collide = 0, mismatch = 0;
	unsigned long singles = 0, pairs = 0, nbad = 0, chosen_apart = 0;
	unsigned long chosen_want = 0, pos[2];
	uint64_t seeds[CHECK_SEEDS + 1], hb, h;
	bool *bad = calloc(words, sizeof(*bad)), ok = true, want;
	int s, i, n;

	contents_c = malloc(NR_CONTENTS * page_size);
	if (!contents_c || !bad)
		ksft_exit_fail_msg("no memory\n");
	for (c = 0; c < NR_CONTENTS; c++) {
		gen_c(contents_c + c * page_size, c);
		n = c_positions_of(c, pos);
		singles += n == 1;
		pairs += n == 2;
	}
	equal = count_equal(contents_c, NR_CONTENTS);
	expect(&ok, !equal, "(c): %lu contents are equal to another\n", equal);
	seeds[0] = 0;
	for (s = 1; s < CHECK_SEEDS; s++)
		seeds[s] = mix64(TAG_C + s) ^ (uint64_t)now_ms() << 20;
	/*
	 * Last, a seed that makes the lane sum at word 0 all ones in its top
	 * 31 bits: v[0] = seed + P1 + P2, so seed = S - P1 - P2 - x0 * P2 gives
	 * the sum S. The variants correcting word 0 must not collide.
	 */
	seeds[CHECK_SEEDS] = (0x7fffffffULL << 33 | 0x12345) - XXH_P1 - XXH_P2 -
			     word_get(contents_c, 0) * XXH_P2;
	for (s = 0; s <= CHECK_SEEDS; s++) {
		unsigned long k = c_bad_positions(contents_c, seeds[s], bad);

		if (s < CHECK_SEEDS)
			nbad += k;
		else
			expect(&ok, bad[0], "(c): the chosen seed %016llx does not make word 0 a bad position\n",
			       (unsigned long long)seeds[s]);
		hb = xxh64(contents_c, page_size, seeds[s]);
		for (c = 1; c < NR_CONTENTS; c++) {
			n = c_positions_of(c, pos);
			want = true;
			for (i = 0; i < n; i++)
				want &= !bad[pos[i]];
			h = xxh64(contents_c + c * page_size, page_size,
				  seeds[s]);
			if ((h == hb) != want && mismatch++ < 5)
				printf("#    (c): seed %016llx: contents %lu (%d corrections) %s the base's xxh64, predicted %s\n",
				       (unsigned long long)seeds[s], c, n,
				       h == hb ? "has" : "does not have",
				       want ? "to have it" : "not");
			if (s == CHECK_SEEDS) {
				chosen_want += !want;
				chosen_apart += h != hb;
				continue;
			}
			variants++;
			collide += h == hb;
		}
	}
	free(bad);
	expect(&ok, !mismatch, "(c): %lu times a variant had the base's xxh64 or not against the prediction\n",
	       mismatch);
	/* All but a negligible number: about 2^-31 per correction. */
	expect(&ok, (variants - collide) * 1000 <= variants,
	       "(c): %lu of %lu variants do not have their base's xxh64\n",
	       variants - collide, variants);
	ksft_print_msg("(c): %d distinct contents from 1 base page (%lu with one correction, %lu with two); over %d seeds (seed 0 and %d random) %lu of %lu variants have the base's xxh64 (%lu bad positions); with a seed chosen to make word 0 bad, %lu variants do not, %lu predicted\n",
		       NR_CONTENTS, singles, pairs, CHECK_SEEDS,
		       CHECK_SEEDS - 1, collide, variants, nbad, chosen_apart,
		       chosen_want);
	ksft_test_result(ok, "construction (c): %d distinct contents; for seed 0 and every random seed tried, all share the base page's xxh64 but those with a correction where the lane sum's top 31 bits are all ones, as predicted\n",
			 NR_CONTENTS);
}

/* ---- the area ---- */

struct layout {
	const char *name;
	const unsigned char *contents;	/* ncontents pages */
	unsigned long ncontents;
	unsigned long copies;		/* of each contents but the single ones */
	bool singles;			/* every SINGLE_EVERY-th contents once */
	unsigned long nslots;
	unsigned long *content_of;	/* per slot */
	long *cow_of;			/* per slot: -1, or its page in cow */
	unsigned char *cow;		/* NR_COW pages written */
	char *area;
};

static bool is_single(const struct layout *lo, unsigned long c)
{
	return lo->singles && c % SINGLE_EVERY == SINGLE_EVERY - 1;
}

static unsigned long nr_single(const struct layout *lo)
{
	unsigned long c, n = 0;

	for (c = 0; c < lo->ncontents; c++)
		n += is_single(lo, c);
	return n;
}

static char *slot_addr(const struct layout *lo, unsigned long s)
{
	return lo->area + s * page_size;
}

static const unsigned char *slot_expected(const struct layout *lo,
					  unsigned long s)
{
	if (lo->cow_of[s] >= 0)
		return lo->cow + lo->cow_of[s] * page_size;
	return lo->contents + lo->content_of[s] * page_size;
}

/*
 * Maps the area and fills it: every contents @copies times (once if single),
 * in a random order, then MADV_MERGEABLE.
 */
static bool layout_map(struct layout *lo)
{
	unsigned long c, k, s = 0, t, tmp;
	uint64_t rnd = TAG_LAYOUT;

	lo->nslots = 0;
	for (c = 0; c < lo->ncontents; c++)
		lo->nslots += is_single(lo, c) ? 1 : lo->copies;
	lo->content_of = calloc(lo->nslots, sizeof(*lo->content_of));
	lo->cow_of = calloc(lo->nslots, sizeof(*lo->cow_of));
	lo->cow = malloc(NR_COW * page_size);
	if (!lo->content_of || !lo->cow_of || !lo->cow)
		ksft_exit_fail_msg("no memory\n");
	for (c = 0; c < lo->ncontents; c++)
		for (k = 0; k < (is_single(lo, c) ? 1 : lo->copies); k++)
			lo->content_of[s++] = c;
	for (s = lo->nslots - 1; s > 0; s--) {
		rnd = mix64(rnd);
		t = rnd % (s + 1);
		tmp = lo->content_of[s];
		lo->content_of[s] = lo->content_of[t];
		lo->content_of[t] = tmp;
	}
	for (s = 0; s < lo->nslots; s++)
		lo->cow_of[s] = -1;
	lo->area = mmap(NULL, lo->nslots * page_size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (lo->area == MAP_FAILED)
		ksft_exit_fail_msg("mmap of %lu pages: %s\n", lo->nslots,
				   strerror(errno));
	madvise(lo->area, lo->nslots * page_size, MADV_NOHUGEPAGE);
	for (s = 0; s < lo->nslots; s++)
		memcpy(slot_addr(lo, s), slot_expected(lo, s), page_size);
	if (madvise(lo->area, lo->nslots * page_size, MADV_MERGEABLE)) {
		ksft_print_msg("%s: madvise(MADV_MERGEABLE): %s\n", lo->name,
			       strerror(errno));
		return false;
	}
	return true;
}

static void layout_unmap(struct layout *lo)
{
	if (lo->area)
		munmap(lo->area, lo->nslots * page_size);
	free(lo->content_of);
	free(lo->cow_of);
	free(lo->cow);
	lo->area = NULL;
	lo->content_of = NULL;
	lo->cow_of = NULL;
	lo->cow = NULL;
}

/* Every byte of every page: each holds what was last written to it. */
static void expect_intact(bool *ok, const struct layout *lo, const char *when)
{
	unsigned long s, c, bad = 0;

	for (s = 0; s < lo->nslots; s++) {
		const unsigned char *want = slot_expected(lo, s);
		const char *p = slot_addr(lo, s);

		if (!memcmp(p, want, page_size))
			continue;
		if (bad++ >= 5)
			continue;
		/* Which contents does it hold instead? */
		for (c = 0; c < lo->ncontents; c++)
			if (!memcmp(p, lo->contents + c * page_size, page_size))
				break;
		if (c < lo->ncontents)
			printf("#    %s: %s: page %lu (contents %lu) holds contents %lu, a look-alike\n",
			       lo->name, when, s, lo->content_of[s], c);
		else
			printf("#    %s: %s: page %lu (contents %lu%s) differs from what was written\n",
			       lo->name, when, s, lo->content_of[s],
			       lo->cow_of[s] >= 0 ? ", written to" : "");
	}
	expect(ok, !bad, "%s: %s: %lu of %lu pages do not read back as written\n",
	       lo->name, when, bad, lo->nslots);
}

/* ---- KSM pages of the area: /proc/self/pagemap, /proc/kpageflags ---- */

static bool page_info(const char *addr, uint64_t *pfn, uint64_t *flags)
{
	uint64_t ent;

	if (pread(pagemap_fd, &ent, sizeof(ent),
		  (uintptr_t)addr / page_size * sizeof(ent)) != sizeof(ent) ||
	    !(ent & (1ULL << 63)))
		return false;
	*pfn = ent & ((1ULL << 55) - 1);
	return *pfn &&
	       pread(kpageflags_fd, flags, sizeof(*flags),
		     *pfn * sizeof(*flags)) == sizeof(*flags);
}

static bool have_kpageflags(void)
{
	static int have = -1;
	uint64_t pfn, flags;
	char *p;

	if (have >= 0)
		return have;
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY);
	p = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		have = 0;
		return false;
	}
	p[0] = 1;
	have = pagemap_fd >= 0 && kpageflags_fd >= 0 &&
	       page_info(p, &pfn, &flags);
	munmap(p, page_size);
	if (!have)
		ksft_print_msg("no PFNs from /proc/self/pagemap or no /proc/kpageflags: the KSM page checks are left out\n");
	return have;
}

struct pfn_slot {
	uint64_t pfn;
	unsigned long slot;
};

static int cmp_pfn_slot(const void *a, const void *b)
{
	const struct pfn_slot *x = a, *y = b;

	if (x->pfn != y->pfn)
		return x->pfn < y->pfn ? -1 : 1;
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/*
 * With @merged, every page of a duplicated contents not written to maps a
 * KSM page, no other page does; a KSM page is mapped only by pages of one
 * contents, by @max_map of them at most; there are @want_ksm KSM pages.
 */
static void expect_ksm_pages(bool *ok, const struct layout *lo, bool merged,
			     unsigned long want_ksm, unsigned long max_map,
			     const char *when)
{
	struct pfn_slot *ps;
	unsigned long s, n = 0, i, j, ksm_pages = 0, bad = 0, mixed = 0;
	uint64_t pfn, flags;

	if (!have_kpageflags())
		return;
	ps = calloc(lo->nslots, sizeof(*ps));
	if (!ps)
		ksft_exit_fail_msg("no memory\n");
	for (s = 0; s < lo->nslots; s++) {
		bool want = merged && !is_single(lo, lo->content_of[s]) &&
			    lo->cow_of[s] < 0;

		if (!page_info(slot_addr(lo, s), &pfn, &flags)) {
			if (bad++ < 5)
				printf("#    %s: %s: page %lu is not present\n",
				       lo->name, when, s);
			continue;
		}
		if (!!(flags & KPF_BIT_KSM) != want && bad++ < 5)
			printf("#    %s: %s: page %lu (contents %lu%s%s) %s a KSM page\n",
			       lo->name, when, s, lo->content_of[s],
			       is_single(lo, lo->content_of[s]) ? ", single" : "",
			       lo->cow_of[s] >= 0 ? ", written to" : "",
			       want ? "does not map" : "maps");
		if (flags & KPF_BIT_KSM) {
			ps[n].pfn = pfn;
			ps[n++].slot = s;
		}
	}
	qsort(ps, n, sizeof(*ps), cmp_pfn_slot);
	for (i = 0; i < n; i = j) {
		unsigned long c = lo->content_of[ps[i].slot];

		ksm_pages++;
		for (j = i + 1; j < n && ps[j].pfn == ps[i].pfn; j++)
			if (lo->content_of[ps[j].slot] != c && mixed++ < 5)
				printf("#    %s: %s: KSM page %#llx is mapped by page %lu (contents %lu) and page %lu (contents %lu)\n",
				       lo->name, when,
				       (unsigned long long)ps[i].pfn,
				       ps[i].slot, c, ps[j].slot,
				       lo->content_of[ps[j].slot]);
		if (j - i > max_map && bad++ < 5)
			printf("#    %s: %s: KSM page %#llx is mapped %lu times, at most %lu expected\n",
			       lo->name, when, (unsigned long long)ps[i].pfn,
			       j - i, max_map);
	}
	free(ps);
	ksft_print_msg("%s: %s: %lu pages map %lu KSM pages\n", lo->name, when,
		       n, ksm_pages);
	expect(ok, !mixed, "%s: %s: %lu KSM pages are mapped by pages of different contents\n",
	       lo->name, when, mixed);
	expect(ok, !bad, "%s: %s: %lu pages do not map what they should (see above)\n",
	       lo->name, when, bad);
	expect(ok, ksm_pages == want_ksm, "%s: %s: %lu KSM pages, expected %lu\n",
	       lo->name, when, ksm_pages, want_ksm);
}

/* ---- counters ---- */

struct counts {
	unsigned long shared, sharing, unshared;
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

/* ksm_rmap_items and ksm_merging_pages of /proc/self/ksm_stat. */
static bool self_ksm_stat(long *rmap_items, long *merging)
{
	char line[256];
	FILE *f = fopen("/proc/self/ksm_stat", "r");

	if (!f)
		return false;
	*rmap_items = *merging = LONG_MIN;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "ksm_rmap_items %ld", rmap_items) != 1)
			sscanf(line, "ksm_merging_pages %ld", merging);
	fclose(f);
	return *rmap_items != LONG_MIN && *merging != LONG_MIN;
}

static unsigned long wait_limit_ms(void)
{
	return timed_out && wait_ms > 10000 ? 10000 : wait_ms;
}

/*
 * The counters and /proc/self/ksm_merging_pages read with ksmd stopped
 * (run=0: the write waits for its batch to end), then ksmd runs again: a
 * read while ksmd runs may catch an unstable item out of the tree for the
 * time its page is looked up again.
 */
static bool counts_read_stopped(struct counts *c, long *self)
{
	bool ok = sysfs_write("run", "0");

	counts_read(c);
	*self = ksm_get_self_merging_pages();
	return sysfs_write("run", "1") && ok;
}

/*
 * How the last wait_counts() ended, after how long, and when the counters
 * first read as expected, ksmd running (ULONG_MAX: never).
 */
enum wait_end { WAIT_SETTLED, WAIT_SETTLED_ELSEWHERE, WAIT_TIMEOUT };
static enum wait_end last_wait_end;
static unsigned long last_wait_ms, last_wait_first_ms;

/*
 * Waits, ksmd running, until pages_shared, pages_sharing and pages_unshared
 * read @want after at least @min_scans full scans (and, with @merging >= 0,
 * /proc/self/ksm_merging_pages reads @merging). When they read the same for
 * STALL_SCANS full scans, reads them once with ksmd stopped: they settled,
 * as expected or not. Gives up after the timeout.
 */
static bool wait_counts_once(bool *ok, const char *when,
			     const struct counts *want, long merging,
			     int min_scans)
{
	unsigned long start = now_ms(), limit = wait_limit_ms(), still = 0;
	long full0 = ksm_get_full_scans(), full, last_full = full0;
	struct counts cur, last = { ULONG_MAX, ULONG_MAX, ULONG_MAX };
	long self = 0;

	stage = when;
	last_wait_first_ms = ULONG_MAX;
	for (;;) {
		full = ksm_get_full_scans();
		counts_read(&cur);
		if (merging >= 0)
			self = ksm_get_self_merging_pages();
		if (last_wait_first_ms == ULONG_MAX && counts_eq(&cur, want) &&
		    (merging < 0 || self == merging))
			last_wait_first_ms = now_ms() - start;
		if (full >= full0 + min_scans && counts_eq(&cur, want) &&
		    (merging < 0 || self == merging)) {
			last_wait_end = WAIT_SETTLED;
			ksft_print_msg("%s: settled after full_scans %ld -> %ld, %lu ms\n",
				       when, full0, full, now_ms() - start);
			return true;
		}
		if (full != last_full) {
			still = counts_eq(&cur, &last) ? still + (full - last_full) : 0;
			last = cur;
			last_full = full;
		}
		if (still >= STALL_SCANS &&
		    full >= full0 + min_scans + STALL_SCANS) {
			expect(ok, counts_read_stopped(&cur, &self),
			       "%s: run=0, run=1: %s\n", when, strerror(errno));
			if (counts_eq(&cur, want) &&
			    (merging < 0 || self == merging)) {
				last_wait_end = WAIT_SETTLED;
				ksft_print_msg("%s: settled after full_scans %ld -> %ld, %lu ms (read with ksmd stopped)\n",
					       when, full0, full,
					       now_ms() - start);
				return true;
			}
			expect(ok, false, "%s: settled at pages_shared %lu pages_sharing %lu pages_unshared %lu (ksm_merging_pages %ld) after full_scans %ld -> %ld, expected %lu %lu %lu (%ld)\n",
			       when, cur.shared, cur.sharing, cur.unshared,
			       self, full0, full, want->shared,
			       want->sharing, want->unshared, merging);
			last_wait_end = WAIT_SETTLED_ELSEWHERE;
			return false;
		}
		if (now_ms() - start >= limit) {
			timed_out = true;
			last_wait_end = WAIT_TIMEOUT;
			expect(ok, false, "%s: TIMEOUT after %lu ms (full_scans %ld -> %ld): pages_shared %lu pages_sharing %lu pages_unshared %lu ksm_merging_pages %ld, expected %lu %lu %lu %ld\n",
			       when, now_ms() - start, full0, full, cur.shared,
			       cur.sharing, cur.unshared, self, want->shared,
			       want->sharing, want->unshared, merging);
			return false;
		}
		usleep(20000);
	}
}

static bool wait_counts(bool *ok, const char *when, const struct counts *want,
			long merging, int min_scans)
{
	unsigned long start = now_ms();
	bool ret = wait_counts_once(ok, when, want, merging, min_scans);

	last_wait_ms = now_ms() - start;
	return ret;
}

/* The seconds the last wait took, and how it ended: one "#" line. */
static void print_settle_time(const char *when)
{
	static const char *const how[] = {
		[WAIT_SETTLED] = "settled as expected",
		[WAIT_SETTLED_ELSEWHERE] = "settled at other counters",
		[WAIT_TIMEOUT] = "did not settle: timeout",
	};
	char first[64] = "never while ksmd ran";

	if (last_wait_first_ms != ULONG_MAX)
		snprintf(first, sizeof(first), "after %.3f s, ksmd running",
			 last_wait_first_ms / 1000.0);
	ksft_print_msg("%s: %.3f s to settle (%s); the counters first read as expected %s\n",
		       when, last_wait_ms / 1000.0, how[last_wait_end], first);
}

/*
 * How the counters read while ksmd runs, 50 times 2 ms apart (information
 * only): a read may catch an item out of the unstable tree while ksmd looks
 * its page up again.
 */
static void print_running_counts(const char *when, const struct counts *want)
{
	unsigned long lo = ULONG_MAX, hi = 0, same = 0;
	struct counts c;
	int i;

	for (i = 0; i < 50; i++) {
		counts_read(&c);
		same += counts_eq(&c, want);
		lo = c.unshared < lo ? c.unshared : lo;
		hi = c.unshared > hi ? c.unshared : hi;
		usleep(2000);
	}
	ksft_print_msg("%s: ksmd running, %lu of 50 reads as expected, pages_unshared %lu..%lu\n",
		       when, same, lo, hi);
}

/*
 * With ksmd stopped (run=0: the write waits for its batch to end), every
 * counter must read what is given (-1: not checked); ksmd runs again after.
 */
static void expect_counters(bool *ok, const char *when,
			    const struct counts *want, long volatile_pages,
			    long chains, long dups, long merging,
			    long rmap_items)
{
	long items = -1, self_merging = -1, file;
	unsigned long vol, ch, du;
	struct counts cur;

	stage = when;
	print_running_counts(when, want);
	expect(ok, set_attr("run", "0"), "%s: run=0: %s\n", when,
	       strerror(errno));
	counts_read(&cur);
	vol = ksm_ul("pages_volatile");
	ch = ksm_ul("stable_node_chains");
	du = ksm_ul("stable_node_dups");
	file = ksm_get_self_merging_pages();
	expect(ok, self_ksm_stat(&items, &self_merging),
	       "%s: /proc/self/ksm_stat cannot be read\n", when);
	ksft_print_msg("%s: pages_shared %lu pages_sharing %lu pages_unshared %lu pages_volatile %lu stable_node_chains %lu stable_node_dups %lu; ksm_stat ksm_rmap_items %ld ksm_merging_pages %ld, /proc/self/ksm_merging_pages %ld\n",
		       when, cur.shared, cur.sharing, cur.unshared, vol, ch, du,
		       items, self_merging, file);
	expect(ok, counts_eq(&cur, want),
	       "%s: pages_shared %lu pages_sharing %lu pages_unshared %lu, expected %lu %lu %lu\n",
	       when, cur.shared, cur.sharing, cur.unshared, want->shared,
	       want->sharing, want->unshared);
	expect(ok, volatile_pages < 0 || vol == (unsigned long)volatile_pages,
	       "%s: pages_volatile %lu, expected %ld\n", when, vol,
	       volatile_pages);
	expect(ok, chains < 0 || ch == (unsigned long)chains,
	       "%s: stable_node_chains %lu, expected %ld\n", when, ch, chains);
	expect(ok, dups < 0 || du == (unsigned long)dups,
	       "%s: stable_node_dups %lu, expected %ld\n", when, du, dups);
	expect(ok, merging < 0 || self_merging == merging,
	       "%s: ksm_stat ksm_merging_pages %ld, expected %ld\n", when,
	       self_merging, merging);
	expect(ok, file == self_merging,
	       "%s: /proc/self/ksm_merging_pages %ld, ksm_stat says %ld\n",
	       when, file, self_merging);
	expect(ok, rmap_items < 0 || items == rmap_items,
	       "%s: ksm_stat ksm_rmap_items %ld, expected %ld\n", when, items,
	       rmap_items);
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
	expect(ok, sysfs_write("run", "2"), "%s: run=2: %s\n", when,
	       strerror(errno));
	for (i = 0; i < ARRAY_SIZE(attrs); i++) {
		v = ksm_ul(attrs[i]);
		expect(ok, v == 0, "%s: %s is %lu after run=2, expected 0\n",
		       when, attrs[i], v);
	}
}

/* run=2, the tunables of the test with @max_page_sharing, run=1. */
static bool set_up(const char *max_page_sharing)
{
	char mode[64];

	stage = "set-up";
	if (!set_attr("run", "2"))
		return false;
	/* pages_to_scan cannot be written under the scan-time advisor. */
	if (sysfs_read("advisor_mode", mode, sizeof(mode))) {
		selected_word(mode);
		if (strcmp(mode, "none") && !set_attr("advisor_mode", "none"))
			return false;
	}
	return set_attr("merge_across_nodes", "1") &&
	       set_attr("max_page_sharing", max_page_sharing) &&
	       set_attr("use_zero_pages", "0") &&
	       set_attr("smart_scan", "0") &&
	       set_attr("pages_to_scan", "5000") &&
	       set_attr("sleep_millisecs", "0") && set_attr("run", "1");
}

/* ---- the merge tests of one construction ---- */

/* 5, 9, 13: 2048 contents twice, 64 once: one KSM page per duplicated contents. */
static void test_merge(struct layout *lo)
{
	struct counts want = { NR_DUP, NR_DUP, NR_SINGLE };
	char when[64];
	bool ok = true;

	snprintf(when, sizeof(when), "%s merge", lo->name);
	expect(&ok, set_up("256"), "%s: set-up of the ksm attributes failed\n",
	       when);
	expect(&ok, nr_single(lo) == NR_SINGLE && lo->copies == 2,
	       "%s: the layout is not %d contents twice and %d once\n", when,
	       NR_DUP, NR_SINGLE);
	if (layout_map(lo)) {
		wait_counts(&ok, when, &want, 2 * NR_DUP, 2);
		print_settle_time(when);
		expect_counters(&ok, when, &want, 0, 0, 0, 2 * NR_DUP,
				lo->nslots);
		expect_intact(&ok, lo, "merged");
		expect_ksm_pages(&ok, lo, true, NR_DUP, 2, "merged");
	} else {
		ok = false;
	}
	ksft_test_result(ok, "%s: %d contents twice and %d once (%lu pages) merge as mm/ksm.c: pages_shared %d pages_sharing %d pages_unshared %d, ksm_merging_pages %d, every page its own contents, each pair one KSM page\n",
			 when, NR_DUP, NR_SINGLE, lo->nslots, NR_DUP, NR_DUP,
			 NR_SINGLE, 2 * NR_DUP);
}

/*
 * 6, 10, 14: one byte written into the first page of NR_COW / 2 merged contents,
 * a whole page into the first page of NR_COW / 2 others.
 */
static void test_cow(struct layout *lo)
{
	struct counts want = { NR_DUP, NR_DUP - NR_COW, NR_SINGLE + NR_COW };
	unsigned long k, s;
	char when[64];
	bool ok = true;

	snprintf(when, sizeof(when), "%s COW", lo->name);
	stage = when;
	if (!lo->area) {
		ksft_test_result_fail("%s: no area\n", when);
		return;
	}
	for (k = 0; k < NR_COW; k++) {
		unsigned long c = k * SINGLE_EVERY;
		unsigned char *page = lo->cow + k * page_size;
		unsigned long off = (k * 997 + 13) % page_size;

		for (s = 0; s < lo->nslots && lo->content_of[s] != c; s++)
			;
		if (s == lo->nslots || is_single(lo, c))
			ksft_exit_fail_msg("%s: no page of contents %lu\n",
					   when, c);
		memcpy(page, lo->contents + c * page_size, page_size);
		if (k & 1)
			fill_words(page, TAG_COW + k);
		else
			page[off] ^= 0xa5;
		lo->cow_of[s] = k;
		if (k & 1)
			memcpy(slot_addr(lo, s), page, page_size);
		else
			slot_addr(lo, s)[off] = page[off];
	}
	/* Before ksmd sees the writes: the writers have their own pages. */
	expect_intact(&ok, lo, "written");
	expect_ksm_pages(&ok, lo, true, NR_DUP, 2, "written");
	/*
	 * Then ksmd drops the writers from their KSM pages, which keep one
	 * mapping each, and the written pages go to the unstable tree.
	 */
	wait_counts(&ok, when, &want, 2 * NR_DUP - NR_COW, 1);
	expect_counters(&ok, when, &want, 0, 0, 0, 2 * NR_DUP - NR_COW,
			lo->nslots);
	expect_intact(&ok, lo, "written, ksmd went over them");
	expect_ksm_pages(&ok, lo, true, NR_DUP, 2,
			 "written, ksmd went over them");
	ksft_test_result(ok, "%s: writes into %d merged pages (a byte, a page) land in the writer's page only; then pages_shared %d pages_sharing %d pages_unshared %d\n",
			 when, NR_COW, NR_DUP, NR_DUP - NR_COW,
			 NR_SINGLE + NR_COW);
}

/* 7, 11, 15: MADV_UNMERGEABLE: every counter back to 0. */
static void test_unmerge(struct layout *lo)
{
	struct counts zero = { 0, 0, 0 };
	char when[64];
	bool ok = true;

	snprintf(when, sizeof(when), "%s unmerge", lo->name);
	stage = when;
	if (!lo->area) {
		ksft_test_result_fail("%s: no area\n", when);
		return;
	}
	expect(&ok, !madvise(lo->area, lo->nslots * page_size,
			     MADV_UNMERGEABLE),
	       "%s: madvise(MADV_UNMERGEABLE): %s\n", when, strerror(errno));
	expect_intact(&ok, lo, "unmerged");
	expect_ksm_pages(&ok, lo, false, 0, 0, "unmerged");
	/*
	 * No full scan need end: once ksmd went over the mm and found no
	 * VM_MERGEABLE VMA, it drops the mm and may have nothing left to scan.
	 */
	wait_counts(&ok, when, &zero, 0, 0);
	expect_counters(&ok, when, &zero, 0, 0, 0, 0, 0);
	expect_intact(&ok, lo, "unmerged, ksmd went over them");
	layout_unmap(lo);
	expect_all_gone(&ok, when);
	ksft_test_result(ok, "%s: MADV_UNMERGEABLE: every page keeps its contents, no KSM page left, pages_shared pages_sharing pages_unshared ksm_merging_pages back to 0\n",
			 when);
}

/*
 * 8, 12, 16: max_page_sharing=2, CHAIN_CONTENTS contents CHAIN_COPIES times
 * each: per contents, a chain of two KSM pages mapped twice each.
 */
static void test_chains(struct layout *lo)
{
	unsigned long ksm_pages = CHAIN_CONTENTS * CHAIN_COPIES / 2;
	struct counts want = { ksm_pages, ksm_pages, 0 };
	struct counts zero = { 0, 0, 0 };
	char when[64];
	bool ok = true;

	snprintf(when, sizeof(when), "%s chains", lo->name);
	expect(&ok, set_up(CHAIN_MAX_SHARING),
	       "%s: set-up of the ksm attributes failed\n", when);
	if (layout_map(lo)) {
		wait_counts(&ok, when, &want, CHAIN_CONTENTS * CHAIN_COPIES, 2);
		print_settle_time(when);
		expect_counters(&ok, when, &want, 0, CHAIN_CONTENTS, ksm_pages,
				CHAIN_CONTENTS * CHAIN_COPIES, lo->nslots);
		expect_intact(&ok, lo, "merged");
		expect_ksm_pages(&ok, lo, true, ksm_pages, 2, "merged");
		stage = when;
		expect(&ok, !madvise(lo->area, lo->nslots * page_size,
				     MADV_UNMERGEABLE),
		       "%s: madvise(MADV_UNMERGEABLE): %s\n", when,
		       strerror(errno));
		expect_intact(&ok, lo, "unmerged");
		wait_counts(&ok, when, &zero, 0, 0);
		layout_unmap(lo);
		expect_all_gone(&ok, when);
	} else {
		ok = false;
	}
	ksft_test_result(ok, "%s: max_page_sharing=%s, %d contents %d times each: pages_shared %lu pages_sharing %lu stable_node_chains %d stable_node_dups %lu as mm/ksm.c, every page its own contents\n",
			 when, CHAIN_MAX_SHARING, CHAIN_CONTENTS, CHAIN_COPIES,
			 ksm_pages, ksm_pages, CHAIN_CONTENTS, ksm_pages);
}

static void test_construction(const char *name, const unsigned char *contents)
{
	struct layout lo = {
		.name = name,
		.contents = contents,
		.ncontents = NR_CONTENTS,
		.copies = 2,
		.singles = true,
	};
	struct layout chain = {
		.name = name,
		.contents = contents,
		.ncontents = CHAIN_CONTENTS,
		.copies = CHAIN_COPIES,
	};

	test_merge(&lo);
	test_cow(&lo);
	test_unmerge(&lo);
	layout_unmap(&lo);
	test_chains(&chain);
	layout_unmap(&chain);
}

/* 17: everything put back. */
static void test_restore(void)
{
	bool ok;

	stage = "restore";
	ok = saved_attrs_restore(saved_attrs, ARRAY_SIZE(saved_attrs), true);
	ksft_test_result(ok, "restore: run=2, then every changed attribute of " KSM_DIR " put back\n");
}

int main(void)
{
	const char *e = getenv("KSM_RS_COLLIDE_TIMEOUT");
	const char *flavour = getenv("KSM_RS_FLAVOUR");
	const char *ksm = getenv("KSM_RS_KSM");

	page_size = getpagesize();
	words = page_size / 8;
	main_pid = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	if (access(KSM_DIR "/run", W_OK))
		ksft_exit_skip("no writable " KSM_DIR "/run\n");
	ksft_set_plan(NR_TESTS);
	wait_ms = (e && atoi(e) > 0 ? atoi(e) : 60) * 1000UL;
	if (flavour && !strcmp(flavour, "debug") && !(e && atoi(e) > 0))
		wait_ms *= 4;
	ksft_print_msg("implementation %s, flavour %s; timeout %lu s per wait, %lu s in all\n",
		       ksm ? ksm : "?", flavour ? flavour : "?", wait_ms / 1000,
		       8 * wait_ms / 1000);
	atexit(restore_at_exit);
	signal(SIGALRM, on_alarm);
	alarm(8 * wait_ms / 1000);

	test_xxh64();
	test_construction_a();
	test_construction_b();
	test_construction_c();
	test_construction("(a)", contents_a);
	test_construction("(b)", contents_b);
	test_construction("(c)", contents_c);
	test_restore();

	alarm(0);
	ksft_finished();
}
