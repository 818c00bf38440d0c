//! The global allocator: a buddy heap in the loader's own footprint.
//!
//! Only the boot CPU ever runs Rust (secondaries run nothing but the pen), so
//! the heap needs no lock. That also means no atomic read-modify-write, which
//! matters because the DT is parsed (and allocates) before the MMU is on, when
//! exclusives on Device memory are not guaranteed to work on real hardware.
//! Allocation failure returns null, which Rust turns into `alloc_error` →
//! our panic report; callers that size buffers from input use `try_reserve`.

use buddy_system_allocator::Heap;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{null_mut, NonNull};

pub struct LoaderHeap {
    heap: UnsafeCell<Heap<32>>,
    high_water: UnsafeCell<usize>,
}

// SAFETY: only the boot CPU runs Rust code (see module doc).
unsafe impl Sync for LoaderHeap {}

#[global_allocator]
pub static HEAP: LoaderHeap = LoaderHeap {
    heap: UnsafeCell::new(Heap::empty()),
    high_water: UnsafeCell::new(0),
};

/// # Safety
/// `[start, end)` must be unused memory owned by the loader; call once.
pub unsafe fn init(start: usize, end: usize) {
    unsafe { (*HEAP.heap.get()).init(start, end - start) };
}

#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub total: usize,
    pub in_use: usize,
    pub high_water: usize,
}

pub fn stats() -> Stats {
    // SAFETY: single Rust CPU; no allocation is in progress while we read.
    unsafe {
        let h = &*HEAP.heap.get();
        Stats {
            total: h.stats_total_bytes(),
            in_use: h.stats_alloc_actual(),
            high_water: *HEAP.high_water.get(),
        }
    }
}

unsafe impl GlobalAlloc for LoaderHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single Rust CPU, no reentrancy from interrupts (DAIF masked).
        unsafe {
            let h = &mut *self.heap.get();
            match h.alloc(layout) {
                Ok(p) => {
                    let used = h.stats_alloc_actual();
                    let hw = &mut *self.high_water.get();
                    if used > *hw {
                        *hw = used;
                    }
                    p.as_ptr()
                }
                Err(()) => null_mut(),
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout.
            unsafe { (*self.heap.get()).dealloc(p, layout) };
        }
    }
}
