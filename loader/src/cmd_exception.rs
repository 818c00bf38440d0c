//! U-Boot's `exception` command (CONFIG_CMD_EXCEPTION): raise an exception or
//! a panic on purpose, to check the reports and the halt on a board. Built
//! only with the `cmd-exception` feature (`loader-exception.bin`, used by the
//! tests), so that nothing typed at a release loader can stop it.
use crate::platform::Sh;
use alloc::format;
use alloc::string::String;
use core::arch::asm;
use shell::{CmdError, CmdResult};

/// Not mapped by the loader's page tables (above every RAM and device range
/// of the boards it supports), so a load from it is a translation fault.
pub const EXCEPTION_ABORT_ADDR: u64 = 0xdead_0000_0000;

pub fn cmd_exception(sh: &mut Sh, args: &[String]) -> CmdResult {
    let [_, what] = args else {
        return Err(CmdError::Usage);
    };
    sh.print(&format!("exception: raising '{what}'\n"));
    crate::arch::uart::flush();
    match what.as_str() {
        // SAFETY (all three): the instruction traps at once into the
        // exception vectors, which report and halt; nothing returns here.
        "undefined" => unsafe { asm!("udf #0", options(nomem, nostack)) },
        "breakpoint" => unsafe { asm!("brk #0x1234", options(nomem, nostack)) },
        "abort" => unsafe {
            asm!("ldr {v}, [{a}]", a = in(reg) EXCEPTION_ABORT_ADDR, v = out(reg) _, options(nostack))
        },
        "panic" => panic!("exception command: deliberate panic"),
        _ => return Err(CmdError::Usage),
    }
    Err(CmdError::Msg(format!("exception: '{what}' did not trap")))
}
