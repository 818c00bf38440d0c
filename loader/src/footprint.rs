//! The loader's own footprint, from the linker script's symbols: the image
//! in place, its stack and heap, and how much of it is the file.

use loader::memmap::Owner;

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __image_file_end: u8;
    static __stack_bottom: u8;
    static __stack_top: u8;
    static __heap_start: u8;
    static __heap_end: u8;
}

/// What the unused stack is filled with at start-up.
const STACK_PAINT: u64 = 0x5a5a_5a5a_a5a5_a5a5;

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Where the loader lies in memory (addresses; ends exclusive).
#[derive(Clone, Copy)]
pub struct Footprint {
    start: u64,
    end: u64,
    file_end: u64,
    stack: (u64, u64),
    heap: (u64, u64),
}

impl Footprint {
    pub fn from_linker() -> Self {
        // SAFETY: linker-provided symbols; only their addresses are taken.
        unsafe {
            Self {
                start: sym(&__image_start),
                end: sym(&__image_end),
                file_end: sym(&__image_file_end),
                stack: (sym(&__stack_bottom), sym(&__stack_top)),
                heap: (sym(&__heap_start), sym(&__heap_end)),
            }
        }
    }

    /// Where the image starts (its load base).
    pub const fn base(&self) -> u64 {
        self.start
    }

    /// Bytes in place: file, .bss, stack and heap.
    pub const fn size(&self) -> u64 {
        self.end - self.start
    }

    /// Bytes of loader.bin (the file part of the footprint).
    pub const fn file_size(&self) -> u64 {
        self.file_end - self.start
    }

    /// `[bottom, top)` of the boot CPU's stack.
    pub const fn stack(&self) -> (u64, u64) {
        self.stack
    }

    /// Fills the unused part of the stack (from its bottom up to a little below the caller's
    /// frame) with [`STACK_PAINT`], so that [`Footprint::stack_high_water`] can tell how deep
    /// it has ever been. Called once, first thing at start-up, with interrupts masked.
    #[inline(never)]
    pub fn paint_stack(&self) {
        let here = 0u64;
        let frame = core::ptr::addr_of!(here) as u64;
        let (lo, hi) = self.stack;
        if !(lo < frame && frame <= hi) {
            return; // not on our stack (cannot happen; then there is nothing to measure)
        }
        let end = frame.saturating_sub(1024) & !7;
        let mut a = lo;
        while a < end {
            // SAFETY: `[lo, end)` is the stack's unused part: below every live frame (1 KiB
            // under this one, which calls nothing), inside the loader's own stack claim, and
            // nothing else runs (interrupts masked at start-up, one CPU in the loader).
            unsafe { core::ptr::write_volatile(a as *mut u64, STACK_PAINT) };
            a += 8;
        }
    }

    /// The deepest the stack has been since [`Footprint::paint_stack`], in bytes; the whole
    /// stack when the paint at its bottom is gone (it overflowed, or was never painted).
    pub fn stack_high_water(&self) -> u64 {
        let (lo, hi) = self.stack;
        let mut a = lo;
        // SAFETY: reads inside the loader's own stack claim, below the live frames.
        while a < hi && unsafe { core::ptr::read_volatile(a as *const u64) } == STACK_PAINT {
            a += 8;
        }
        hi - a
    }

    /// `[start, end)` of the heap.
    pub const fn heap(&self) -> (u64, u64) {
        self.heap
    }

    /// The claims that protect the loader: the image (everything but the stack and heap,
    /// which are claimed by name), the stack, the heap. Sizes may be 0.
    pub fn claims(&self) -> [(u64, u64, Owner); 4] {
        let (stack_lo, stack_hi) = self.stack;
        let (heap_lo, heap_hi) = self.heap;
        [
            (self.start, stack_lo - self.start, Owner::LoaderImage),
            (stack_lo, stack_hi - stack_lo, Owner::LoaderStack),
            (heap_lo, heap_hi - heap_lo, Owner::LoaderHeap),
            (heap_hi, self.end - heap_hi, Owner::LoaderImage),
        ]
    }
}
