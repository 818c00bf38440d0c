//! The console part: the PL011 the loader talks on (the board's default
//! until the DT names /chosen/stdout-path) and how the boot CPU waits for
//! input.

use crate::arch::{gic, timer, uart};
use boards::Board;
use loader::dt::DtInfo;

/// After a received byte, the console is polled without sleeping for this long.
const RX_BURST_US: u64 = 20_000;

pub struct Console {
    base: u64,
    /// When the console last delivered a byte (µs): input arriving in a burst (a pasted
    /// script, a test typing) is read without sleeping between bytes.
    last_rx_us: u64,
}

impl Console {
    /// Talks on the board's default UART (before the DT is read).
    pub fn early(board: &Board) {
        uart::set_base(board.default_uart.unwrap_or(0) as usize);
    }

    /// The console to use: /chosen/stdout-path when it is a PL011, else `board`'s default UART,
    /// else `fallback`'s. Nothing is switched yet (see [`Console::switch`]).
    pub fn choose(board: &Board, fallback: &Board, dt: Option<&DtInfo>) -> Self {
        let mut base = board.default_uart.or(fallback.default_uart).unwrap_or(0);
        if let Some(c) = dt.and_then(|i| i.console.as_ref()) {
            if c.compatible.iter().any(|s| s == "arm,pl011") {
                if let Some(r) = c.reg {
                    base = r.base;
                }
            }
        }
        Self {
            base,
            last_rx_us: 0,
        }
    }

    /// Its registers, to map as a device (`None`: no console).
    pub fn mmio(&self) -> Option<(u64, u64)> {
        (self.base != 0).then_some((self.base, 0x1000))
    }

    /// Output goes to this console from now on (the MMU maps it).
    pub fn switch(&self) {
        uart::set_base(self.base as usize);
    }

    pub const fn base(&self) -> u64 {
        self.base
    }

    /// The console's interrupt when the DT gives one for this UART: `(base, INTID)`, so that
    /// the boot CPU's idle sleep wakes on input.
    pub fn irq(&self, dt: Option<&DtInfo>) -> Option<(usize, u32)> {
        dt.and_then(|d| d.console.as_ref())
            .filter(|c| c.reg.map(|r| r.base) == Some(self.base))
            .and_then(|c| c.irq)
            .map(|i| (self.base as usize, i))
    }

    pub fn write_str(&self, s: &str) {
        uart::write_str(s);
    }

    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            uart::putb(b);
        }
    }

    pub fn read_byte(&mut self) -> Option<u8> {
        let b = uart::getb();
        if b.is_some() {
            self.last_rx_us = timer::now_us();
        }
        b
    }

    /// Waiting for input (the prompt, `sleep`, the autoboot countdown): sleep until the next
    /// wake period (WFIT or the GIC timer, as the pen does) instead of spinning — except right
    /// after input arrived, so a burst is read at full speed.
    pub fn idle(&self) {
        if timer::now_us().saturating_sub(self.last_rx_us) < RX_BURST_US {
            core::hint::spin_loop();
        } else {
            gic::idle_once();
        }
    }
}
