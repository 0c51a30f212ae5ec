// SPDX-License-Identifier: GPL-2.0

#include <linux/rmap.h>

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
