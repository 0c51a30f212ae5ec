// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The tunables and counters of `/sys/kernel/mm/ksm`, and the scan-time advisor.
//!
//! Tunables are read without locks by ksmd on every batch, as `mm/ksm.c` reads its globals;
//! changes that must not race with a scan (`run`, `merge_across_nodes`, `max_page_sharing`)
//! are made under the scanner lock ([`crate::scan::SCANNER`]).

use kernel::sync::atomic::Atomic;

/// `run`: stop ksmd.
pub(crate) const RUN_STOP: u32 = 0;
/// `run`: ksmd merges.
pub(crate) const RUN_MERGE: u32 = 1;
/// `run`: stop ksmd and unmerge everything.
pub(crate) const RUN_UNMERGE: u32 = 2;

/// The default of `pages_to_scan`, and its value whenever the advisor is switched off.
pub(crate) const DEFAULT_PAGES_TO_SCAN: u32 = 100;

/// `run`: one of [`RUN_STOP`], [`RUN_MERGE`], [`RUN_UNMERGE`].
pub(crate) static RUN: Atomic<u32> = Atomic::new(RUN_STOP);
/// `pages_to_scan`: pages per ksmd batch.
pub(crate) static PAGES_TO_SCAN: Atomic<u32> = Atomic::new(DEFAULT_PAGES_TO_SCAN);
/// `sleep_millisecs`: ksmd's sleep between batches.
pub(crate) static SLEEP_MILLISECS: Atomic<u32> = Atomic::new(20);
/// `merge_across_nodes`: one stable tree for all NUMA nodes.
pub(crate) static MERGE_ACROSS_NODES: Atomic<u32> = Atomic::new(1);
/// `use_zero_pages`: map empty pages to the zero page.
pub(crate) static USE_ZERO_PAGES: Atomic<bool> = Atomic::new(false);
/// `max_page_sharing`: mappings per KSM page before a new duplicate is started.
pub(crate) static MAX_PAGE_SHARING: Atomic<i32> = Atomic::new(256);
/// `stable_node_chains_prune_millisecs`.
pub(crate) static STABLE_NODE_CHAINS_PRUNE_MILLISECS: Atomic<u32> = Atomic::new(2000);
/// `smart_scan`: skip pages that keep failing to merge.
pub(crate) static SMART_SCAN: Atomic<bool> = Atomic::new(true);

/// `merge_scope`: pages of any two address spaces may merge (upstream behaviour).
pub(crate) const SCOPE_GLOBAL: u32 = 0;
/// `merge_scope`: pages merge only within a memory cgroup (see [`crate::domain`]).
pub(crate) const SCOPE_CGROUP: u32 = 1;
/// `merge_scope`: pages merge only within a process and its forks (see [`crate::domain`]).
pub(crate) const SCOPE_PROCESS: u32 = 2;
/// `merge_scope`: one of the `SCOPE_*`; changed only under the scanner lock, with no KSM page.
pub(crate) static MERGE_SCOPE: Atomic<u32> = Atomic::new(SCOPE_GLOBAL);

/// `advisor_mode`: the advisor that sets `pages_to_scan`.
pub(crate) static ADVISOR_SCAN_TIME: Atomic<bool> = Atomic::new(false);
/// `advisor_max_cpu`: percent of a CPU ksmd may use (stored as `unsigned int`, like C).
pub(crate) static ADVISOR_MAX_CPU: Atomic<u32> = Atomic::new(70);
/// `advisor_min_pages_to_scan`.
pub(crate) static ADVISOR_MIN_PAGES_TO_SCAN: Atomic<u64> = Atomic::new(500);
/// `advisor_max_pages_to_scan`.
pub(crate) static ADVISOR_MAX_PAGES_TO_SCAN: Atomic<u64> = Atomic::new(30000);
/// `advisor_target_scan_time`: seconds per full scan the advisor aims at.
pub(crate) static ADVISOR_TARGET_SCAN_TIME: Atomic<u64> = Atomic::new(200);

