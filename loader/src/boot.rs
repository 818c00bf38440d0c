//! Start-up flow of the boot CPU (temporary bring-up version).
use crate::arch::{cpu, exceptions, heap, mmu, timer, uart};
use crate::println;

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __heap_start: u8;
    static __heap_end: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

#[no_mangle]
extern "C" fn rust_entry(dtb: u64, entry_ticks: u64, el: u64, x1: u64, x2: u64, x3: u64) -> ! {
    uart::set_base(0x0900_0000);
    // SAFETY: linker-provided symbols.
    let (img_start, img_end, heap_start, heap_end) = unsafe {
        (sym(&__image_start), sym(&__image_end), sym(&__heap_start), sym(&__heap_end))
    };
    // SAFETY: the heap range is ours and unused.
    unsafe { heap::init(heap_start as usize, heap_end as usize) };
    let magic = exceptions::probe_read_u32(dtb as usize);
    let normal = [(img_start, img_end - img_start), (0x4000_0000, 0x4000_0000)];
    let device = [(0x0900_0000u64, 0x1000u64)];
    let errs = mmu::enable(&mmu::Layout2 { normal: &normal, device: &device });
    let t = timer::ticks();
    println!(
        "parkboot at {img_start:#x} EL{el} dtb {dtb:#x} magic {magic:x?} x1-3 {x1:#x} {x2:#x} {x3:#x} map errors {errs} mpidr {:#x}",
        cpu::mpidr()
    );
    println!("entry->here {} us", timer::ticks_to_us(t - entry_ticks));
    let v = alloc::vec![1u8; 100000];
    println!("heap ok {}", v.len());
    println!("=> ");
    loop {
        if let Some(b) = uart::getb() {
            uart::putb(b);
        }
    }
}
