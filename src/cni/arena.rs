//! The global allocator of the plugin binaries: a bump arena for a process that lives for
//! one CNI command.
//!
//! Why: the static musl build is the one we deploy (fastest to start), and musl's malloc
//! hands freed pages straight back to the kernel. An ADD then made ~30 `mmap`/`munmap`
//! pairs, each with a page fault: ≈ 0.15 ms of an ADD's own cost on the benchmark VM.
//! A plugin process allocates well under a megabyte and exits within milliseconds, so it
//! never needs to reuse freed memory: allocating is a pointer bump in a zero-initialised
//! static (untouched pages cost nothing), freeing the latest block gives it back (the
//! common grow-a-`Vec` pattern), and anything else is simply forgotten until exit.
//! When the arena is full (an admin `list` over thousands of attachments, say) or a block
//! needs an unusual alignment, the system allocator takes over, so nothing ever fails for
//! lack of arena.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// Size of the plugin's arena: a few times what the largest command needs.
pub const PLUGIN_ARENA_BYTES: usize = 4 << 20;

const MAX_ALIGN: usize = 4096;

/// A bump allocator over `N` bytes of its own, falling back to [`System`].
#[repr(C, align(4096))]
pub struct Arena<const N: usize> {
    memory: UnsafeCell<[u8; N]>,
    /// Offset of the first free byte.
    top: AtomicUsize,
    /// Bytes from here on were never handed out, so they are still zero.
    pristine: AtomicUsize,
}

// SAFETY: the memory is only reached through blocks handed out by compare-and-swap on
// `top`, so no two live blocks overlap.
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Arena<N> {
    pub const fn new() -> Self {
        Arena {
            memory: UnsafeCell::new([0; N]),
            top: AtomicUsize::new(0),
            pristine: AtomicUsize::new(0),
        }
    }

    /// The first byte of the arena.
    fn base(&self) -> *mut u8 {
        self.memory.get().cast::<u8>()
    }

    /// The arena byte at `offset`. Only called with an offset `bump` reserved, so the
    /// pointer stays inside `memory` (at most one past its end for an empty block).
    fn at(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset <= N);
        // `wrapping_add` keeps the pointer's provenance (no integer-to-pointer cast); with
        // `offset <= N` it never actually wraps.
        self.base().wrapping_add(offset)
    }

    /// Offset of `ptr` if the block is ours.
    fn offset_of(&self, ptr: *mut u8) -> Option<usize> {
        ptr.addr()
            .checked_sub(self.base().addr())
            .filter(|&off| off < N)
    }

    /// Bytes handed out so far (for tests and curiosity).
    pub fn used(&self) -> usize {
        self.top.load(SeqCst)
    }

    /// Reserves a block; returns its offset and where the pristine part began before it.
    fn bump(&self, layout: Layout) -> Option<(usize, usize)> {
        if layout.align() > MAX_ALIGN {
            return None;
        }
        let mut top = self.top.load(SeqCst);
        loop {
            let start = top.checked_next_multiple_of(layout.align())?;
            let end = start.checked_add(layout.size()).filter(|&e| e <= N)?;
            match self.top.compare_exchange_weak(top, end, SeqCst, SeqCst) {
                Ok(_) => return Some((start, self.pristine.fetch_max(end, SeqCst))),
                Err(now) => top = now,
            }
        }
    }
}

