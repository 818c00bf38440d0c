//! `fdt` and `kaslrseed`: parse → read the blob → plan (`loader::plan::fdt`,
//! pure) → write back only where `place_edit` accepts it. A refused or failed
//! edit (a bad overlay, a tree that would not fit) leaves the blob as it was.

use crate::cmd_boot::read_dtb;
use crate::exec;
use crate::platform::Sh;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use loader::dtfix;
use loader::plan::fdt::{self as fdtplan, Edit, FdtCmd};
use shell::{CmdError, CmdResult};

fn msg(s: impl Into<String>) -> CmdError {
    CmdError::Msg(s.into())
}

/// The working fdt's address, or U-Boot's complaint.
fn working(sh: &Sh) -> Result<u64, CmdError> {
    sh.platform.dt.working().ok_or_else(|| {
        msg("No FDT memory address configured. Please configure the FDT address via \"fdt addr <address>\" command.")
    })
}

/// Writes `out` (the edited tree that was `old_len` bytes) back at `addr`, if it may go there.
pub fn store_at(sh: &mut Sh, addr: u64, old_len: u64, out: &[u8]) -> CmdResult {
    let mem = &sh.platform.mem;
    fdtplan::place_edit(mem.map(), addr, old_len, out.len() as u64, |a, n| {
        mem.check(a, n, true).is_ok()
    })
    .map_err(msg)?;
    exec::write_dt(addr, out);
    Ok(())
}

/// fdt addr | move | print | get | set | rm | resize | header | chosen | apply
pub fn cmd_fdt(sh: &mut Sh, args: &[String]) -> CmdResult {
    let cmd = FdtCmd::parse(args)?;
    match cmd {
        FdtCmd::ShowAddr => {
            let a = working(sh)?;
            sh.print(&format!("Working fdt: {a:08x}\n"));
            Ok(())
        }
        FdtCmd::SetAddr(a) => {
            let blob = read_dtb(sh, "fdt", a)?;
            fdtplan::validate(&blob).map_err(msg)?;
            sh.platform.dt.set_working(a);
            let _ = sh.env.set("fdtaddr", &format!("{a:x}"));
            sh.print(&format!("Working FDT set to {a:x}\n"));
            Ok(())
        }
        FdtCmd::Move { src, dst, len } => fdt_move(sh, src, dst, len),
        FdtCmd::Apply(ovl) => {
            let addr = working(sh)?;
            let blob = read_dtb(sh, "fdt", addr)?;
            let overlay = read_dtb(sh, "fdt apply", ovl)?;
            let out = fdtplan::apply(&blob, addr, &overlay).map_err(msg)?;
            store_at(sh, addr, blob.len() as u64, &out)
        }
        cmd => {
            let addr = working(sh)?;
            let blob = read_dtb(sh, "fdt", addr)?;
            let bootargs = sh.env.get("bootargs").map(String::from);
            match fdtplan::edit(&blob, addr, &cmd, bootargs.as_deref()).map_err(msg)? {
                Edit::Print(text) => sh.print(&text),
                Edit::Store(out) => store_at(sh, addr, blob.len() as u64, &out)?,
                Edit::SetVar(var, Some(v)) => {
                    sh.env.set(&var, &v).map_err(|e| msg(format!("fdt: {e}")))?;
                }
                Edit::SetVar(var, None) => {
                    sh.env.remove(&var);
                }
                Edit::Silent => return Err(CmdError::Failed),
            }
            Ok(())
        }
    }
}

/// `fdt move <fdt> <newaddr> [<length>]`: the blob copied to free RAM and made the working fdt.
fn fdt_move(sh: &mut Sh, src: u64, dst: u64, len: Option<u64>) -> CmdResult {
    let blob = read_dtb(sh, "fdt", src)?;
    fdtplan::validate(&blob).map_err(msg)?;
    fdtplan::check_addr(dst).map_err(msg)?;
    let mut out: Vec<u8> = blob.clone();
    if let Some(n) = len {
        if n < blob.len() as u64 {
            return Err(msg(format!(
                "New length 0x{n:X} < existing length 0x{:X}, aborting.",
                blob.len()
            )));
        }
        fdtplan::grow(&mut out, n - blob.len() as u64);
    }
    sh.platform
        .mem
        .check(dst, out.len() as u64, true)
        .map_err(|e| msg(format!("fdt move: {e}")))?;
    exec::write_dt(dst, &out);
    sh.platform.dt.set_working(dst);
    let _ = sh.env.set("fdtaddr", &format!("{dst:x}"));
    Ok(())
}

/// `kaslrseed`: 8 bytes from a hardware RNG written as /chosen/kaslr-seed of the working fdt
/// (booti then keeps it).
pub fn cmd_kaslrseed(sh: &mut Sh, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(CmdError::Usage);
    }
    let addr = working(sh)?;
    seed_dt(sh, addr)
}

/// Writes a kaslr-seed into the blob at `addr` (`kaslrseed`, extlinux `kaslrseed`).
pub fn seed_dt(sh: &mut Sh, addr: u64) -> CmdResult {
    let blob = read_dtb(sh, "kaslrseed", addr)?;
    let mut seed = [0u8; 8];
    sh.platform
        .entropy(&mut seed)
        .map_err(|e| msg(format!("kaslrseed: {e}")))?;
    let (mut tree, _) = dtfix::load(&blob).map_err(|e| msg(format!("kaslrseed: {e}")))?;
    dtfix::set_kaslr_seed(&mut tree, u64::from_le_bytes(seed));
    let out = fdtplan::store_sized(&tree, &blob, addr, None).map_err(msg)?;
    store_at(sh, addr, blob.len() as u64, &out)?;
    sh.platform.dt.set_seeded(addr);
    Ok(())
}
