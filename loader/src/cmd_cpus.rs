//! `cpus`, and bringing the CPUs into the pen from the shell (at start, at
//! `cpus`, at booti): gather, rest in firmware, recall — each says what it
//! did on the console.

use crate::platform::Sh;
use alloc::format;
use alloc::string::String;
use shell::{parse_hex, CmdError, CmdResult};

pub fn cmd_cpus(sh: &mut Sh, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(CmdError::Usage);
    }
    if !sh.platform.cpus.attempted() {
        gather_now(sh);
    }
    let text = sh.platform.cpus.report();
    sh.print(&text);
    Ok(())
}

/// `${pen_addr}`: where the pen goes (unset: the loader chooses).
fn pen_addr(sh: &Sh) -> Option<u64> {
    sh.env.get("pen_addr").and_then(parse_hex)
}

/// Gathers the CPUs into the pen now (at start by default; with
/// `pen_gather=boot` only when booti or `cpus` needs them — under QEMU TCG,
/// WFE is a busy yield, so parked vCPUs slow the boot CPU down).
pub fn gather_now(sh: &mut Sh) {
    let pen_addr = pen_addr(sh);
    let out = match sh.platform.gather_cpus(pen_addr) {
        Ok(s) => s.gather_report(),
        Err(e) => format!("CPUs: not gathered: {e}\n"),
    };
    sh.print(&out);
}

/// `pen_gather=boot` after a predecessor left CPUs spinning: take them over
/// as at start, then let them wait in firmware (PSCI CPU_OFF) until booti or
/// `cpus` recalls them. Without usable PSCI they stay in the pen.
pub fn rest_now(sh: &mut Sh) {
    gather_now(sh);
    if let Some(line) = sh.platform.rest_cpus() {
        sh.print(&format!("{line}\n"));
    }
}

/// Recalls CPUs resting in firmware into the pen (at `pen_addr` if set, else
/// where it is); a no-op when none rest.
pub fn recall_now(sh: &mut Sh) -> Result<(), String> {
    let pen_addr = pen_addr(sh);
    if let Some(summary) = sh.platform.recall_cpus(pen_addr)? {
        sh.print(&format!("{summary}\n"));
    }
    Ok(())
}
