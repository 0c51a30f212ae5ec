// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The KSM tracepoints ([`include/trace/events/ksm.h`](srctree/include/trace/events/ksm.h)),
//! fired where `mm/ksm.c` fires them, with the same names and fields, so that `perf`, ftrace
//! and bpftrace scripts written for `mm/ksm.c` work unchanged. They are defined in
//! `ksm_rs_events.c`; a disabled tracepoint costs a static branch.
//!
//! One field has no `mm/ksm.c` counterpart to point to: ksm_rs has no `struct ksm_rmap_item`
//! (items are packed in per-address-space chunks and move as pages are tracked), so
//! `rmap_item` carries the item's [`ItemRef`]: the address space's id and the page's
//! number, fixed while the page is tracked and different for every tracked page, which is
//! what scripts use it for (telling the items of one KSM page apart, matching a merge with a
//! later removal). Like the `mm` and `ksm_page` pointers, it is only recorded, never
//! dereferenced.

use crate::item::ItemRef;
use kernel::{
    bindings,
    ffi::{c_int, c_uint, c_ulong, c_void},
    mm::{folio::Folio, Mm},
    tracepoint::declare_trace,
};

declare_trace! {
    unsafe fn ksm_start_scan(seq: c_int, rmap_entries: u32);
    unsafe fn ksm_stop_scan(seq: c_int, rmap_entries: u32);
    unsafe fn ksm_enter(mm: *mut c_void);
    unsafe fn ksm_exit(mm: *mut c_void);
    unsafe fn ksm_merge_one_page(pfn: c_ulong, rmap_item: *mut c_void, mm: *mut c_void, err: c_int);
    unsafe fn ksm_merge_with_ksm_page(
        ksm_page: *mut c_void,
        pfn: c_ulong,
        rmap_item: *mut c_void,
        mm: *mut c_void,
        err: c_int,
    );
    unsafe fn ksm_remove_ksm_page(pfn: c_ulong);
    unsafe fn ksm_remove_rmap_item(pfn: c_ulong, rmap_item: *mut c_void, mm: *mut c_void);
    unsafe fn ksm_advisor(scan_time: i64, pages_to_scan: c_ulong, cpu_percent: c_uint);
}

/// Whether the tracepoint `$key` (its `__tracepoint_*` static) is enabled: a static branch,
/// for events whose arguments cost a lookup to compute.
macro_rules! enabled {
    ($key:ident) => {{
        #[cfg(CONFIG_TRACEPOINTS)]
        // SAFETY: It is always okay to query the static key of a tracepoint.
        let on = unsafe {
            kernel::jump_label::static_branch_unlikely!(
                kernel::bindings::$key,
                kernel::bindings::tracepoint,
                key
            )
        };
        #[cfg(not(CONFIG_TRACEPOINTS))]
        let on = false;
        on
    }};
}

/// Whether `ksm_merge_with_ksm_page` or `ksm_merge_one_page` is enabled.
#[inline]
pub(crate) fn merges_enabled() -> bool {
    enabled!(__tracepoint_ksm_merge_with_ksm_page) || enabled!(__tracepoint_ksm_merge_one_page)
}

/// Whether `ksm_remove_rmap_item` is enabled.
#[inline]
pub(crate) fn remove_rmap_item_enabled() -> bool {
    enabled!(__tracepoint_ksm_remove_rmap_item)
}

/// The `rmap_item` field of an item (see the module's documentation).
fn item_field(item: ItemRef) -> *mut c_void {
    item as usize as *mut c_void
}

/// A full scan starts: `seq` is its number (`full_scans`), `rmap_items` the items tracked.
#[inline]
pub(crate) fn start_scan(seq: u64, rmap_items: u64) {
    // SAFETY: The tracepoint only records the values.
    unsafe { ksm_start_scan(seq as c_int, rmap_items as u32) }
}

/// A full scan ends (before `full_scans` counts it).
#[inline]
pub(crate) fn stop_scan(seq: u64, rmap_items: u64) {
    // SAFETY: The tracepoint only records the values.
    unsafe { ksm_stop_scan(seq as c_int, rmap_items as u32) }
}

/// `mm` was registered (`__ksm_enter`).
#[inline]
pub(crate) fn enter(mm: &Mm) {
    // SAFETY: The tracepoint only records the pointer.
    unsafe { ksm_enter(mm.as_raw().cast()) }
}

/// `mm` exits (`__ksm_exit`).
#[inline]
pub(crate) fn exit(mm: &Mm) {
    // SAFETY: The tracepoint only records the pointer.
    unsafe { ksm_exit(mm.as_raw().cast()) }
}

/// A page was (`err` 0) or was not replaced by the zero page at `zero_pfn`
/// (`try_to_merge_with_zero_page`).
#[inline]
pub(crate) fn merge_one_page(
    zero_pfn: usize,
    item: ItemRef,
    mm: *mut bindings::mm_struct,
    err: i32,
) {
    // SAFETY: The tracepoint only records the values.
    unsafe { ksm_merge_one_page(zero_pfn, item_field(item), mm.cast(), err) }
}

/// A page was (`err` 0) or was not merged (`try_to_merge_with_ksm_page`): with the KSM page
/// `kfolio`, `pfn` being its frame, or, with `None`, made a KSM page itself, `pfn` being its
/// own frame.
#[inline]
pub(crate) fn merge_with_ksm_page(
    kfolio: Option<&Folio>,
    pfn: usize,
    item: ItemRef,
    mm: *mut bindings::mm_struct,
    err: i32,
) {
    let kpage = kfolio.map_or(core::ptr::null_mut(), |f| f.as_raw().cast());
    // SAFETY: The tracepoint only records the values.
    unsafe { ksm_merge_with_ksm_page(kpage, pfn, item_field(item), mm.cast(), err) }
}

/// A stable node left the tree (`remove_node_from_stable_tree`); `kpfn` was its page.
#[inline]
pub(crate) fn remove_ksm_page(kpfn: usize) {
    // SAFETY: The tracepoint only records the value.
    unsafe { ksm_remove_ksm_page(kpfn) }
}

/// A mapping (other than the last) of a stable node that leaves the tree was dropped.
#[inline]
pub(crate) fn remove_rmap_item(kpfn: usize, item: ItemRef, mm: *mut bindings::mm_struct) {
    // SAFETY: The tracepoint only records the values.
    unsafe { ksm_remove_rmap_item(kpfn, item_field(item), mm.cast()) }
}

/// The scan-time advisor set `pages_to_scan`.
#[inline]
pub(crate) fn advisor(scan_time: u64, pages_to_scan: u64, cpu_percent: u64) {
    // SAFETY: The tracepoint only records the values.
    unsafe {
        ksm_advisor(
            scan_time as i64,
            pages_to_scan as c_ulong,
            cpu_percent as c_uint,
        )
    }
}
