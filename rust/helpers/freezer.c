// SPDX-License-Identifier: GPL-2.0

#include <linux/freezer.h>

__rust_helper bool rust_helper_freezing(struct task_struct *p)
{
	return freezing(p);
}

__rust_helper bool rust_helper_try_to_freeze(void)
{
	return try_to_freeze();
}

#ifndef CONFIG_FREEZER
/* Without the freezer set_freezable() is inline; with it, it is a function. */
__rust_helper void rust_helper_set_freezable(void)
{
	set_freezable();
}
#endif
