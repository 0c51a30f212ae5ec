// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Kernel Samepage Merging, in Rust.
//!
//! A drop-in replacement for `mm/ksm.c` selected by `CONFIG_KSM_RS`: it provides the symbols that
//! [`include/linux/ksm.h`](srctree/include/linux/ksm.h) declares and the rest of the kernel links
//! against, `/sys/kernel/mm/ksm` and the `ksmd` thread, with the semantics of `mm/ksm.c`.
//!
//! The modules, each one idea of `mm/ksm.c`:
//! - [`abi`]: the `ksm.h` functions: madvise, prctl, fork/exec/exit registration, `ksm_stat`;
//! - [`scan`]: KSM's global state and its controls (`run`, hot-remove);
//! - [`registry`]: the registered address spaces; [`ksmd`]: the thread and its scan cursor;
//! - [`tunables`]: the sysfs tunables and counters; [`sysfs`]: their files;
//! - [`advisor`]: the scan-time advisor; [`trace`]: the tracepoints of `mm/ksm.c`;
//! - [`domain`]: merge domains (`merge_scope`), which pages never merge across;
//! - [`pressure`]: the pressure-following policy (`advisor_mode` = `pressure`, ksmtuned's rules);
//! - [`engine`]: the merge engine, what ksmd does with each page (`cmp_and_merge_page`);
//! - [`item`]: the item of a tracked page; [`items`]: the per-address-space map of items;
//! - [`hash`]: the hash and the keyed fingerprint of a page's contents;
//! - [`unstable`]: the unstable tree; [`stable`]: the stable tree and its chains;
//! - [`merge`]: write-protecting pages, making KSM pages and mapping them (`replace_page`);
//! - [`fresh`]: the hardened merge (`merge_fresh_frame`): new KSM pages in fresh frames;
//! - [`unmerge`]: breaking the sharing of KSM pages (`break_ksm`);
//! - [`rmap`]: the reverse side (`rmap_walk_ksm`, migration, swap-in, memory failure,
//!   hot-remove);
//! - [`merge_now`]: merging a process's range on demand (`merge_now`, Rust only).

use kernel::{bindings, prelude::*, sync::SetOnce, types::Opaque};

mod abi;
mod advisor;
mod domain;
mod engine;
mod fresh;
mod hash;
mod item;
mod items;
mod ksmd;
mod merge;
mod merge_now;
mod pressure;
mod registry;
mod rmap;
mod scan;
mod stable;
mod sysfs;
mod trace;
mod tunables;
mod unmerge;
mod unstable;

/// The allocation flags of ksmd's bookkeeping (items, trees, tables, a stable node and its list
/// of mappings), as of `mm/ksm.c`'s rmap items: without memory a page is left for a later scan,
/// so the allocation neither reclaims hard, nor invokes the OOM killer, nor reports its failure
/// (under memory pressure, when KSM matters most, each report would be a stack and a Mem-Info).
#[inline]
pub(crate) fn scan_gfp() -> kernel::alloc::Flags {
    GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN
}

module! {
    type: KsmModule,
    name: "ksm_rs",
    authors: ["The ksm-rs authors"],
    description: "Kernel Samepage Merging (Rust implementation)",
    license: "GPL",
}

/// The number of KSM-placed zero pages, read and updated by the inline helpers of `ksm.h`.
#[no_mangle]
#[used]
pub static ksm_zero_pages: ZeroPages = ZeroPages(Opaque::zeroed());

/// Storage for an `atomic_long_t` that C code updates concurrently.
#[repr(transparent)]
pub struct ZeroPages(Opaque<bindings::atomic_long_t>);

// SAFETY: The counter is only accessed through the C atomic API, which is safe to use from any
// thread.
unsafe impl Sync for ZeroPages {}

/// Returns the global count of KSM-placed zero pages.
pub(crate) fn zero_pages() -> i64 {
    // SAFETY: `ksm_zero_pages` is a valid `atomic_long_t`, which is an `atomic64_t` on 64-bit
    // kernels, read atomically.
    unsafe { bindings::atomic64_read(ksm_zero_pages.0.get()) }
}

/// The global count of KSM-placed zero pages, for the C atomic API.
pub(crate) fn ksm_zero_pages_raw() -> *mut bindings::atomic_long_t {
    ksm_zero_pages.0.get()
}

