// SPDX-License-Identifier: GPL-2.0

#include <linux/pagewalk.h>

__rust_helper void rust_helper_folio_walk_end(struct folio_walk *fw,
					      struct vm_area_struct *vma)
{
	folio_walk_end(fw, vma);
}
