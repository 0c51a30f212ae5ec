// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The map from page to item of one address space.
//!
//! `mm/ksm.c` keeps an address-ordered linked list of 64-byte `ksm_rmap_item`s per address space.
//! Here the address space is cut into chunks of 512 pages (what one page table maps); a chunk
//! with tracked pages has a bitmap of them and their items packed in address order. A lookup is
//! a tree walk to the chunk (skipped when it is the chunk of the last lookup, as it is for a
//! scan going through the address space in order) and a count of bits; a dense region costs the
//! item itself plus a fraction of a byte per page.

use kernel::{
    alloc::KVVec,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
};

/// log2 of the pages per chunk.
const CHUNK_SHIFT: u32 = 9;
/// Pages per chunk.
const CHUNK_PAGES: usize = 1 << CHUNK_SHIFT;
/// Words of the bitmap of a chunk.
const WORDS: usize = CHUNK_PAGES / 64;
/// Items a full chunk vector grows by: little slack, and rare copies.
const GROW: usize = 32;

/// The items of one chunk.
struct Chunk<T> {
    /// Which pages of the chunk have an item.
    present: [u64; WORDS],
    /// The number of items below each word of `present`, so that finding an item counts the
    /// bits of one word only.
    below: [u16; WORDS],
    /// The items, in page order.
    items: KVVec<T>,
}

impl<T: Copy> Chunk<T> {
    fn test(&self, i: usize) -> bool {
        self.present[i / 64] & (1 << (i % 64)) != 0
    }

    /// The number of items below page `i`: the index of page `i`'s item.
    fn rank(&self, i: usize) -> usize {
        let w = i / 64;
        usize::from(self.below[w]) + (self.present[w] & ((1 << (i % 64)) - 1)).count_ones() as usize
    }

    /// Recomputes `below` from word `from` on.
    fn recount(&mut self, from: usize) {
        let mut n = if from == 0 {
            0
        } else {
            self.below[from - 1] + self.present[from - 1].count_ones() as u16
        };
        for w in from..WORDS {
            self.below[w] = n;
            n += self.present[w].count_ones() as u16;
        }
    }

    /// The first page with an item in `[lo, hi)`.
    fn next_set(&self, lo: usize, hi: usize) -> Option<usize> {
        let mut i = lo;
        while i < hi {
            let w = self.present[i / 64] >> (i % 64);
            if w == 0 {
                i = (i / 64 + 1) * 64;
                continue;
            }
            let j = i + w.trailing_zeros() as usize;
            return (j < hi).then_some(j);
        }
        None
    }

    /// Makes room for one more item.
    fn reserve_one(&mut self) -> Result {
        let len = self.items.len();
        if len < self.items.capacity() {
            return Ok(());
        }
        let mut v = KVVec::with_capacity((len + GROW).min(CHUNK_PAGES), crate::scan_gfp())?;
        v.extend_from_slice(&self.items, crate::scan_gfp())?;
        self.items = v;
        Ok(())
    }
}

/// A map from page index (user address >> `PAGE_SHIFT`) to `T`.
pub(crate) struct ItemMap<T> {
    chunks: RBTree<usize, KBox<Chunk<T>>>,
    len: usize,
    /// The chunk of the last lookup (chunk number, chunk); the box does not move while the
    /// chunk is in `chunks`, and the cache is cleared before a chunk leaves it.
    last: (usize, *mut Chunk<T>),
}

// SAFETY: `last` only points into `chunks`, which `ItemMap` owns.
unsafe impl<T: Send> Send for ItemMap<T> {}

impl<T: Copy> ItemMap<T> {
    /// Creates an empty map.
    pub(crate) fn new() -> Self {
        Self {
            chunks: RBTree::new(),
            len: 0,
            last: (0, core::ptr::null_mut()),
        }
    }

