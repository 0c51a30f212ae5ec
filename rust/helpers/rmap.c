// SPDX-License-Identifier: GPL-2.0

#include <linux/rmap.h>
#include <linux/sched/signal.h>

/*
 * The anon_vma reference and lock helpers are private to mm/ (mm/internal.h);
 * only mm/ code such as the Rust KSM in mm/ksm_rs calls these wrappers.
 */
#include "../../mm/internal.h"

__rust_helper void rust_helper_get_anon_vma(struct anon_vma *anon_vma)
{
	get_anon_vma(anon_vma);
}

__rust_helper void rust_helper_put_anon_vma(struct anon_vma *anon_vma)
{
	put_anon_vma(anon_vma);
}

__rust_helper void rust_helper_anon_vma_lock_read(struct anon_vma *anon_vma)
{
	anon_vma_lock_read(anon_vma);
}

__rust_helper int rust_helper_anon_vma_trylock_read(struct anon_vma *anon_vma)
{
	return anon_vma_trylock_read(anon_vma);
}

__rust_helper void rust_helper_anon_vma_unlock_read(struct anon_vma *anon_vma)
{
	anon_vma_unlock_read(anon_vma);
}

__rust_helper struct anon_vma *rust_helper_folio_anon_vma(const struct folio *folio)
{
	return folio_anon_vma(folio);
}

__rust_helper struct task_struct *rust_helper_next_task(struct task_struct *p)
{
	return next_task(p);
}

#ifdef CONFIG_MEMORY_FAILURE
__rust_helper struct task_struct *rust_helper_task_early_kill(struct task_struct *tsk,
							       int force_early)
{
	return task_early_kill(tsk, force_early);
}

__rust_helper void rust_helper_add_to_kill_ksm(struct task_struct *tsk,
					       const struct page *p,
					       struct vm_area_struct *vma,
					       struct list_head *to_kill,
					       unsigned long addr)
{
	add_to_kill_ksm(tsk, p, vma, to_kill, addr);
}
#endif

__rust_helper pmd_t *rust_helper_mm_find_pmd(struct mm_struct *mm,
					     unsigned long address)
{
	return mm_find_pmd(mm, address);
}
