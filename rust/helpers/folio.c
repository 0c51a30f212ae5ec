// SPDX-License-Identifier: GPL-2.0

#include <linux/huge_mm.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/pagemap.h>
#include <linux/swap.h>

__rust_helper bool rust_helper_folio_test_anon(const struct folio *folio)
{
	return folio_test_anon(folio);
}

__rust_helper bool rust_helper_folio_test_ksm(const struct folio *folio)
{
	return folio_test_ksm(folio);
}

__rust_helper bool rust_helper_folio_test_large(const struct folio *folio)
{
	return folio_test_large(folio);
}

__rust_helper bool rust_helper_folio_test_locked(const struct folio *folio)
{
	return folio_test_locked(folio);
}

__rust_helper bool rust_helper_folio_test_swapcache(const struct folio *folio)
{
	return folio_test_swapcache(folio);
}

__rust_helper bool rust_helper_folio_test_dirty(const struct folio *folio)
{
	return folio_test_dirty(folio);
}

__rust_helper bool rust_helper_folio_test_hwpoison(const struct folio *folio)
{
	return folio_test_hwpoison(folio);
}

__rust_helper bool rust_helper_folio_test_zone_device(const struct folio *folio)
{
	return folio_is_zone_device(folio);
}

__rust_helper unsigned long rust_helper_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

__rust_helper struct folio *rust_helper_pfn_folio(unsigned long pfn)
{
	return pfn_folio(pfn);
}

__rust_helper struct folio *rust_helper_page_folio(struct page *page)
{
	return page_folio(page);
}

__rust_helper struct page *rust_helper_folio_page(struct folio *folio,
						  unsigned long n)
{
	return folio_page(folio, n);
}

__rust_helper unsigned long rust_helper_folio_pfn(const struct folio *folio)
{
	return folio_pfn(folio);
}

__rust_helper int rust_helper_folio_nid(const struct folio *folio)
{
	return folio_nid(folio);
}

__rust_helper void rust_helper_folio_get(struct folio *folio)
{
	folio_get(folio);
}

__rust_helper void rust_helper_folio_put(struct folio *folio)
{
	folio_put(folio);
}

__rust_helper bool rust_helper_folio_try_get(struct folio *folio)
{
	return folio_try_get(folio);
}

__rust_helper int rust_helper_folio_ref_count(const struct folio *folio)
{
	return folio_ref_count(folio);
}

__rust_helper int rust_helper_folio_mapcount(const struct folio *folio)
{
	return folio_mapcount(folio);
}

__rust_helper bool rust_helper_folio_mapped(const struct folio *folio)
{
	return folio_mapped(folio);
}

__rust_helper bool rust_helper_folio_trylock(struct folio *folio)
{
	return folio_trylock(folio);
}

__rust_helper void rust_helper_folio_lock(struct folio *folio)
{
	folio_lock(folio);
}

__rust_helper int rust_helper_split_folio(struct folio *folio)
{
	return split_folio(folio);
}

__rust_helper bool rust_helper_folio_free_swap(struct folio *folio)
{
	return folio_free_swap(folio);
}