    /// The number of items.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn chunk_mut(&mut self, c: usize) -> Option<&mut Chunk<T>> {
        let (lc, lp) = self.last;
        if !lp.is_null() && lc == c {
            // SAFETY: `lp` points to the chunk `c` in `chunks` (see `last`), and `&mut self`
            // makes this the only reference to it.
            return Some(unsafe { &mut *lp });
        }
        let p = core::ptr::from_mut::<Chunk<T>>(self.chunks.get_mut(&c)?);
        self.last = (c, p);
        // SAFETY: Just derived from a unique borrow, which has ended.
        Some(unsafe { &mut *p })
    }

    /// The item of `page`.
    pub(crate) fn get_mut(&mut self, page: usize) -> Option<&mut T> {
        let i = page & (CHUNK_PAGES - 1);
        let ch = self.chunk_mut(page >> CHUNK_SHIFT)?;
        if !ch.test(i) {
            return None;
        }
        let r = ch.rank(i);
        ch.items.get_mut(r)
    }

    /// Adds the item of `page`, which has none.
    pub(crate) fn insert(&mut self, page: usize, value: T) -> Result {
        let c = page >> CHUNK_SHIFT;
        let i = page & (CHUNK_PAGES - 1);
        if self.chunk_mut(c).is_none() {
            let chunk = KBox::new(
                Chunk {
                    present: [0; WORDS],
                    below: [0; WORDS],
                    items: KVVec::new(),
                },
                crate::scan_gfp(),
            )?;
            let node = RBTreeNodeReservation::new(crate::scan_gfp())?;
            self.chunks.insert(node.into_node(c, chunk));
        }
        let ch = self.chunk_mut(c).ok_or(ENOMEM)?;
        if ch.test(i) {
            return Err(EEXIST);
        }
        ch.reserve_one()?;
        let r = ch.rank(i);
        ch.items
            .insert_within_capacity(r, value)
            .map_err(|_| ENOMEM)?;
        ch.present[i / 64] |= 1 << (i % 64);
        for b in &mut ch.below[i / 64 + 1..] {
            *b += 1;
        }
        self.len += 1;
        Ok(())
    }

    /// The first page with an item in `[start, end)`.
    pub(crate) fn first_in(&self, start: usize, end: usize) -> Option<usize> {
        if start >= end {
            return None;
        }
        let (cs, ce) = (start >> CHUNK_SHIFT, (end - 1) >> CHUNK_SHIFT);
        let mut c = cs;
        loop {
            let cur = self.chunks.cursor_lower_bound(&c)?;
            let (&k, ch) = cur.current();
            if k > ce {
                return None;
            }
            let lo = if k == cs {
                start & (CHUNK_PAGES - 1)
            } else {
                0
            };
            let hi = if k == ce {
                ((end - 1) & (CHUNK_PAGES - 1)) + 1
            } else {
                CHUNK_PAGES
            };
            if let Some(i) = ch.next_set(lo, hi) {
                return Some((k << CHUNK_SHIFT) | i);
            }
            c = k + 1;
        }
    }

    /// Removes the items of the pages in `[start, end)`; returns how many there were.
    pub(crate) fn remove_range(&mut self, start: usize, end: usize) -> usize {
        let mut removed = 0;
        let mut from = start;
        while let Some(first) = self.first_in(from, end) {
            let c = first >> CHUNK_SHIFT;
            let chunk_end = (c + 1) << CHUNK_SHIFT;
            let lo = first & (CHUNK_PAGES - 1);
            let hi = if end >= chunk_end {
                CHUNK_PAGES
            } else {
                end & (CHUNK_PAGES - 1)
            };
            let Some(ch) = self.chunk_mut(c) else { break };
            // The items of `[lo, hi)` are contiguous: drop them with one move.
            let r0 = ch.rank(lo);
            let r1 = if hi == CHUNK_PAGES {
                ch.items.len()
            } else {
                ch.rank(hi)
            };
            let len = ch.items.len();
            ch.items.copy_within(r1..len, r0);
            ch.items.truncate(len - (r1 - r0));
            for i in lo..hi {
                ch.present[i / 64] &= !(1 << (i % 64));
            }
            ch.recount(lo / 64);
            removed += r1 - r0;
            if ch.items.is_empty() {
                self.last = (0, core::ptr::null_mut());
                self.chunks.remove(&c);
            }
            from = chunk_end;
        }
        self.len -= removed;
        removed
    }
}

#[kunit_tests(ksm_rs_items)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_in_and_across_chunks() -> Result {
        let mut m: ItemMap<u64> = ItemMap::new();
        // Out of order, across three chunks, on both sides of bitmap words.
        for p in [5usize, 3, 511, 512, 64, 63, 1 << 20, 700] {
            m.insert(p, p as u64 * 10)?;
        }
        assert_eq!(m.insert(64, 0), Err(EEXIST));
        assert_eq!(m.len(), 8);
        for p in [5usize, 3, 511, 512, 64, 63, 1 << 20, 700] {
            assert_eq!(m.get_mut(p).copied(), Some(p as u64 * 10));
        }
        assert!(m.get_mut(4).is_none());
        assert!(m.get_mut(513).is_none());
        assert_eq!(m.first_in(0, usize::MAX), Some(3));
        assert_eq!(m.first_in(4, 64), Some(5));
        assert_eq!(m.first_in(6, 63), None);
        assert_eq!(m.first_in(512, 1 << 20), Some(512));
        assert_eq!(m.first_in(701, 1 << 20), None);
        assert_eq!(m.first_in(701, (1 << 20) + 1), Some(1 << 20));
        // The middle of a chunk, then a range across chunks.
        assert_eq!(m.remove_range(5, 64), 2);
        assert_eq!(m.get_mut(64).copied(), Some(640));
        assert_eq!(m.get_mut(3).copied(), Some(30));
        assert_eq!(m.remove_range(100, 701), 3);
        assert_eq!(m.len(), 3);
        assert_eq!(m.first_in(0, usize::MAX), Some(3));
        assert_eq!(m.first_in(4, usize::MAX), Some(64));
        assert_eq!(m.remove_range(0, usize::MAX), 3);
        assert!(m.is_empty());
        assert_eq!(m.first_in(0, usize::MAX), None);
        Ok(())
    }

    #[test]
    fn a_dense_chunk_in_order_then_backwards() -> Result {
        let mut m: ItemMap<u32> = ItemMap::new();
        for p in 0..CHUNK_PAGES {
            m.insert(1024 + p, p as u32)?;
        }
        for p in (0..CHUNK_PAGES).rev().step_by(3) {
            assert_eq!(m.get_mut(1024 + p).copied(), Some(p as u32));
        }
        assert_eq!(m.remove_range(1024 + 10, 1024 + 500), 490);
        assert_eq!(m.get_mut(1024 + 9).copied(), Some(9));
        assert_eq!(m.get_mut(1024 + 500).copied(), Some(500));
        assert_eq!(m.len(), CHUNK_PAGES - 490);
        Ok(())
    }
}