/// `advisor_mode` = `pressure`: the pressure-following policy ([`crate::pressure`]) decides
/// when ksmd scans and sets `pages_to_scan`. Never set together with [`ADVISOR_SCAN_TIME`].
pub(crate) static ADVISOR_PRESSURE: Atomic<bool> = Atomic::new(false);
/// `advisor_pressure_active` (read-only): the pressure policy lets ksmd scan.
pub(crate) static ADVISOR_PRESSURE_ACTIVE: Atomic<bool> = Atomic::new(false);
/// `advisor_pressure_interval_millisecs`: time between two evaluations (ksmtuned's
/// `KSM_MONITOR_INTERVAL`, 60 s).
pub(crate) static ADVISOR_PRESSURE_INTERVAL_MILLISECS: Atomic<u32> = Atomic::new(60_000);
/// `advisor_pressure_boost`: pages added to `pages_to_scan` while memory is short
/// (`KSM_NPAGES_BOOST`).
pub(crate) static ADVISOR_PRESSURE_BOOST: Atomic<u32> = Atomic::new(300);
/// `advisor_pressure_decay`: pages taken from `pages_to_scan` once memory is plentiful
/// (`KSM_NPAGES_DECAY`, -50, as a positive number).
pub(crate) static ADVISOR_PRESSURE_DECAY: Atomic<u32> = Atomic::new(50);
/// `advisor_pressure_min_pages_to_scan` (`KSM_NPAGES_MIN`).
pub(crate) static ADVISOR_PRESSURE_MIN_PAGES_TO_SCAN: Atomic<u32> = Atomic::new(64);
/// `advisor_pressure_max_pages_to_scan` (`KSM_NPAGES_MAX`).
pub(crate) static ADVISOR_PRESSURE_MAX_PAGES_TO_SCAN: Atomic<u32> = Atomic::new(1250);
/// `advisor_pressure_thres_percent`: memory is short below this percentage of `MemTotal` free
/// (`KSM_THRES_COEF`).
pub(crate) static ADVISOR_PRESSURE_THRES_PERCENT: Atomic<u32> = Atomic::new(20);
/// `advisor_pressure_thres_kbytes`: ... or below this many kB free, whichever is more
/// (`KSM_THRES_CONST`).
pub(crate) static ADVISOR_PRESSURE_THRES_KBYTES: Atomic<u64> = Atomic::new(2048);
/// `merge_fresh_frame` (ksm_rs only): a new KSM page is a copy in a newly allocated frame, never
/// one of the merged pages' frames (see [`crate::fresh`]).
pub(crate) static MERGE_FRESH_FRAME: Atomic<bool> = Atomic::new(false);

/// The counters shown in sysfs.
pub(crate) struct Counters {
    /// `pages_scanned`.
    pub(crate) pages_scanned: Atomic<u64>,
    /// `pages_shared`: KSM pages in the stable tree.
    pub(crate) pages_shared: Atomic<u64>,
    /// `pages_sharing`: mappings of KSM pages beyond the first.
    pub(crate) pages_sharing: Atomic<u64>,
    /// `pages_unshared`: pages in the unstable tree.
    pub(crate) pages_unshared: Atomic<u64>,
    /// Tracked pages (per-page items), for `pages_volatile` and `general_profit`.
    pub(crate) rmap_items: Atomic<u64>,
    /// `pages_skipped`: pages smart scan skipped.
    pub(crate) pages_skipped: Atomic<u64>,
    /// `full_scans`.
    pub(crate) full_scans: Atomic<u64>,
    /// `stable_node_chains`.
    pub(crate) stable_node_chains: Atomic<u64>,
    /// `stable_node_dups`.
    pub(crate) stable_node_dups: Atomic<u64>,
}

/// The global counters.
pub(crate) static COUNTERS: Counters = Counters {
    pages_scanned: Atomic::new(0),
    pages_shared: Atomic::new(0),
    pages_sharing: Atomic::new(0),
    pages_unshared: Atomic::new(0),
    rmap_items: Atomic::new(0),
    pages_skipped: Atomic::new(0),
    full_scans: Atomic::new(0),
    stable_node_chains: Atomic::new(0),
    stable_node_dups: Atomic::new(0),
};
