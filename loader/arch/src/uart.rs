//! Polled PL011 console. Deliberately tiny and lock-free: it must work before
//! the MMU is on (no atomics read-modify-write), from the exception handler,
//! and after a panic. The base address is a single word that the boot flow
//! sets from the board default and later from /chosen/stdout-path.
//! (arm-pl011-uart needs an owned `UniqueMmioPointer`, which the exception
//! and panic paths cannot borrow; see docs/architecture.md.)

use core::sync::atomic::{AtomicUsize, Ordering};

static BASE: AtomicUsize = AtomicUsize::new(0);

const DR: usize = 0x00;
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;
const FR_RXFE: u32 = 1 << 4;
const FR_BUSY: u32 = 1 << 3;

/// Selects the PL011 at `base` (0 disables output).
pub fn set_base(base: usize) {
    BASE.store(base, Ordering::Relaxed);
}

pub fn base() -> usize {
    BASE.load(Ordering::Relaxed)
}

fn reg(off: usize) -> *mut u32 {
    (base() + off) as *mut u32
}

pub fn putb(b: u8) {
    if base() == 0 {
        return;
    }
    // SAFETY: `base` is the PL011 chosen by the boot flow and mapped as device memory.
    unsafe {
        while reg(FR).read_volatile() & FR_TXFF != 0 {}
        reg(DR).write_volatile(b as u32);
    }
}

pub fn write_bytes(s: &[u8]) {
    for &b in s {
        if b == b'\n' {
            putb(b'\r');
        }
        putb(b);
    }
}

pub fn write_str(s: &str) {
    write_bytes(s.as_bytes());
}

/// Non-blocking read of one received byte.
pub fn getb() -> Option<u8> {
    if base() == 0 {
        return None;
    }
    // SAFETY: as in `putb`.
    unsafe {
        if reg(FR).read_volatile() & FR_RXFE != 0 {
            None
        } else {
            Some((reg(DR).read_volatile() & 0xff) as u8)
        }
    }
}

/// Waits until everything written has left the transmitter.
pub fn flush() {
    if base() == 0 {
        return;
    }
    // SAFETY: as in `putb`.
    unsafe { while reg(FR).read_volatile() & FR_BUSY != 0 {} }
}

/// `core::fmt` sink for the console.
pub struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_str(s);
        Ok(())
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::uart::Console, format_args!($($arg)*));
    }};
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        $crate::print!($($arg)*);
        $crate::print!("\n");
    }};
}
