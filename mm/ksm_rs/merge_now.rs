// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Merging on demand: `/sys/kernel/mm/ksm/merge_now` (Rust only).
//!
//! Writing `<pid> <start> <end>` scans the present anonymous pages of process `pid` in
//! `[start, end)` that lie in mergeable VMAs against KSM's trees now, as ksmd would scan them
//! ([`Engine::cmp_and_merge`]), and the write returns when that is done. `pid` is decimal,
//! `start` and `end` are parsed as `kstrtoul(s, 0)` does (`0x` hex, a leading `0` octal,
//! decimal); `start` must be page aligned and `end` is rounded up to a page.
//!
//! Errors: `EINVAL` for a malformed line, an unaligned `start`, `end <= start` or an overflow,
//! and for a process not registered with KSM (no `MMF_VM_MERGEABLE`: no `MADV_MERGEABLE` nor
//! `PR_SET_MEMORY_MERGE`); `ESRCH` when there is no such process or it has no address space (a
//! kernel thread, an exited process); `EPERM` unless the writer has `CAP_SYS_ADMIN` and may
//! ptrace-read the target (`mm_access(PTRACE_MODE_READ_FSCREDS)`, as `process_madvise()`);
//! `EINTR` when a fatal signal arrives (the work done so far stays); `EBUSY` while memory goes
//! offline (the stable tree must not be touched) or when `run=2` is or was written meanwhile
//! (unmerging everything wins); `ENOMEM` when an item cannot be allocated.
//!
//! It works whatever `run` is but 2: at `run=0` it merges without ksmd. It does not count in
//! `pages_scanned` nor `full_scans` (ksmd's), nor ages items for smart scan.
//!
//! # Two passes
//!
//! ksmd only merges a page whose checksum it saw unchanged at its previous scan (a page that
//! changes is volatile: not a candidate). On demand there is no previous scan, so the range is
//! passed over twice: the first pass records the checksums, the second merges the pages whose
//! checksum held still for the length of a pass. That keeps the engine's rule, and the engine,
//! unchanged, at the price of hashing the range twice. The second pass also inserts the pages
//! that found no match into the unstable tree, so that a `merge_now` on another process with
//! the same contents merges with them, as long as no full scan of ksmd ends in between (a full
//! scan starts with an empty unstable tree); with ksmd running, its next scans merge what is
//! left.
//!
//! # Cost
//!
//! Per page, the engine's ([`crate::engine`], `O(log n)`) twice, plus an amortised share of one
//! page table walk per chunk; unpopulated page tables and VMAs that are not mergeable are
//! skipped. A write costs `O(pages in the range)`, each VMA in the range visited at most once
//! per chunk that looks at it.
//!
//! # Locking
//!
//! The scanner mutex (the engine's, `ksm_thread_mutex`) is held for one chunk of at most
//! [`CHUNK`] pages at a time, never across the whole range: between chunks ksmd, `run` and the
//! other writers get it, and this writer checks for fatal signals and reschedules. The pages of
//! a chunk are found under the mmap read lock alone, before the scanner lock is taken. ksmd's
//! cursor (`current`, `queue`, `address`, `prune_from`) is not touched: ksmd holds the scanner
//! lock for a whole batch and leaves none of it in use between batches; items created here
//! at addresses ksmd's cursor is still to pass are found by its walk (or pruned by it if their
//! pages go), like its own.
//!
//! While the writer holds the target's user reference the mm cannot exit, so its registry slot
//! can only go when ksmd's cursor leaves it with no item (under the scanner lock, which a chunk
//! holds). The slot's `tracked` flag is set, under the registry lock, in the chunk that created
//! items, before the scanner lock and the user reference are dropped: [`Ksm::exit`] then leaves
//! the slot and its items to be reaped, never frees the slot under them. Slots of processes
//! that exited with items are reaped at the start of each write too, so that at `run=0` they do
//! not wait for ksmd.

use crate::{
    engine::mm_key,
    ksmd::{Scanner, SCAN_AHEAD},
    merge::mergeable_page_at,
    scan::{ksm, Ksm},
    tunables::*,
};
use kernel::{
    bindings,
    mm::{
        remote::{task_by_vpid, AccessMode},
        virt::flags::MERGEABLE as VMA_MERGEABLE,
        MmWithUser,
    },
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::Relaxed,
    task::Pid,
};

/// The most pages scanned under one hold of the scanner lock: one ksmd walk's worth.
pub(crate) const CHUNK: usize = SCAN_AHEAD;

