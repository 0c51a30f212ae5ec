// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Sysfs attribute groups on existing kobjects.
//!
//! An attribute is a type implementing [`Attribute`]: a file name, a mode and the functions that
//! show and store its value. [`attribute_group!`](crate::attribute_group) builds the static C
//! structures (`struct kobj_attribute`, the attribute array and `struct attribute_group`) from a
//! list of such types, and [`AttributeGroup::register`] creates the files under a kobject such
//! as [`Kobject::mm`] (`/sys/kernel/mm`).
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h)

use crate::{
    bindings,
    error::{code::EIO, to_result, Error, Result},
    ffi::{c_char, c_uint, c_ulonglong},
    str::{CStr, CStrExt},
    types::Opaque,
};
use core::{cell::UnsafeCell, fmt};

/// A kobject, the object behind a sysfs directory.
///
/// # Invariants
///
/// The inner `struct kobject` is valid and registered in sysfs.
#[repr(transparent)]
pub struct Kobject(Opaque<bindings::kobject>);

// SAFETY: A registered kobject may be used from any thread; its C functions do their own locking.
unsafe impl Send for Kobject {}

// SAFETY: As for `Send`: `&Kobject` only allows calls that are safe from any thread.
unsafe impl Sync for Kobject {}

impl Kobject {
    /// Returns the kobject of `/sys/kernel/mm`, where memory-management subsystems put their
    /// tunables; `None` if it could not be created at boot.
    pub fn mm() -> Option<&'static Kobject> {
        // SAFETY: `mm_kobj` is set once during `mm_sysfs_init()` (a `postcore_initcall`, so before
        // any module init) and never freed; it stays NULL if that failed.
        let kobj = unsafe { bindings::mm_kobj };
        // SAFETY: `Kobject` is a transparent wrapper of `struct kobject`, and a non-NULL `kobj`
        // lives forever.
        (!kobj.is_null()).then(|| unsafe { &*kobj.cast::<Kobject>() })
    }

    fn as_raw(&self) -> *mut bindings::kobject {
        self.0.get()
    }
}

/// The output buffer of a sysfs `show` function: one page, written with [`core::fmt::Write`]
/// (`write!`/`writeln!`).
pub struct ShowBuffer {
    buf: *mut u8,
    len: usize,
}

impl fmt::Write for ShowBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        // Like `sysfs_emit`, the output is cut at the page, keeping room for a NUL.
        let room = bindings::PAGE_SIZE - 1 - self.len;
        let n = bytes.len().min(room);
        // SAFETY: `buf` points to a page (type invariant of the `show` caller) and
        // `len + n < PAGE_SIZE`.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.buf.add(self.len), n) };
        self.len += n;
        if n < bytes.len() {
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// A sysfs file of an [`AttributeGroup`].
pub trait Attribute: 'static {
    /// The file name.
    const NAME: &'static CStr;

    /// The file mode: `0o644` for a tunable, `0o444` for a read-only value, `0o200` for a
    /// command (write-only).
    const MODE: u16 = match (Self::READABLE, Self::WRITABLE) {
        (true, true) => 0o644,
        (true, false) => 0o444,
        (false, _) => 0o200,
    };

    /// Whether the file can be written: [`Attribute::store`] is then called.
    const WRITABLE: bool = false;

    /// Whether the file can be read: [`Attribute::show`] is then called. A write-only file
    /// (a command) has no `show` function: reading it fails with `EIO`, as in C.
    const READABLE: bool = true;

    /// Writes the value into `buf`, normally followed by a newline. Called only when
    /// [`Attribute::READABLE`].
    fn show(_buf: &mut ShowBuffer) -> Result {
        Err(EIO)
    }

    /// Parses and applies `input`, what userspace wrote (NUL-terminated; it may end with a
    /// newline). Called only when [`Attribute::WRITABLE`].
    fn store(_input: &CStr) -> Result {
        Err(EIO)
    }
}

