// SPDX-License-Identifier: GPL-2.0

#include <linux/highmem.h>
#include <linux/huge_mm.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/pagemap.h>
#include <linux/swap.h>
#include <linux/vmstat.h>

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

__rust_helper int rust_helper_split_huge_page(struct page *page)
{
	return split_huge_page(page);
}

__rust_helper bool rust_helper_folio_free_swap(struct folio *folio)
{
	return folio_free_swap(folio);
}

__rust_helper bool rust_helper_folio_test_uptodate(const struct folio *folio)
{
	return folio_test_uptodate(folio);
}

__rust_helper bool rust_helper_PageHWPoison(const struct page *page)
{
	return PageHWPoison(page);
}

__rust_helper void rust_helper_folio_set_dirty(struct folio *folio)
{
	folio_set_dirty(folio);
}

__rust_helper void rust_helper___folio_mark_uptodate(struct folio *folio)
{
	__folio_mark_uptodate(folio);
}

__rust_helper void rust_helper___folio_set_locked(struct folio *folio)
{
	__folio_set_locked(folio);
}

__rust_helper pgoff_t rust_helper_folio_index(const struct folio *folio)
{
	return folio->index;
}

__rust_helper pgoff_t
rust_helper_linear_page_index(const struct vm_area_struct *vma,
			      unsigned long address)
{
	return linear_page_index(vma, address);
}

__rust_helper struct folio *
rust_helper_vma_alloc_folio(gfp_t gfp, int order, struct vm_area_struct *vma,
			    unsigned long addr)
{
	return vma_alloc_folio(gfp, order, vma, addr);
}

__rust_helper int rust_helper_mem_cgroup_charge(struct folio *folio,
					       struct mm_struct *mm, gfp_t gfp)
{
	return mem_cgroup_charge(folio, mm, gfp);
}

__rust_helper int rust_helper_copy_mc_user_highpage(struct page *to,
						    struct page *from,
						    unsigned long vaddr,
						    struct vm_area_struct *vma)
{
	return copy_mc_user_highpage(to, from, vaddr, vma);
}

__rust_helper void rust_helper_count_vm_event(enum vm_event_item item)
{
	count_vm_event(item);
}

__rust_helper struct folio *rust_helper___folio_alloc_node(gfp_t gfp,
							   unsigned int order,
							   int nid)
{
	return __folio_alloc_node(gfp, order, nid);
}

__rust_helper int rust_helper_copy_mc_highpage(struct page *to,
					       struct page *from)
{
	return copy_mc_highpage(to, from);
}

__rust_helper void rust_helper___folio_set_swapbacked(struct folio *folio)
{
	__folio_set_swapbacked(folio);
}
