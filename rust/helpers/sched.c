// SPDX-License-Identifier: GPL-2.0

#include <linux/cgroup.h>
#include <linux/memcontrol.h>
#include <linux/oom.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>

__rust_helper int rust_helper_cond_resched(void)
{
	return cond_resched();
}

__rust_helper void rust_helper_set_current_oom_origin(void)
{
	set_current_oom_origin();
}

__rust_helper void rust_helper_clear_current_oom_origin(void)
{
	clear_current_oom_origin();
}

__rust_helper u64 rust_helper_task_mem_cgroup_id(struct task_struct *task)
{
	u64 id = 0;

	rcu_read_lock();
#ifdef CONFIG_MEMCG
	if (!mem_cgroup_disabled()) {
		struct mem_cgroup *memcg = mem_cgroup_from_task(task);

		if (memcg)
			id = cgroup_id(memcg->css.cgroup);
	}
#endif
#ifdef CONFIG_CGROUPS
	if (!id)
		id = cgroup_id(task_dfl_cgroup(task));
#endif
	rcu_read_unlock();
	return id;
}

__rust_helper int rust_helper_fatal_signal_pending(struct task_struct *p)
{
	return fatal_signal_pending(p);
}