// SAFETY: every block handed out lies inside `memory`, is aligned as asked (the arena is
// 4096-aligned and offsets are rounded up to the block's alignment, at most 4096), and no
// two live blocks overlap (`top` only moves by compare-and-swap, and only the latest block
// is ever given back); everything else goes to `System`, which upholds the same contract.
unsafe impl<const N: usize> GlobalAlloc for Arena<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some((start, _)) => self.at(start),
            // SAFETY: the caller's layout contract is passed on unchanged.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some((start, pristine)) = self.bump(layout) else {
            // SAFETY: the caller's layout contract is passed on unchanged.
            return unsafe { System.alloc_zeroed(layout) };
        };
        let ptr = self.at(start);
        // Only bytes handed out before (and given back) can be dirty.
        if start < pristine {
            // SAFETY: `ptr` starts a block of `layout.size()` bytes that `bump` just reserved
            // for us alone; fewer than that are written.
            unsafe { std::ptr::write_bytes(ptr, 0, layout.size().min(pristine - start)) };
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset_of(ptr) {
            // The latest block comes back; any other is forgotten until exit.
            Some(off) => {
                let _ = self
                    .top
                    .compare_exchange(off + layout.size(), off, SeqCst, SeqCst);
            }
            // SAFETY: not ours, so `System` handed it out with this layout.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(off) = self.offset_of(ptr) else {
            // SAFETY: not ours, so `System` handed it out with this layout; the caller's
            // contract on `new_size` is passed on.
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        let old_end = off + layout.size();
        if new_size <= layout.size() {
            let _ = self
                .top
                .compare_exchange(old_end, off + new_size, SeqCst, SeqCst);
            return ptr;
        }
        // The latest block grows in place when there is room.
        if off + new_size <= N
            && self
                .top
                .compare_exchange(old_end, off + new_size, SeqCst, SeqCst)
                .is_ok()
        {
            self.pristine.fetch_max(off + new_size, SeqCst);
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, does not
        // overflow `isize`, which is what `Layout` requires.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid non-zero-size layout (`new_size` > the old size).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: the old block holds `layout.size()` bytes, the new one at least as many,
            // and they are different blocks; the old one is ours to give back.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tests call the allocator directly, as the standard library would: every block
    // they use was handed out by the arena under test with the layout they pass back.

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn blocks_are_aligned_and_disjoint() {
        static A: Arena<4096> = Arena::new();
        // SAFETY: see the note at the top of the tests.
        unsafe {
            let a = A.alloc(layout(3, 1));
            let b = A.alloc(layout(16, 16));
            let c = A.alloc(layout(8, 8));
            assert_eq!(b.addr() % 16, 0);
            assert_eq!(c.addr() % 8, 0);
            assert!(a < b && a.addr() + 3 <= b.addr());
            assert!(b.addr() + 16 <= c.addr());
            assert!(A.offset_of(a).is_some() && A.offset_of(c).is_some());
        }
    }

    #[test]
    fn the_latest_block_is_given_back_and_reused() {
        static A: Arena<4096> = Arena::new();
        // SAFETY: see the note at the top of the tests.
        unsafe {
            let keep = A.alloc(layout(104, 8));
            let used = A.used();
            let tmp = A.alloc(layout(200, 8));
            A.dealloc(tmp, layout(200, 8));
            assert_eq!(A.used(), used);
            assert_eq!(A.alloc(layout(200, 8)), tmp);
            // An older block cannot be given back; it is forgotten.
            A.dealloc(keep, layout(104, 8));
            assert_eq!(A.used(), used + 200);
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_where_memory_was_used_before() {
        static A: Arena<4096> = Arena::new();
        // SAFETY: see the note at the top of the tests.
        unsafe {
            let dirty = A.alloc(layout(64, 8));
            std::ptr::write_bytes(dirty, 0xAB, 64);
            A.dealloc(dirty, layout(64, 8));
            let z = A.alloc_zeroed(layout(128, 8));
            assert_eq!(z, dirty, "reuses the given-back block");
            assert!(std::slice::from_raw_parts(z, 128).iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn the_latest_block_grows_in_place_and_others_move_with_their_bytes() {
        static A: Arena<4096> = Arena::new();
        // SAFETY: see the note at the top of the tests.
        unsafe {
            let a = A.alloc(layout(16, 8));
            std::ptr::write_bytes(a, 7, 16);
            let grown = A.realloc(a, layout(16, 8), 64);
            assert_eq!(grown, a);
            let _other = A.alloc(layout(8, 8));
            let moved = A.realloc(grown, layout(64, 8), 128);
            assert_ne!(moved, grown);
            assert!(std::slice::from_raw_parts(moved, 16)
                .iter()
                .all(|&b| b == 7));
        }
    }

    #[test]
    fn a_full_arena_falls_back_to_the_system_allocator() {
        static A: Arena<256> = Arena::new();
        // SAFETY: see the note at the top of the tests.
        unsafe {
            let big = A.alloc(layout(1024, 8));
            assert!(!big.is_null());
            assert!(A.offset_of(big).is_none());
            std::ptr::write_bytes(big, 1, 1024);
            let grown = A.realloc(big, layout(1024, 8), 4096);
            assert!(!grown.is_null());
            A.dealloc(grown, layout(4096, 8));
            // An arena block that outgrows the arena moves to the system allocator intact.
            let small = A.alloc(layout(200, 8));
            std::ptr::write_bytes(small, 9, 200);
            let out = A.realloc(small, layout(200, 8), 300);
            assert!(A.offset_of(out).is_none());
            assert!(std::slice::from_raw_parts(out, 200).iter().all(|&b| b == 9));
            A.dealloc(out, layout(300, 8));
            let odd = A.alloc(layout(8, 8192));
            assert!(A.offset_of(odd).is_none() && odd.addr().is_multiple_of(8192));
            A.dealloc(odd, layout(8, 8192));
        }
    }
}