/// What was written to `merge_now`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// The process, in the writer's pid namespace.
    pub(crate) pid: Pid,
    /// The first address, page aligned.
    pub(crate) start: usize,
    /// The end of the range (exclusive), page aligned, above `start`.
    pub(crate) end: usize,
}

/// Copies `word` into `buf` with a NUL after it, for the C parsers.
fn c_word<'a>(word: &[u8], buf: &'a mut [u8; 32]) -> Result<&'a CStr> {
    if word.len() >= buf.len() {
        return Err(EINVAL);
    }
    buf[..word.len()].copy_from_slice(word);
    buf[word.len()] = 0;
    CStr::from_bytes_with_nul(&buf[..=word.len()]).map_err(|_| EINVAL)
}

/// Parses an `unsigned long` as `kstrtoul(s, 0, ...)` does.
fn parse_addr(word: &[u8]) -> Result<usize> {
    let mut buf = [0u8; 32];
    let s = c_word(word, &mut buf)?;
    let mut v: u64 = 0;
    // SAFETY: `s` is NUL-terminated and `v` is a valid location.
    kernel::error::to_result(unsafe { bindings::kstrtoull(s.as_char_ptr(), 0, &mut v) })
        .map_err(|_| EINVAL)?;
    usize::try_from(v).map_err(|_| EINVAL)
}

/// Parses a decimal pid, which must be positive.
fn parse_pid(word: &[u8]) -> Result<Pid> {
    let mut buf = [0u8; 32];
    let s = c_word(word, &mut buf)?;
    let pid = kernel::sysfs::parse_int(s).map_err(|_| EINVAL)?;
    if pid <= 0 {
        return Err(EINVAL);
    }
    Ok(pid)
}

impl Request {
    /// Parses `<pid> <start> <end>`, words separated by spaces or tabs, with an optional
    /// trailing newline.
    pub(crate) fn parse(input: &CStr) -> Result<Self> {
        let line = input.to_bytes();
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        // One line: the C parsers would take a word's own trailing newline.
        if line.contains(&b'\n') {
            return Err(EINVAL);
        }
        let mut words = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let (Some(pid), Some(start), Some(end), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(EINVAL);
        };
        let pid = parse_pid(pid)?;
        let start = parse_addr(start)?;
        let end = parse_addr(end)?;
        if start % PAGE_SIZE != 0 || end <= start {
            return Err(EINVAL);
        }
        let end = end.checked_next_multiple_of(PAGE_SIZE).ok_or(EINVAL)?;
        Ok(Self { pid, start, end })
    }
}

/// Finds the present anonymous pages of mergeable VMAs of `mm` from `addr` up to `end`, at
/// most `found`'s capacity, under the mmap read lock; returns where to look next.
fn find_pages(mm: &MmWithUser, mut addr: usize, end: usize, found: &mut KVec<usize>) -> usize {
    found.clear();
    let guard = mm.mmap_read_lock();
    while addr < end {
        let Some(vma) = guard.find_vma(addr) else {
            return end;
        };
        if vma.start() >= end {
            return end;
        }
        let vend = vma.end().min(end);
        if vma.flags() & VMA_MERGEABLE == 0 || !vma.has_anon_vma() {
            addr = vend;
            continue;
        }
        addr = addr.max(vma.start());
        vma.anon_addrs(addr, vend, found);
        if found.len() >= found.capacity() {
            // Full: the rest of this VMA is for the next chunk.
            return found.last().map_or(vend, |&a| a + PAGE_SIZE);
        }
        addr = vend;
    }
    addr
}

