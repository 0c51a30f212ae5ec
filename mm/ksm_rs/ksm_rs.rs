// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Kernel Samepage Merging, in Rust.
//!
//! A drop-in replacement for `mm/ksm.c` selected by `CONFIG_KSM_RS`: it provides the symbols that
//! [`include/linux/ksm.h`](srctree/include/linux/ksm.h) declares and the rest of the kernel links
//! against.
//!
//! This is the skeleton: the interface links and answers as a kernel in which no area has been
//! registered for merging would. Registration, `ksmd`, sysfs and the merge engine follow.

use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

mod abi;

module! {
    type: Ksm,
    name: "ksm_rs",
    authors: ["The ksm-rs authors"],
    description: "Kernel Samepage Merging (Rust implementation)",
    license: "GPL",
}

/// The number of KSM-placed zero pages, read by the inline helpers of `ksm.h`.
///
/// Only ever touched through the C atomic API, by C and by Rust.
#[no_mangle]
#[used]
#[expect(non_upper_case_globals)]
pub static ksm_zero_pages: ZeroPages = ZeroPages(Opaque::zeroed());

/// Storage for an `atomic_long_t` that C code updates concurrently.
#[repr(transparent)]
pub struct ZeroPages(Opaque<bindings::atomic_long_t>);

// SAFETY: the counter is only accessed through the C atomic API, which is safe to use from any
// thread.
unsafe impl Sync for ZeroPages {}

struct Ksm;

impl kernel::Module for Ksm {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("Rust KSM skeleton: interface linked, merging not implemented yet\n");
        Ok(Ksm)
    }
}