/// KSM's state, created by module init before anything can call into KSM.
static KSM: SetOnce<Pin<KBox<scan::Ksm>>> = SetOnce::new();

/// Unshares every KSM page mapped in `[start, end)` of `vma` (`break_ksm`).
pub(crate) fn break_ksm(
    vma: &kernel::mm::pgwalk::MmapLockedVma,
    start: usize,
    end: usize,
) -> Result {
    unmerge::break_ksm(vma, start, end)
}

/// The memory hotplug notifier (`ksm_memory_callback`).
#[cfg(CONFIG_MEMORY_HOTREMOVE)]
struct MemoryNotifier(Opaque<bindings::notifier_block>);

// SAFETY: The notifier block is only handed to the notifier chain, which serialises its use.
#[cfg(CONFIG_MEMORY_HOTREMOVE)]
unsafe impl Sync for MemoryNotifier {}

/// No significance to this priority (`KSM_CALLBACK_PRI`).
#[cfg(CONFIG_MEMORY_HOTREMOVE)]
static MEMORY_NB: MemoryNotifier = MemoryNotifier(Opaque::new(bindings::notifier_block {
    notifier_call: Some(memory_callback),
    next: core::ptr::null_mut(),
    priority: bindings::KSM_CALLBACK_PRI as i32,
}));

/// Keeps KSM off the stable tree while memory goes offline, then forgets the KSM pages that were
/// there (`ksm_memory_callback`).
///
/// # Safety
///
/// Called by the memory notifier chain with `arg` a `struct memory_notify`.
#[cfg(CONFIG_MEMORY_HOTREMOVE)]
unsafe extern "C" fn memory_callback(
    _nb: *mut bindings::notifier_block,
    action: usize,
    arg: *mut core::ffi::c_void,
) -> core::ffi::c_int {
    let Some(ksm) = KSM.as_ref() else {
        return bindings::NOTIFY_OK as core::ffi::c_int;
    };
    match action as u32 {
        bindings::memory_block_state_MEM_GOING_OFFLINE => ksm.going_offline(),
        bindings::memory_block_state_MEM_OFFLINE => {
            // SAFETY: For memory block events `arg` is a `struct memory_notify`.
            let mn = unsafe { &*arg.cast::<bindings::memory_notify>() };
            let start = mn.start_pfn;
            ksm.offline_done(Some((start, start + mn.nr_pages)));
        }
        bindings::memory_block_state_MEM_CANCEL_OFFLINE => ksm.offline_done(None),
        _ => {}
    }
    bindings::NOTIFY_OK as core::ffi::c_int
}

struct KsmModule {
    _sysfs: kernel::sysfs::Registration,
    _ksmd: kernel::kthread::KThread,
    /// `/sys/kernel/debug/ksm_rs/domains` (the file goes before its directory).
    _domains: Pin<KBox<kernel::debugfs::File<()>>>,
    _debugfs: kernel::debugfs::Dir,
}

impl kernel::Module for KsmModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        KSM.populate(KBox::pin_init(scan::Ksm::new(), GFP_KERNEL)?);
        let ksm = KSM.as_ref().ok_or(ENOMEM)?;
        let ksmd = kernel::kthread::KThread::run(c"ksmd", GFP_KERNEL, move || ksm.thread())
            .inspect_err(|_| pr_err!("ksm: creating kthread failed\n"))?;
        let sysfs = sysfs::KSM_ATTR_GROUP
            .register(kernel::sysfs::Kobject::mm().ok_or(ENOENT)?)
            .inspect_err(|_| pr_err!("ksm: register sysfs failed\n"))?;
        #[cfg(CONFIG_MEMORY_HOTREMOVE)]
        {
            // SAFETY: The notifier block is static and its callback valid for the kernel's
            // lifetime.
            let ret = unsafe { bindings::register_memory_notifier(MEMORY_NB.0.get()) };
            kernel::error::to_result(ret)?;
        }
        let debugfs = kernel::debugfs::Dir::new(c"ksm_rs");
        let domains = KBox::pin_init(
            debugfs.read_callback_file(c"domains", (), &|(), f| scan::show_domains(f)),
            GFP_KERNEL,
        )?;
        Ok(KsmModule {
            _sysfs: sysfs,
            _ksmd: ksmd,
            _domains: domains,
            _debugfs: debugfs,
        })
    }
}
