// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Merge domains (`merge_scope`): trust partitions that pages never merge across.
//!
//! Merging pages of two tenants tells one of them, by the time a write takes (a copy-on-write
//! fault), what the other has in memory: the side channel for which hosts and container
//! runtimes turn KSM off. With `merge_scope` set to `cgroup` or `process`, a page merges only
//! with pages of its own domain:
//!
//! - `global` (the default): one domain, as `mm/ksm.c`;
//! - `cgroup`: the memory cgroup of the task that made the address space mergeable
//!   (`MADV_MERGEABLE`, `PR_SET_MEMORY_MERGE`), when it did; a fork or an exec takes the
//!   domain of the address space it comes from;
//! - `process`: one address space and the ones forked (or exec'ed) from it.
//!
//! An address space gets both of its domains when it registers with KSM ([`Domains`], kept in
//! its registry slot and in the merge engine), and keeps them while it stays registered: a task
//! moved to another cgroup later keeps merging within the cgroup it was in (runtimes move a
//! task into its cgroup before it runs the workload). Which of the two is used is the knob's,
//! changed only while there is no KSM page (`EBUSY` otherwise, as `merge_across_nodes`).
//!
//! Both trees are keyed by a [`Tree`] that holds the domain above the NUMA node, so a search
//! only ever meets the pages of its own domain: the cost per page stays that of one tree,
//! O(log n), whatever the number of domains. Domains cost 16 bytes per address space and one
//! entry of [`Engine::domains`] per domain with KSM pages (O(log d) per change of its counts).
//! The zero page (`use_zero_pages`) is merged with in every domain: that merge does not depend
//! on what any other address space holds.
//!
//! The counts of each domain are in `/sys/kernel/debug/ksm_rs/domains` (root only).

use crate::{engine::Engine, registry::Registry, tunables::*};
use core::fmt;
use kernel::{
    mm::Mm,
    prelude::*,
    rbtree::RBTreeNode,
    sync::atomic::{Atomic, Relaxed},
};

/// The tree of a page: its domain above [`NID_BITS`], its NUMA node's tree below.
pub(crate) type Tree = u64;

/// Bits of a [`Tree`] for the NUMA node.
pub(crate) const NID_BITS: u32 = 10;

// The node number fits in its field.
const _: () = assert!(kernel::bindings::MAX_NUMNODES <= 1 << NID_BITS);

/// The domains of a registered address space, one per scope.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Domains {
    /// The id of its memory cgroup (`cgroup_id()`: 64 bits, never reused; below 2^54 unless
    /// 2^53 cgroups were created, see `kernfs_new_node()`).
    pub(crate) cgroup: u64,
    /// Its process domain: a number drawn for it, or the one of the address space it was
    /// forked or exec'ed from.
    pub(crate) process: u64,
}

impl Domains {
    /// The domain of the current `merge_scope`: 0 for `global`.
    pub(crate) fn current(&self) -> u64 {
        let dom = match MERGE_SCOPE.load(Relaxed) {
            SCOPE_CGROUP => self.cgroup,
            SCOPE_PROCESS => self.process,
            _ => 0,
        };
        dom & ((1 << (u64::BITS - NID_BITS)) - 1)
    }
}

/// The last process domain drawn.
static LAST_PROCESS_DOMAIN: Atomic<u64> = Atomic::new(0);

/// The tree of a page of NUMA node `nid` in domain `dom`.
pub(crate) fn tree_of(nid: i32, dom: u64) -> Tree {
    let nid = if MERGE_ACROSS_NODES.load(Relaxed) != 0 {
        0
    } else {
        nid as u64
    };
    (dom << NID_BITS) | nid
}

/// The tree of the same domain as `tree` for NUMA node `nid`.
pub(crate) fn retree(tree: Tree, nid: i32) -> Tree {
    tree_of(nid, tree >> NID_BITS)
}

/// The NUMA node part of `tree`: what an unstable item keeps of it.
pub(crate) fn tree_nid(tree: Tree) -> u32 {
    (tree & ((1 << NID_BITS) - 1)) as u32
}

