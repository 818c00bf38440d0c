//! `booti` and `fdt`, each as parse → gather facts → plan → execute. The
//! plans (`loader::plan::{booti, fdt}`) are pure and host-tested: they claim
//! nothing and write nothing, so a refusal leaves memory and claims as they
//! were. booti's facts are the kernel's header (and Image.gz member), the DT
//! to hand on, env values and the CPUs, which spin-table needs in the pen
//! before the plan is made; `exec` performs the plan and leaves through the
//! one handoff.

use crate::arch::cpu;
use crate::cmd_cpus;
use crate::exec;
use crate::platform::Sh;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use loader::plan::booti::{self, BootiArgs, CpuFacts, CpuMethod, Kernel, Request};
use loader::plan::fdt::{self as fdtplan, Edit, FdtCmd};
use loader::plan::load as loadplan;
use loader::plan::net as netplan;
use shell::{CmdError, CmdResult};

fn msg(s: impl Into<String>) -> CmdError {
    CmdError::Msg(s.into())
}

/// booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]
pub fn cmd_booti(sh: &mut Sh, args: &[String]) -> CmdResult {
    let a = BootiArgs::parse(args)?;
    let kernel = kernel_facts(sh, a.kernel)?;
    let Some(fdt) = a.fdt.or(sh.platform.dt.blob_addr()) else {
        return Err(msg(
            "booti: no device tree: the loader got none; pass <fdt_addr>",
        ));
    };
    let dtb = read_dtb(sh, "booti", fdt)?;
    let env = &sh.env;
    // fdt_high=0xffffffff (LAVA): the DT stays where it was given.
    let fdt_to = netplan::fdt_target(env.get("fdt_high"), a.fdt, env.get("fdt_addr_r"));
    let prepared = booti::prepare(&Request {
        kernel,
        initrd: a.initrd,
        dtb: &dtb,
        bootargs: env.get("bootargs"),
        cpu_method: env.get("cpu_method"),
        fdt_addr_r: fdt_to.as_deref(),
        kernel_addr_r: env.get("kernel_addr_r"),
    })?;
    if let Some((addr, len)) = a.initrd {
        sh.platform
            .mem
            .check(addr, len, false)
            .map_err(|e| msg(format!("booti: initrd: {e}")))?;
    }
    if prepared.cpu_method() == CpuMethod::SpinTable {
        cpus_to_pen(sh)?;
    }
    let plan = prepared.plan(&cpu_facts(sh), sh.platform.mem.map())?;
    exec::boot(sh, plan)
}

/// The kernel at `addr`: its header, and for an Image.gz the whole member (`${filesize}` long
/// when the last load put it there).
fn kernel_facts(sh: &Sh, addr: u64) -> Result<Kernel, CmdError> {
    let mem = &sh.platform.mem;
    let head = mem
        .read_vec(addr, 64)
        .map_err(|e| msg(format!("booti: {e}")))?;
    let loaded = loadplan::loaded_len(sh.env.get("fileaddr"), sh.env.get("filesize"), addr);
    Ok(Kernel::inspect(addr, &head, loaded, |len| {
        mem.view(addr, len)
    })?)
}

/// The DT blob at `addr` (its length from its header).
fn read_dtb(sh: &Sh, who: &str, addr: u64) -> Result<Vec<u8>, CmdError> {
    fdtplan::check_addr(addr).map_err(msg)?;
    let mem = &sh.platform.mem;
    let head = mem
        .read_vec(addr, fdtplan::HEADER_LEN)
        .map_err(|e| msg(format!("{who}: {e}")))?;
    let len = fdtplan::blob_len(addr, &head).map_err(msg)?;
    mem.read_vec(addr, len)
        .map_err(|e| msg(format!("{who}: {e}")))
}

/// cpu_method=spin-table: the CPUs wait in the pen — gathered now if that was never tried
/// (`pen_gather=boot`), recalled if they rest in firmware.
fn cpus_to_pen(sh: &mut Sh) -> Result<(), CmdError> {
    if !sh.platform.cpus.attempted() {
        cmd_cpus::gather_now(sh);
    }
    cmd_cpus::recall_now(sh).map_err(|e| msg(format!("booti: CPUs: {e}")))
}

/// The CPUs as booti's planner needs them.
fn cpu_facts(sh: &Sh) -> CpuFacts {
    CpuFacts {
        pen: sh.platform.cpus.pen_facts(),
        psci_usable: sh.platform.fw.usable_psci().is_some(),
        boot_cpuid: (cpu::mpidr() & 0xffff_ffff) as u32,
    }
}

/// fdt addr [addr] | print [path] | set <path> <prop> [value] | rm <path> [prop] | resize [extra]
pub fn cmd_fdt(sh: &mut Sh, args: &[String]) -> CmdResult {
    let cmd = FdtCmd::parse(args)?;
    match cmd {
        FdtCmd::ShowAddr => {
            match sh.platform.dt.working() {
                Some(a) => sh.print(&format!("The working fdt is at {a:#x}\n")),
                None => sh.print("No working fdt\n"),
            }
            Ok(())
        }
        FdtCmd::SetAddr(a) => {
            let blob = read_dtb(sh, "fdt", a)?;
            fdtplan::validate(&blob).map_err(msg)?;
            sh.platform.dt.set_working(a);
            Ok(())
        }
        cmd => {
            let addr = sh
                .platform
                .dt
                .working()
                .ok_or_else(|| msg("fdt: no working fdt (use fdt addr <addr>)"))?;
            let blob = read_dtb(sh, "fdt", addr)?;
            match fdtplan::edit(&blob, &cmd).map_err(msg)? {
                Edit::Print(text) => sh.print(&text),
                Edit::Store(out) => {
                    let mem = &sh.platform.mem;
                    fdtplan::place_edit(
                        mem.map(),
                        addr,
                        blob.len() as u64,
                        out.len() as u64,
                        |a, n| mem.check(a, n, true).is_ok(),
                    )
                    .map_err(msg)?;
                    exec::write_dt(addr, &out);
                }
            }
            Ok(())
        }
    }
}