impl Ksm {
    /// Carries out a `merge_now` request.
    pub(crate) fn merge_now(&self, req: &Request) -> Result {
        // SAFETY: May be called from process context; checks the current task's capabilities.
        if !unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) } {
            return Err(EPERM);
        }
        let task = task_by_vpid(req.pid).ok_or(ESRCH)?;
        let mm = MmWithUser::access(&task, AccessMode::READ_FSCREDS).map_err(|e| {
            if e == EACCES {
                EPERM
            } else {
                e
            }
        })?;
        drop(task);
        let res = self.merge_range(&mm, req);
        // The last user reference may be ours (the process exited meanwhile): it is dropped
        // here, with no KSM lock held, as `Ksm::exit` takes the registry lock and the mmap lock.
        drop(mm);
        res
    }

    /// Both passes over the range.
    fn merge_range(&self, mm: &MmWithUser, req: &Request) -> Result {
        let unmerge_pass = {
            let mut scanner = self.scanner.lock();
            let pass = self.registry.lock().unmerge_pass;
            self.check(&scanner, mm, pass)?;
            self.reap_exited(&mut scanner);
            pass
        };
        let mut found = KVec::with_capacity(CHUNK, GFP_KERNEL)?;
        // Pages held in per-CPU LRU batches have a raised reference count, which makes
        // `write_protect_page` refuse them: drain them once per write, as ksmd once per scan.
        // SAFETY: May be called from process context without locks held.
        unsafe { bindings::lru_add_drain_all() };
        for _ in 0..2 {
            let mut addr = req.start;
            while addr < req.end {
                kernel::task::cond_resched();
                if kernel::current!().fatal_signal_pending() {
                    return Err(EINTR);
                }
                addr = find_pages(mm, addr, req.end, &mut found);
                if found.is_empty() {
                    break;
                }
                let mut scanner = self.scanner.lock();
                self.check(&scanner, mm, unmerge_pass)?;
                self.merge_chunk(&mut scanner, mm, &found)?;
            }
        }
        Ok(())
    }

    /// Whether scanning may go on, under the scanner lock: not while memory goes offline, nor
    /// after a `run=2` (started since `unmerge_pass`), nor once the mm is not registered.
    fn check(&self, scanner: &Scanner, mm: &MmWithUser, unmerge_pass: u64) -> Result {
        // `run` and `offlining` change under the scanner lock.
        if scanner.offlining || RUN.load(Relaxed) == RUN_UNMERGE {
            return Err(EBUSY);
        }
        let reg = self.registry.lock();
        if reg.unmerge_pass != unmerge_pass {
            return Err(EBUSY);
        }
        // Only ksmd, under the scanner lock, removes the slot of an mm that has users.
        if reg.slots.get(&mm_key(mm)).is_none() {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Scans the pages at `found` of `mm`, under the scanner lock, then notes that the engine
    /// tracks pages of `mm` (checked registered by the caller under the same hold of the lock).
    fn merge_chunk(&self, scanner: &mut Scanner, mm: &MmWithUser, found: &[usize]) -> Result {
        let mmk = mm_key(mm);
        let mut res = Ok(());
        for &a in found {
            // The page found by the walk may have gone (or been replaced) since.
            let Some(page) = mergeable_page_at(mm, a) else {
                continue;
            };
            let domains = || self.registry.lock().domains_of(mmk);
            if let Err(e) = scanner.engine.get_or_create_item(mm, a, domains) {
                res = Err(e);
                break;
            }
            scanner.engine.cmp_and_merge(mm, a, page);
        }
        if scanner.engine.has_items(mmk) {
            // A slot whose mm has items must be `tracked` (or at ksmd's cursor, which brings the
            // flag up to date when it leaves it), so that `Ksm::exit` leaves it to be reaped.
            if let Some(slot) = self.registry.lock().slots.get_mut(&mmk) {
                slot.tracked = true;
            }
        }
        res
    }
}

/// Carries out what was written to `merge_now`.
pub(crate) fn store(input: &CStr) -> Result {
    let req = Request::parse(input)?;
    ksm().ok_or(ENODEV)?.merge_now(&req)
}

#[kunit_tests(ksm_rs_merge_now)]
mod tests {
    use super::*;

    fn parse(s: &CStr) -> Result<(Pid, usize, usize)> {
        Request::parse(s).map(|r| (r.pid, r.start, r.end))
    }

    #[test]
    fn parses_like_kstrtoul_base_0() {
        assert_eq!(parse(c"1 0x1000 0x3000\n"), Ok((1, 0x1000, 0x3000)));
        assert_eq!(parse(c"42\t4096  8192"), Ok((42, 4096, 8192)));
        // A leading 0 is octal, as for kstrtoul(s, 0).
        assert_eq!(parse(c"7 010000 020000"), Ok((7, 4096, 8192)));
        // `end` is rounded up to a page.
        assert_eq!(parse(c"7 0x1000 0x1001"), Ok((7, 0x1000, 0x2000)));
    }

    #[test]
    fn rejects_malformed_lines() {
        for s in [
            c"",
            c"\n",
            c"1 0x1000",
            c"1 0x1000 0x2000 3",
            c"0 0x1000 0x2000",
            c"-1 0x1000 0x2000",
            c"0x1 0x1000 0x2000",
            c"1 0x1001 0x2000",
            c"1 0x2000 0x2000",
            c"1 0x2000 0x1000",
            c"1 0x1000 0x2000\n\n",
            c"1 0x1000\n0x2000",
            c"1 0x1000 0x10000000000000000",
            c"1 0x1000 0xfffffffffffff001",
            c"99999999999 0x1000 0x2000",
            c"1 0x1000 0x0000000000000000000000000000002000",
        ] {
            assert_eq!(parse(s), Err(EINVAL));
        }
    }
}
