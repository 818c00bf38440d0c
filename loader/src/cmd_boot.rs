//! `booti`, as parse → gather facts → plan → execute. The
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
use loader::plan::booti::{
    self, BootiArgs, CpuFacts, CpuMethod, DtExtras, InitrdArg, Kernel, Request,
};
use loader::plan::fdt as fdtplan;
use loader::plan::load as loadplan;
use loader::plan::net as netplan;
use loader::uimage;
use shell::{CmdError, CmdResult};

fn msg(s: impl Into<String>) -> CmdError {
    CmdError::Msg(s.into())
}

/// booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]
pub fn cmd_booti(sh: &mut Sh, args: &[String]) -> CmdResult {
    let a = BootiArgs::parse(args)?;
    boot(sh, a, None)
}

/// bootm <uImage_addr> [<initrd_addr>[:<size>] | -] [<fdt_addr>]: a legacy kernel image
/// (header and data CRC checked; arm64; uncompressed or gzip) booted as booti boots its data.
pub fn cmd_bootm(sh: &mut Sh, args: &[String]) -> CmdResult {
    let mut a = BootiArgs::parse(args)?;
    let mem = &sh.platform.mem;
    let head = mem
        .read_vec(a.kernel, uimage::HEADER_LEN)
        .map_err(|e| msg(format!("bootm: {e}")))?;
    if !uimage::is_legacy(&head) {
        return Err(msg(format!(
            "bootm: no legacy image (mkimage) header at {:#x}; boot an arm64 Image with booti",
            a.kernel
        )));
    }
    let bad = |e: uimage::UImageError| msg(format!("bootm: {e}"));
    let h = uimage::Header::parse(&head).map_err(bad)?;
    h.expect_kernel().map_err(bad)?;
    let (data, len) = h.data_range(a.kernel);
    let bytes = mem
        .view(data, len)
        .map_err(|e| msg(format!("bootm: {e}")))?;
    h.check_data(bytes).map_err(bad)?;
    sh.print(&format!(
        "## Booting kernel from Legacy Image at {:08x} ...
   Image Name:   {}
   Data Size:    {len} Bytes
   Verifying Checksum ... OK
",
        a.kernel, h.name
    ));
    a.kernel = data;
    boot(sh, a, Some(len))
}

/// booti's work once the kernel's address (and, for an image inside a container, its
/// length) is known.
fn boot(sh: &mut Sh, a: BootiArgs, kernel_len: Option<u64>) -> CmdResult {
    let kernel = kernel_facts(sh, a.kernel, kernel_len)?;
    let Some(fdt) = a.fdt.or(sh.platform.dt.blob_addr()) else {
        return Err(msg(
            "booti: no device tree: the loader got none; pass <fdt_addr>",
        ));
    };
    let dtb = read_dtb(sh, "booti", fdt)?;
    let initrd = match a.initrd {
        Some(arg) => Some(initrd_facts(sh, arg)?),
        None => None,
    };
    let dt_extras = dt_extras(sh, fdt);
    let env = &sh.env;
    // fdt_high=0xffffffff (LAVA): the DT stays where it was given.
    let fdt_to = netplan::fdt_target(env.get("fdt_high"), a.fdt, env.get("fdt_addr_r"));
    let prepared = booti::prepare(&Request {
        kernel,
        initrd,
        dtb: &dtb,
        bootargs: env.get("bootargs"),
        cpu_method: env.get("cpu_method"),
        fdt_addr_r: fdt_to.as_deref(),
        kernel_addr_r: env.get("kernel_addr_r"),
        dt_extras,
    })?;
    if let Some((addr, len)) = initrd {
        sh.platform
            .mem
            .check(addr, len, false)
            .map_err(|e| msg(format!("booti: initrd: {e}")))?;
    }
    if prepared.cpu_method() == CpuMethod::SpinTable {
        cpus_to_pen(sh)?;
    }
    let psci = sh.platform.fw.usable_psci();
    for line in sh.platform.cpus.refresh(psci) {
        sh.print(&format!("CPUs: {line}\n"));
    }
    let mut cpus = cpu_facts(sh);
    if sh.platform.dt.blob_addr() != Some(fdt) {
        // A distribution's DT: the pen's slots follow their CPUs by MPIDR.
        if let (Some(pen), Some(own), Ok(target)) =
            (&cpus.pen, sh.platform.dt.info(), loader::dt::parse(&dtb))
        {
            cpus.pen = Some(booti::retarget_pen(pen, own, &target));
        }
    }
    let plan = prepared.plan(&cpus, sh.platform.mem.map())?;
    exec::boot(sh, plan)
}

/// The initrd argument resolved: a legacy ramdisk's data (header and CRCs checked), or the
/// raw `addr:size`.
fn initrd_facts(sh: &Sh, arg: InitrdArg) -> Result<(u64, u64), CmdError> {
    let mem = &sh.platform.mem;
    let head = mem
        .read_vec(arg.addr, uimage::HEADER_LEN)
        .map_err(|e| msg(format!("booti: initrd: {e}")))?;
    Ok(booti::resolve_initrd(arg, &head, |a, n| mem.view(a, n))?)
}

/// The DT fixups beyond /chosen: the RAM banks for a DT other than the loader's own, an
/// rng-seed when a hardware RNG has one, and whether `kaslrseed` seeded this DT.
fn dt_extras(sh: &mut Sh, fdt: u64) -> DtExtras {
    let own = sh.platform.dt.blob_addr() == Some(fdt);
    let memory = (!own).then(|| {
        sh.platform
            .mem
            .map()
            .banks()
            .iter()
            .map(|r| (r.base, r.size))
            .collect()
    });
    let mut seed = alloc::vec![0u8; 64];
    let rng_seed = sh.platform.entropy(&mut seed).ok().map(|_| seed);
    DtExtras {
        memory,
        rng_seed,
        keep_kaslr_seed: sh.platform.dt.seeded(fdt),
    }
}

/// The kernel at `addr`: its header, and for an Image.gz the whole member (as long as the
/// last load at `addr` was, or `${filesize}` when `${fileaddr}` is `addr`).
fn kernel_facts(sh: &Sh, addr: u64, len: Option<u64>) -> Result<Kernel, CmdError> {
    let mem = &sh.platform.mem;
    let head = mem
        .read_vec(addr, 64)
        .map_err(|e| msg(format!("booti: {e}")))?;
    let loaded = len
        .or_else(|| mem.loaded_at(addr))
        .or_else(|| loadplan::loaded_len(sh.env.get("fileaddr"), sh.env.get("filesize"), addr));
    Ok(Kernel::inspect(addr, &head, loaded, |len| {
        mem.view(addr, len)
    })?)
}

/// The DT blob at `addr` (its length from its header).
pub fn read_dtb(sh: &Sh, who: &str, addr: u64) -> Result<Vec<u8>, CmdError> {
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
