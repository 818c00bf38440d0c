//! The firmware part: the exception level the loader runs at and the PSCI
//! firmware the DT names (reset, power-off, CPUs on and off).

use crate::arch::{cpu, psci, uart};
use alloc::format;
use alloc::string::String;
use loader::dt::{self, DtInfo};

pub struct Firmware {
    el: u8,
    psci: Option<psci::Conduit>,
}

impl Firmware {
    /// The current EL, and the DT's /psci conduit.
    pub fn new(dt: Option<&DtInfo>) -> Self {
        let psci = dt.and_then(|i| i.psci.as_ref()).map(|p| match p.conduit {
            dt::Conduit::Smc => psci::Conduit::Smc,
            dt::Conduit::Hvc => psci::Conduit::Hvc,
        });
        Self {
            el: cpu::current_el(),
            psci,
        }
    }

    pub const fn el(&self) -> u8 {
        self.el
    }

    /// The DT's PSCI conduit, if the loader can call it from its EL.
    pub fn usable_psci(&self) -> Option<psci::Conduit> {
        self.psci.filter(|c| psci::usable(*c))
    }

    fn conduit(&self) -> Result<psci::Conduit, String> {
        let c = self.psci.ok_or("the DT names no /psci firmware")?;
        if !psci::usable(c) {
            return Err("PSCI uses HVC, which cannot reach firmware from EL2".into());
        }
        Ok(c)
    }

    /// PSCI SYSTEM_RESET; returns (after saying why on the console) only if it failed.
    pub fn reset(&self) {
        match self.conduit() {
            Ok(c) => {
                uart::flush();
                if let Err(e) = psci::system_reset(c) {
                    uart::write_str(&format!("reset: PSCI SYSTEM_RESET failed: {e:?}\n"));
                }
            }
            Err(e) => uart::write_str(&format!("reset: {e}\n")),
        }
    }

    /// PSCI SYSTEM_OFF; returns (after saying why on the console) only if it failed.
    pub fn poweroff(&self) {
        match self.conduit() {
            Ok(c) => {
                uart::flush();
                if let Err(e) = psci::system_off(c) {
                    uart::write_str(&format!("poweroff: PSCI SYSTEM_OFF failed: {e:?}\n"));
                }
            }
            Err(e) => uart::write_str(&format!("poweroff: {e}\n")),
        }
    }
}

/// The `version` line.
pub fn version() -> String {
    format!(
        "parkboot {} (aarch64, {} build)",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    )
}
