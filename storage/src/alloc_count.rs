//! Test builds only: the global allocator counts the heap bytes each
//! thread holds (allocated minus freed by that thread), so a unit test can
//! bound what a structure costs without other tests' threads in the
//! figure. Memory freed by another thread than the one that allocated it
//! counts on the freeing thread; the tests that read it stay on one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The counting allocator (`System` underneath).
struct Counting;

thread_local! {
    /// Bytes this thread holds now (const-initialized: no allocation and
    /// no destructor, so the allocator may touch it).
    static HELD: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to `System` unchanged; only counts are
// kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = HELD.try_with(|h| h.set(h.get() + layout.size() as isize));
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = HELD.try_with(|h| h.set(h.get() - layout.size() as isize));
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = HELD.try_with(|h| h.set(h.get() + new_size as isize - layout.size() as isize));
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Heap bytes the calling thread holds now.
pub(crate) fn held() -> isize {
    HELD.with(Cell::get)
}
