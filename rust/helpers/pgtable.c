// SPDX-License-Identifier: GPL-2.0

#include <linux/hugetlb.h>
#include <linux/leafops.h>
#include <linux/mm.h>
#include <linux/mm_inline.h>
#include <linux/pgtable.h>
#include <linux/rmap.h>
#include <asm/cacheflush.h>
#include <asm/tlbflush.h>

__rust_helper pte_t rust_helper_ptep_get(pte_t *ptep)
{
	return ptep_get(ptep);
}

__rust_helper int rust_helper_pte_present(pte_t pte)
{
	return pte_present(pte);
}

__rust_helper int rust_helper_pte_none(pte_t pte)
{
	return pte_none(pte);
}

__rust_helper int rust_helper_pte_write(pte_t pte)
{
	return pte_write(pte);
}

__rust_helper int rust_helper_pte_dirty(pte_t pte)
{
	return pte_dirty(pte);
}

__rust_helper unsigned long rust_helper_pte_pfn(pte_t pte)
{
	return pte_pfn(pte);
}

__rust_helper pte_t rust_helper_pte_mkclean(pte_t pte)
{
	return pte_mkclean(pte);
}

__rust_helper pte_t rust_helper_pte_wrprotect(pte_t pte)
{
	return pte_wrprotect(pte);
}

__rust_helper pte_t rust_helper_pte_mkdirty(pte_t pte)
{
	return pte_mkdirty(pte);
}

__rust_helper pte_t rust_helper_pte_mkspecial(pte_t pte)
{
	return pte_mkspecial(pte);
}

__rust_helper pte_t rust_helper_pfn_pte(unsigned long pfn, pgprot_t prot)
{
	return pfn_pte(pfn, prot);
}

__rust_helper pte_t rust_helper_mk_pte(struct page *page, pgprot_t prot)
{
	return mk_pte(page, prot);
}

__rust_helper void rust_helper_set_pte_at(struct mm_struct *mm,
					  unsigned long addr, pte_t *ptep,
					  pte_t pte)
{
	set_pte_at(mm, addr, ptep, pte);
}

__rust_helper bool rust_helper_mm_tlb_flush_pending(const struct mm_struct *mm)
{
	return mm_tlb_flush_pending(mm);
}

__rust_helper bool rust_helper_is_zero_pfn(unsigned long pfn)
{
	return is_zero_pfn(pfn);
}

__rust_helper struct page *rust_helper_zero_page(unsigned long addr)
{
	return ZERO_PAGE(addr);
}

__rust_helper unsigned long rust_helper_zero_pfn(unsigned long addr)
{
	return zero_pfn(addr);
}

__rust_helper void rust_helper_dec_mm_counter(struct mm_struct *mm, int member)
{
	dec_mm_counter(mm, member);
}

__rust_helper bool rust_helper_PageAnonExclusive(const struct page *page)
{
	return PageAnonExclusive(page);
}

__rust_helper int rust_helper_folio_try_share_anon_rmap_pte(struct folio *folio,
							     struct page *page)
{
	return folio_try_share_anon_rmap_pte(folio, page);
}

__rust_helper void rust_helper_folio_add_anon_rmap_pte(struct folio *folio,
						       struct page *page,
						       struct vm_area_struct *vma,
						       unsigned long address)
{
	folio_add_anon_rmap_pte(folio, page, vma, address, RMAP_NONE);
}

__rust_helper void rust_helper_folio_remove_rmap_pte(struct folio *folio,
						     struct page *page,
						     struct vm_area_struct *vma)
{
	folio_remove_rmap_pte(folio, page, vma);
}

__rust_helper pmd_t rust_helper_pmdp_get_lockless(pmd_t *pmdp)
{
	return pmdp_get_lockless(pmdp);
}

__rust_helper pmd_t rust_helper_pmdp_get(pmd_t *pmdp)
{
	return pmdp_get(pmdp);
}

__rust_helper int rust_helper_pmd_present(pmd_t pmd)
{
	return pmd_present(pmd);
}

__rust_helper bool rust_helper_pmd_leaf(pmd_t pmd)
{
	return pmd_leaf(pmd);
}

__rust_helper spinlock_t *rust_helper_pmd_lock(struct mm_struct *mm, pmd_t *pmd)
{
	return pmd_lock(mm, pmd);
}

__rust_helper void rust_helper_pte_unmap_unlock(pte_t *pte, spinlock_t *ptl)
{
	pte_unmap_unlock(pte, ptl);
}

__rust_helper pte_t rust_helper_ptep_get_and_clear(struct mm_struct *mm,
						   unsigned long addr,
						   pte_t *ptep)
{
	return ptep_get_and_clear(mm, addr, ptep);
}

/*
 * x86 keeps the TLB flush API from modules, and bindgen reads the helpers as
 * a module would (-DMODULE): it only needs the prototype. The helpers
 * themselves are built into the kernel, where the body is compiled.
 */
__rust_helper void rust_helper_flush_tlb_range(struct vm_area_struct *vma,
					       unsigned long start,
					       unsigned long end)
{
#ifndef MODULE
	flush_tlb_range(vma, start, end);
#endif
}

__rust_helper void rust_helper_flush_cache_range(struct vm_area_struct *vma,
						 unsigned long start,
						 unsigned long end)
{
	flush_cache_range(vma, start, end);
}

__rust_helper softleaf_t rust_helper_softleaf_from_pte(pte_t pte)
{
	return softleaf_from_pte(pte);
}

__rust_helper bool rust_helper_softleaf_is_migration(softleaf_t entry)
{
	return softleaf_is_migration(entry);
}

__rust_helper struct folio *rust_helper_softleaf_to_folio(softleaf_t entry)
{
	return softleaf_to_folio(entry);
}