impl Registry {
    /// The domains of `mm`, which registers now, called by the task that makes it mergeable or
    /// forks or execs it (`__ksm_enter`).
    ///
    /// An address space registered from another one's task (a fork or an exec: the task's
    /// address space is still the old one) takes that one's domains; its cgroup is the same
    /// (the new task is not in its own cgroup yet). O(log n) for n registered address spaces.
    pub(crate) fn domains_for(&self, mm: &Mm) -> Domains {
        let task = kernel::current!();
        if let Some(cur) = task.mm() {
            if !core::ptr::eq(cur.as_raw(), mm.as_raw()) {
                if let Some(slot) = self.slots.get(&(cur.as_raw() as usize)) {
                    return slot.domains;
                }
            }
        }
        Domains {
            cgroup: task.mem_cgroup_id(),
            process: LAST_PROCESS_DOMAIN.fetch_add(1, Relaxed) + 1,
        }
    }
}

/// The counts of one domain (`/sys/kernel/debug/ksm_rs/domains`).
#[derive(Clone, Copy, Default)]
pub(crate) struct DomainCounts {
    /// Its stable nodes: the entry lives while it has one.
    nodes: u64,
    /// Its KSM pages with mappings (`pages_shared`).
    shared: u64,
    /// Their mappings beyond the first (`pages_sharing`).
    sharing: u64,
}

impl Engine {
    /// Notes a new stable node of `tree`; fails without memory for the domain's counts, which
    /// the node's mappings will need.
    pub(crate) fn domain_node_added(&mut self, tree: Tree) -> Result {
        let dom = tree >> NID_BITS;
        if let Some(c) = self.domains.get_mut(&dom) {
            c.nodes += 1;
            return Ok(());
        }
        let c = DomainCounts {
            nodes: 1,
            ..Default::default()
        };
        self.domains
            .insert(RBTreeNode::new(dom, c, crate::scan_gfp())?);
        Ok(())
    }

    /// Notes that a stable node of `tree` is gone.
    pub(crate) fn domain_node_removed(&mut self, tree: Tree) {
        let dom = tree >> NID_BITS;
        if let Some(c) = self.domains.get_mut(&dom) {
            c.nodes -= 1;
            if c.nodes == 0 {
                self.domains.remove(&dom);
            }
        }
    }

    /// Counts a mapping added to (`add`) or removed from a stable node of `tree`: its first
    /// (`first`: a shared page, as `pages_shared`) or another one (as `pages_sharing`). O(log d).
    pub(crate) fn domain_mapping(&mut self, tree: Tree, first: bool, add: bool) {
        let Some(c) = self.domains.get_mut(&(tree >> NID_BITS)) else {
            return;
        };
        let n = if first { &mut c.shared } else { &mut c.sharing };
        *n = if add { *n + 1 } else { n.saturating_sub(1) };
    }

    /// Writes the counts of every domain with KSM pages: one line each, `domain pages_shared
    /// pages_sharing`. O(d) for d domains.
    pub(crate) fn show_domains(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match MERGE_SCOPE.load(Relaxed) {
            SCOPE_CGROUP => "cgroup",
            SCOPE_PROCESS => "process",
            _ => "global",
        };
        writeln!(f, "# scope {scope}: domain pages_shared pages_sharing")?;
        for (dom, c) in self.domains.iter() {
            writeln!(f, "{dom} {} {}", c.shared, c.sharing)?;
        }
        Ok(())
    }
}

#[kunit_tests(ksm_rs_domain)]
mod tests {
    use super::*;

    #[test]
    fn trees_keep_the_domain_above_the_node() {
        let across = MERGE_ACROSS_NODES.load(Relaxed);
        MERGE_ACROSS_NODES.store(0, Relaxed);
        let t = tree_of(3, 77);
        assert_eq!(t >> NID_BITS, 77);
        assert_eq!(tree_nid(t), 3);
        assert_eq!(retree(t, 1), tree_of(1, 77));
        assert_ne!(tree_of(3, 77), tree_of(3, 78));
        MERGE_ACROSS_NODES.store(1, Relaxed);
        assert_eq!(tree_of(3, 77), tree_of(0, 77));
        assert_eq!(tree_nid(tree_of(3, 77)), 0);
        MERGE_ACROSS_NODES.store(across, Relaxed);
    }

    #[test]
    fn the_scope_picks_the_domain() {
        let scope = MERGE_SCOPE.load(Relaxed);
        let d = Domains {
            cgroup: 5,
            process: 9,
        };
        MERGE_SCOPE.store(SCOPE_GLOBAL, Relaxed);
        assert_eq!(d.current(), 0);
        MERGE_SCOPE.store(SCOPE_CGROUP, Relaxed);
        assert_eq!(d.current(), 5);
        MERGE_SCOPE.store(SCOPE_PROCESS, Relaxed);
        assert_eq!(d.current(), 9);
        MERGE_SCOPE.store(scope, Relaxed);
    }
}