/// Calls [`Attribute::show`] for sysfs.
///
/// # Safety
///
/// `buf` must point to a writable page, as sysfs guarantees.
unsafe extern "C" fn show_callback<A: Attribute>(
    _kobj: *mut bindings::kobject,
    _attr: *mut bindings::kobj_attribute,
    buf: *mut c_char,
) -> isize {
    let mut out = ShowBuffer {
        buf: buf.cast(),
        len: 0,
    };
    match A::show(&mut out) {
        Ok(()) => out.len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// Calls [`Attribute::store`] for sysfs.
///
/// # Safety
///
/// `buf` must point to `count` bytes followed by a NUL, as sysfs guarantees.
unsafe extern "C" fn store_callback<A: Attribute>(
    _kobj: *mut bindings::kobject,
    _attr: *mut bindings::kobj_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: `buf[count]` is NUL (safety requirement), so `buf[..=count]` is readable.
    let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count + 1) };
    // An embedded NUL ends the string early, as it does for the C parsers.
    let input = match CStr::from_bytes_until_nul(bytes) {
        Ok(s) => s,
        Err(_) => return EIO.to_errno() as isize,
    };
    match A::store(input) {
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// The C `struct kobj_attribute` of an [`Attribute`], in a static.
///
/// Not for direct use: see [`attribute_group!`](crate::attribute_group).
#[repr(transparent)]
pub struct KobjAttribute(UnsafeCell<bindings::kobj_attribute>);

// SAFETY: After registration only sysfs accesses the structure, under its own rules; Rust never
// touches it after building it.
unsafe impl Sync for KobjAttribute {}

impl KobjAttribute {
    /// Builds the C attribute for `A`.
    // `CStrExt::as_char_ptr` is not `const`; the cast gives the same pointer.
    #[expect(clippy::disallowed_methods, reason = "const context")]
    pub const fn new<A: Attribute>() -> Self {
        // SAFETY: All-zero is a valid `kobj_attribute` (null pointers, `None` callbacks).
        let mut attr: bindings::kobj_attribute = unsafe { core::mem::zeroed() };
        attr.attr.name = A::NAME.as_ptr().cast();
        attr.attr.mode = A::MODE;
        if A::READABLE {
            attr.show = Some(show_callback::<A>);
        }
        if A::WRITABLE {
            attr.store = Some(store_callback::<A>);
        }
        Self(UnsafeCell::new(attr))
    }
}

/// The NULL-terminated array of attribute pointers of a group, in a static.
///
/// Not for direct use: see [`attribute_group!`](crate::attribute_group).
#[repr(transparent)]
pub struct AttributePointers<const N: usize>(UnsafeCell<[*mut bindings::attribute; N]>);

// SAFETY: The pointers are only read, by sysfs.
unsafe impl<const N: usize> Sync for AttributePointers<N> {}

impl<const N: usize> AttributePointers<N> {
    /// Builds the array from the `N - 1` attributes of `attrs`.
    pub const fn new(attrs: &'static [KobjAttribute]) -> Self {
        let mut ptrs = [core::ptr::null_mut(); N];
        let mut i = 0;
        while i < attrs.len() && i + 1 < N {
            // The `struct attribute` is the first field of `struct kobj_attribute`.
            ptrs[i] = attrs[i].0.get().cast::<bindings::attribute>();
            i += 1;
        }
        Self(UnsafeCell::new(ptrs))
    }

    /// Returns the array for the C group.
    pub const fn as_ptr(&'static self) -> *mut *mut bindings::attribute {
        self.0.get().cast()
    }
}

/// A static attribute group: the files it creates in a kobject's directory.
///
/// Built by [`attribute_group!`](crate::attribute_group).
#[repr(transparent)]
pub struct AttributeGroup(UnsafeCell<bindings::attribute_group>);

// SAFETY: Only sysfs reads the structure once it is built.
unsafe impl Sync for AttributeGroup {}

impl AttributeGroup {
    /// Builds a group named `name` (a subdirectory; `None` puts the files in the kobject's own
    /// directory) from a NULL-terminated attribute array.
    // `CStrExt::as_char_ptr` is not `const`; the cast gives the same pointer.
    #[expect(clippy::disallowed_methods, reason = "const context")]
    pub const fn new(name: Option<&'static CStr>, attrs: *mut *mut bindings::attribute) -> Self {
        // SAFETY: All-zero is a valid `attribute_group`.
        let mut group: bindings::attribute_group = unsafe { core::mem::zeroed() };
        if let Some(name) = name {
            group.name = name.as_ptr().cast();
        }
        group.__bindgen_anon_2.attrs = attrs;
        Self(UnsafeCell::new(group))
    }

    /// Creates the group's files under `kobj`; they stay until the returned registration is
    /// dropped.
    pub fn register(&'static self, kobj: &'static Kobject) -> Result<Registration> {
        // SAFETY: `kobj` is a registered kobject and `self` a valid group that lives forever.
        to_result(unsafe { bindings::sysfs_create_group(kobj.as_raw(), self.0.get()) })?;
        Ok(Registration { group: self, kobj })
    }
}

/// The files of a registered [`AttributeGroup`]; removed on drop.
pub struct Registration {
    group: &'static AttributeGroup,
    kobj: &'static Kobject,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: The group was created under `kobj` by `register`.
        unsafe { bindings::sysfs_remove_group(self.kobj.as_raw(), self.group.0.get()) };
    }
}

/// Defines a static [`AttributeGroup`] from a list of [`Attribute`] types; an entry may carry
/// `#[cfg(...)]`.
///
/// # Examples
///
/// ```
/// use kernel::{c_str, prelude::*, sysfs::{self, Attribute, ShowBuffer}};
/// use core::fmt::Write;
///
/// struct Answer;
/// impl Attribute for Answer {
///     const NAME: &'static CStr = c_str!("answer");
///     fn show(buf: &mut ShowBuffer) -> Result {
///         writeln!(buf, "42").map_err(|_| EINVAL)
///     }
/// }
///
/// kernel::attribute_group!(static GROUP = Some(c_str!("rust_doc")), [Answer]);
/// ```
#[macro_export]
macro_rules! attribute_group {
    ($vis:vis static $group:ident = $name:expr, [$($(#[$m:meta])* $attr:ty),* $(,)?]) => {
        $vis static $group: $crate::sysfs::AttributeGroup = {
            const N: usize = [$($(#[$m])* ()),*].len();
            static ATTRS: [$crate::sysfs::KobjAttribute; N] = [
                $($(#[$m])* $crate::sysfs::KobjAttribute::new::<$attr>()),*
            ];
            static PTRS: $crate::sysfs::AttributePointers<{ N + 1 }> =
                $crate::sysfs::AttributePointers::new(&ATTRS);
            $crate::sysfs::AttributeGroup::new($name, PTRS.as_ptr())
        };
    };
}

/// Parses a decimal `unsigned int` as `kstrtouint(s, 10, ...)` does.
pub fn parse_uint(s: &CStr) -> Result<u32> {
    let mut v: c_uint = 0;
    // SAFETY: `s` is NUL-terminated and `v` is a valid location.
    to_result(unsafe { bindings::kstrtouint(s.as_char_ptr(), 10, &mut v) })?;
    Ok(v)
}

/// Parses a decimal `int` as `kstrtoint(s, 10, ...)` does.
pub fn parse_int(s: &CStr) -> Result<i32> {
    let mut v: crate::ffi::c_int = 0;
    // SAFETY: `s` is NUL-terminated and `v` is a valid location.
    to_result(unsafe { bindings::kstrtoint(s.as_char_ptr(), 10, &mut v) })?;
    Ok(v)
}

/// Parses a decimal `unsigned long` as `kstrtoul(s, 10, ...)` does (64-bit kernels).
pub fn parse_ulong(s: &CStr) -> Result<u64> {
    const _: () = assert!(core::mem::size_of::<crate::ffi::c_ulong>() == 8);
    let mut v: c_ulonglong = 0;
    // SAFETY: `s` is NUL-terminated and `v` is a valid location.
    to_result(unsafe { bindings::kstrtoull(s.as_char_ptr(), 10, &mut v) })?;
    Ok(v)
}

/// Compares what userspace wrote with `word` as `sysfs_streq()` does: a trailing newline on
/// either side is ignored.
pub fn streq(input: &CStr, word: &CStr) -> bool {
    // SAFETY: Both strings are NUL-terminated.
    unsafe { bindings::sysfs_streq(input.as_char_ptr(), word.as_char_ptr()) }
}

/// Maps any parse error to `EINVAL`, as most sysfs `store` functions do.
pub fn einval(_: Error) -> Error {
    crate::error::code::EINVAL
}

#[macros::kunit_tests(rust_kernel_sysfs)]
mod tests {
    use super::*;
    use crate::error::code::{EINVAL, ERANGE};
    use crate::prelude::*;
    use core::fmt::Write;

    #[test]
    fn parse_uint_like_kstrtouint() {
        assert_eq!(parse_uint(c"0"), Ok(0));
        assert_eq!(parse_uint(c"42\n"), Ok(42));
        assert_eq!(parse_uint(c"+17"), Ok(17));
        assert_eq!(parse_uint(c"4294967295"), Ok(u32::MAX));
        assert_eq!(parse_uint(c"4294967296"), Err(ERANGE));
        assert_eq!(parse_uint(c"-1"), Err(EINVAL));
        assert_eq!(parse_uint(c"12abc"), Err(EINVAL));
        assert_eq!(parse_uint(c""), Err(EINVAL));
        assert_eq!(parse_uint(c" 1"), Err(EINVAL));
    }

    #[test]
    fn parse_int_and_ulong() {
        assert_eq!(parse_int(c"-5"), Ok(-5));
        assert_eq!(parse_int(c"2147483648"), Err(ERANGE));
        assert_eq!(parse_ulong(c"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_ulong(c"18446744073709551616"), Err(ERANGE));
        assert_eq!(parse_ulong(c"0x10"), Err(EINVAL));
    }

    #[test]
    fn streq_ignores_one_trailing_newline() {
        assert!(streq(c"none\n", c"none"));
        assert!(streq(c"none", c"none"));
        assert!(!streq(c"none\n\n", c"none"));
        assert!(!streq(c"non", c"none"));
    }

    #[test]
    fn show_buffer_stops_at_the_page() -> Result {
        let mut page = KVec::<u8>::with_capacity(bindings::PAGE_SIZE, GFP_KERNEL)?;
        page.resize(bindings::PAGE_SIZE, 0, GFP_KERNEL)?;
        let mut buf = ShowBuffer {
            buf: page.as_mut_ptr(),
            len: 0,
        };
        assert!(writeln!(buf, "{}", 12345).is_ok());
        assert_eq!(&page[..6], b"12345\n");
        let mut buf = ShowBuffer {
            buf: page.as_mut_ptr(),
            len: 0,
        };
        // 64 bytes at a time: the page holds 63 full writes, then the 64th is cut.
        let line = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
        let mut written = 0;
        while buf.write_str(line).is_ok() {
            written += 1;
        }
        assert_eq!(written, (bindings::PAGE_SIZE - 1) / line.len());
        assert_eq!(buf.len, bindings::PAGE_SIZE - 1);
        Ok(())
    }
}
