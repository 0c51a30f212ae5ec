// SPDX-License-Identifier: GPL-2.0

#include <linux/mm.h>
#include <linux/page-flags.h>

__rust_helper bool rust_helper_folio_test_anon(const struct folio *folio)
{
	return folio_test_anon(folio);
}

__rust_helper bool rust_helper_folio_test_ksm(const struct folio *folio)
{
	return folio_test_ksm(folio);
}

__rust_helper unsigned long rust_helper_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}
