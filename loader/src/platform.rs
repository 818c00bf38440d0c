//! The shell's view of the machine: console, clock, checked memory access,
//! PSCI reset/poweroff, and the loader's own commands.

use crate::arch::{exceptions, heap, mmu, psci, timer, uart};
use crate::boot::State;
use crate::cmd_storage as cs;
use alloc::format;
use alloc::string::{String, ToString};
use loader::memmap::Owner;
use shell::{CmdError, CmdResult, Command, Platform, Shell};

pub struct Machine<'a> {
    pub st: &'a mut State,
    /// When the console last delivered a byte (µs): input arriving in a burst (a pasted
    /// script, a test typing) is read without sleeping between bytes.
    pub last_rx_us: u64,
}

/// After a received byte, the console is polled without sleeping for this long.
const RX_BURST_US: u64 = 20_000;

impl Platform for Machine<'_> {
    fn write_str(&mut self, s: &str) {
        uart::write_str(s);
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            uart::putb(b);
        }
    }

    fn read_byte(&mut self) -> Option<u8> {
        let b = uart::getb();
        if b.is_some() {
            self.last_rx_us = timer::now_us();
        }
        b
    }

    /// Waiting for input (the prompt, `sleep`, the autoboot countdown): sleep until the next
    /// wake period (WFIT or the GIC timer, as the pen does) instead of spinning — except right
    /// after input arrived, so a burst is read at full speed.
    fn idle(&mut self) -> bool {
        if timer::now_us().saturating_sub(self.last_rx_us) < RX_BURST_US {
            core::hint::spin_loop();
        } else {
            crate::arch::gic::idle_once();
        }
        true
    }

    fn now_us(&self) -> u64 {
        timer::now_us()
    }

    fn mem_check(&self, addr: u64, len: u64, write: bool) -> Result<(), String> {
        let Some(end) = addr.checked_add(len) else {
            return Err(format!(
                "range {addr:#x} + {len:#x} overflows the address space"
            ));
        };
        if len == 0 {
            return Ok(());
        }
        let Some(is_ram) = mmu::mapped_kind(addr, len) else {
            return Err(format!(
                "{addr:#x}..{end:#x} is not RAM or a device named in the DT"
            ));
        };
        if write && is_ram {
            // Claimed ranges (the loader itself, the DT, reservations, the pen)
            // are never written by a command.
            self.st
                .map
                .check(addr, len, &Owner::Other("write".to_string()))
                .map_err(|e| format!("refused: {e}"))?;
        }
        Ok(())
    }

    fn mem_read(&self, addr: u64, buf: &mut [u8]) {
        let ram = mmu::mapped_kind(addr, buf.len() as u64) == Some(true);
        // SAFETY: mem_check accepted the range: it is mapped RAM or device memory.
        unsafe { copy_in(addr as usize, buf, ram) }
    }

    fn mem_write(&mut self, addr: u64, data: &[u8]) {
        let ram = mmu::mapped_kind(addr, data.len() as u64) == Some(true);
        // SAFETY: mem_check accepted the range and it overlaps no claim.
        unsafe { copy_out(addr as usize, data, ram) }
    }

    fn reset(&mut self) {
        match self.psci_conduit() {
            Ok(c) => {
                uart::flush();
                if let Err(e) = psci::system_reset(c) {
                    uart::write_str(&format!("reset: PSCI SYSTEM_RESET failed: {e:?}\n"));
                }
            }
            Err(e) => uart::write_str(&format!("reset: {e}\n")),
        }
    }

    fn poweroff(&mut self) {
        match self.psci_conduit() {
            Ok(c) => {
                uart::flush();
                if let Err(e) = psci::system_off(c) {
                    uart::write_str(&format!("poweroff: PSCI SYSTEM_OFF failed: {e:?}\n"));
                }
            }
            Err(e) => uart::write_str(&format!("poweroff: {e}\n")),
        }
    }

    fn version(&self) -> String {
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
}

impl Machine<'_> {
    fn psci_conduit(&self) -> Result<psci::Conduit, String> {
        let c = self.st.psci.ok_or("the DT names no /psci firmware")?;
        if !psci::usable(c) {
            return Err("PSCI uses HVC, which cannot reach firmware from EL2".into());
        }
        Ok(c)
    }
}

/// Device registers are accessed with one access of the natural width when
/// the request is 1/2/4/8 aligned bytes (md.l on a register reads it once).
unsafe fn copy_in(addr: usize, buf: &mut [u8], ram: bool) {
    unsafe {
        if ram {
            core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len());
            return;
        }
        match buf.len() {
            8 if addr.is_multiple_of(8) => {
                buf.copy_from_slice(&(addr as *const u64).read_volatile().to_le_bytes())
            }
            4 if addr.is_multiple_of(4) => {
                buf.copy_from_slice(&(addr as *const u32).read_volatile().to_le_bytes())
            }
            2 if addr.is_multiple_of(2) => {
                buf.copy_from_slice(&(addr as *const u16).read_volatile().to_le_bytes())
            }
            _ => {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = ((addr + i) as *const u8).read_volatile();
                }
            }
        }
    }
}

unsafe fn copy_out(addr: usize, data: &[u8], ram: bool) {
    unsafe {
        if ram {
            core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len());
            return;
        }
        match data.len() {
            8 if addr.is_multiple_of(8) => (addr as *mut u64)
                .write_volatile(u64::from_le_bytes(data.try_into().unwrap_or([0; 8]))),
            4 if addr.is_multiple_of(4) => (addr as *mut u32)
                .write_volatile(u32::from_le_bytes(data.try_into().unwrap_or([0; 4]))),
            2 if addr.is_multiple_of(2) => (addr as *mut u16)
                .write_volatile(u16::from_le_bytes(data.try_into().unwrap_or([0; 2]))),
            _ => {
                for (i, b) in data.iter().enumerate() {
                    ((addr + i) as *mut u8).write_volatile(*b);
                }
            }
        }
    }
}

pub type Sh<'a> = Shell<Machine<'a>>;

fn cmd_bdinfo(sh: &mut Sh, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(CmdError::Usage);
    }
    let st = &*sh.platform.st;
    let mut o = String::new();
    use core::fmt::Write;
    let _ = writeln!(o, "board       = {}", st.board.name);
    let _ = writeln!(o, "loader      = {:#018x}", st.base);
    let _ = writeln!(
        o,
        "loader size = {:#018x} (in place; file {} bytes)",
        st.image_size,
        crate::boot::file_size()
    );
    let _ = writeln!(o, "current eL  = {}", st.el);
    match (st.dtb, &st.dt_error) {
        (Some((a, t)), _) => {
            let _ = writeln!(o, "fdt_blob    = {a:#018x}");
            let _ = writeln!(o, "fdt_size    = {t:#018x}");
        }
        (None, Some(e)) => {
            let _ = writeln!(o, "fdt_blob    = none ({e})");
        }
        _ => {}
    }
    for b in st.map.banks() {
        let _ = writeln!(o, "DRAM bank   = ");
        let _ = writeln!(o, "-> start    = {:#018x}", b.base);
        let _ = writeln!(o, "-> size     = {:#018x}", b.size);
    }
    let _ = writeln!(o, "console     = pl011 @ {:#x}", st.console_base);
    if let Some(dt) = &st.dt {
        if let Some(p) = &dt.psci {
            let _ = writeln!(o, "psci        = {:?} via {:?}", p.version, p.conduit);
        }
        let methods: alloc::collections::BTreeSet<String> = dt
            .cpus
            .iter()
            .map(|c| match &c.enable_method {
                Some(m) => format!("{m:?}"),
                None => "none".into(),
            })
            .collect();
        let _ = writeln!(
            o,
            "cpus        = {} (enable-method {:?})",
            dt.cpus.len(),
            methods
        );
        if let Some(g) = &dt.gic {
            let _ = writeln!(o, "gic         = {:?}", g.version);
        }
        let _ = writeln!(
            o,
            "virtio-mmio = {} slot(s), pci hosts = {}",
            dt.virtio_mmio.len(),
            dt.pci_hosts.len()
        );
    }
    if st.map_errors != 0 {
        let _ = writeln!(
            o,
            "map errors  = {} region(s) could not be mapped",
            st.map_errors
        );
    }
    let _ = writeln!(o, "timer freq  = {} Hz", timer::freq());
    let _ = writeln!(
        o,
        "idle        = {} (boot CPU; pen CPUs wake every {} us{})",
        crate::arch::gic::idle_method(),
        st.wake.period_us(timer::freq()),
        st.wake_note
            .as_ref()
            .map(|n| format!(", no timer interrupt: {n}"))
            .unwrap_or_default()
    );
    let hs = heap::stats();
    let _ = writeln!(
        o,
        "heap        = {} KiB, {} KiB in use, high water {} KiB",
        hs.total / 1024,
        hs.in_use / 1024,
        hs.high_water / 1024
    );
    let _ = writeln!(o, "memory map (claims):");
    for c in st.map.claims() {
        let _ = writeln!(o, "  {:#012x}..{:#012x}  {}", c.start, c.end, c.owner);
    }
    for (k, v) in crate::boot::load_env(st) {
        let _ = writeln!(o, "{k:<18}= {v}");
    }
    let _ = writeln!(
        o,
        "boot time   = {} us (entry -> prompt)",
        st.us_since_entry(st.ready_ticks)
    );
    sh.print(&o);
    Ok(())
}

fn cmd_bootstage(sh: &mut Sh, args: &[String]) -> CmdResult {
    match args {
        [_] | [_, _] if args.get(1).is_none_or(|a| a == "report") => {
            let r = crate::boot::stages().report(timer::freq());
            sh.print(&r);
            Ok(())
        }
        _ => Err(CmdError::Usage),
    }
}

fn cmd_cpus(sh: &mut Sh, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(CmdError::Usage);
    }
    if sh.platform.st.smp.is_none() && sh.platform.st.smp_error.is_none() {
        gather_now(sh);
    }
    let text = match (&sh.platform.st.smp, &sh.platform.st.smp_error) {
        (Some(s), _) => s.report(),
        (None, Some(e)) => format!("CPUs not gathered: {e}\n"),
        (None, None) => "CPUs not gathered\n".to_string(),
    };
    sh.print(&text);
    Ok(())
}

type CmdFn = for<'a, 'b> fn(&'b mut Sh<'a>, &'b [String]) -> CmdResult;

pub static LOADER_COMMANDS: &[(&str, &str, &str, CmdFn)] = &[
    (
        "bdinfo",
        "bdinfo",
        "print board info: loader, EL, DT, RAM, memory map, load addresses, boot time",
        cmd_bdinfo,
    ),
    (
        "bootstage",
        "bootstage [report]",
        "print the loader's stage timestamps (microseconds since entry)",
        cmd_bootstage,
    ),
    (
        "virtio",
        "virtio scan | virtio info | virtio read <addr> <blk#> <cnt>",
        "scan for, list, or read raw blocks from virtio block devices (device ${virtio_dev}, default 0)",
        cs::cmd_virtio,
    ),
    ("part", "part list virtio <dev>", "list a disk's partitions", cs::cmd_part),
    ("ls", "ls virtio <dev>[:<part>] [path]", "list files in a directory", cs::cmd_ls),
    (
        "load",
        "load virtio <dev>[:<part>] <addr> <path> [bytes [pos]]",
        "load a file into memory (sets filesize, fileaddr)",
        cs::cmd_load,
    ),
    (
        "fatload",
        "fatload virtio <dev>[:<part>] <addr> <path> [bytes [pos]]",
        "load a file from FAT into memory (alias of load)",
        cs::cmd_load,
    ),
    ("size", "size virtio <dev>[:<part>] <path>", "set filesize to a file's size", cs::cmd_size),
    (
        "fatwrite",
        "fatwrite virtio <dev>[:<part>] <addr> <path> <bytes>",
        "write memory to a file on FAT (create or replace)",
        cs::cmd_fatwrite,
    ),
    ("saveenv", "saveenv", "save the environment as text to /parkboot.env on virtio 0", cs::cmd_saveenv),
    ("source", "source [addr]", "run a script (plain text or mkimage legacy script image) from memory", cs::cmd_source),
    (
        "cpus",
        "cpus",
        "list the CPUs: MPIDR, state (boot/parked/off/missing/lost), pen slot, gather time",
        cmd_cpus,
    ),
    (
        "booti",
        "booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]",
        "boot an arm64 Linux Image or Image.gz (from a patched copy of the loader's DT by default)",
        crate::cmd_boot::cmd_booti,
    ),
    (
        "fdt",
        "fdt addr [addr] | fdt print [path] | fdt set <path> <prop> [value] | fdt rm <path> [prop] | fdt resize [extra]",
        "inspect and edit a device tree in memory",
        crate::cmd_boot::cmd_fdt,
    ),
    (
        "bootscript",
        "bootscript",
        "find /boot.cmd, /boot/boot.cmd, /boot.scr or /boot/boot.scr on the disks and run it",
        cs::cmd_bootscript,
    ),
];

pub fn run(st: &mut State) -> ! {
    let mut sh = Shell::new(Machine { st, last_rx_us: 0 });
    for (k, v) in sh.platform.st.board.default_env {
        let _ = sh.env.set(k, v);
    }
    for (k, v) in crate::boot::load_env(sh.platform.st) {
        let _ = sh.env.set(k, &v);
    }
    // What `env default` restores: the board's defaults and the computed
    // variables, before /parkboot.env and the DT's /config/environment.
    sh.default_env = sh.env.clone();
    for &(name, usage, help, run) in LOADER_COMMANDS {
        sh.register(Command {
            name,
            usage,
            help,
            run,
        });
    }
    #[cfg(feature = "cmd-exception")]
    sh.register(Command {
        name: "exception",
        usage: "exception undefined|breakpoint|abort|panic",
        help: "raise an exception or a panic on purpose (test builds only)",
        run: crate::cmd_exception::cmd_exception,
    });
    if let Some(msg) = cs::load_saved_env(&mut sh) {
        sh.print(&format!("{msg}\n"));
    }
    if let Some(msg) = import_dt_env(&mut sh) {
        sh.print(&format!("{msg}\n"));
    }
    init_sleep(&mut sh);
    if sh.env.get("pen_gather") != Some("boot") {
        gather_now(&mut sh);
    } else if held_by_spin_table(sh.platform.st) {
        rest_now(&mut sh);
    }
    sh.platform.st.ready_ticks = timer::ticks();
    crate::boot::mark_at("shell ready", sh.platform.st.ready_ticks, 0);
    let us = sh.platform.st.us_since_entry(sh.platform.st.ready_ticks);
    let ndisks = sh.platform.st.disks.len();
    sh.print(&format!(
        "{ndisks} disk(s); ready in {}.{:03} ms\n",
        us / 1000,
        us % 1000
    ));
    autoboot(&mut sh);
    sh.probe_terminal(100);
    sh.run_prompt_loop();
    exceptions::halt("console input ended")
}

/// Plans how waiting CPUs sleep (the pen's wake block, period `pen_wake_us`) and sets up the
/// boot CPU's own idle sleep and the GIC distributor the pen's timer wake-ups need.
fn init_sleep(sh: &mut Sh) {
    let period = match sh.env.get("pen_wake_us") {
        None => loader::wake::DEFAULT_WAKE_PERIOD_US,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(us) => us,
            Err(_) => {
                sh.print(&format!(
                    "pen_wake_us '{v}' is not a number of microseconds: using {}\n",
                    loader::wake::DEFAULT_WAKE_PERIOD_US
                ));
                loader::wake::DEFAULT_WAKE_PERIOD_US
            }
        },
    };
    let st = &mut *sh.platform.st;
    let (cfg, note) = match &st.dt {
        Some(dt) => loader::wake::WakeConfig::plan(dt, timer::freq(), period),
        None => (
            loader::wake::WakeConfig::wfe_only(),
            Some("no device tree".into()),
        ),
    };
    let uart = st
        .dt
        .as_ref()
        .and_then(|d| d.console.as_ref())
        .filter(|c| c.reg.map(|r| r.base) == Some(st.console_base))
        .and_then(|c| c.irq)
        .map(|i| (st.console_base as usize, i));
    crate::arch::gic::init(&cfg, st.el, crate::arch::cpu::mpidr(), uart);
    st.wake = cfg;
    st.wake_note = note;
}

/// U-Boot's `CONFIG_ENV_IMPORT_FDT`: the properties of `/config/environment`
/// in the DT the loader was given become env variables, over the board
/// defaults and `/parkboot.env` (the previous stage — a kernel doing kexec, a
/// test — knows best what this boot should do). The node stays in the DT
/// handed on, so a chain of loaders shares it.
fn import_dt_env(sh: &mut Sh) -> Option<String> {
    let vars = sh.platform.st.dt.as_ref()?.config_env.clone();
    if vars.is_empty() {
        return None;
    }
    let mut n = 0;
    for (k, v) in &vars {
        match sh.env.set(k, v) {
            Ok(()) => n += 1,
            Err(e) => sh.print(&format!("env: {} {k}: {e}\n", loader::dt::ENV_NODE)),
        }
    }
    Some(format!(
        "env: {n} variable(s) from the DT's {}",
        loader::dt::ENV_NODE
    ))
}

/// U-Boot's autoboot: `bootdelay` seconds of countdown that any key stops
/// (a key already waiting stops it even at 0); -1 disables autoboot.
fn autoboot(sh: &mut Sh) {
    let delay = sh.env.get("bootdelay").unwrap_or("2").trim().to_string();
    let Ok(delay) = delay.parse::<i64>() else {
        sh.print(&format!(
            "bootdelay '{delay}' is not a number: autoboot disabled\n"
        ));
        return;
    };
    if delay < 0 {
        return;
    }
    let Some(bootcmd) = sh.env.get("bootcmd").map(|s| s.to_string()) else {
        return;
    };
    let mut left = delay;
    sh.print(&format!("Hit any key to stop autoboot: {left:2} "));
    let mut stopped = sh.poll_key().is_some();
    while !stopped && left > 0 {
        let end = timer::now_us() + 1_000_000;
        while timer::now_us() < end {
            if sh.poll_key().is_some() {
                stopped = true;
                break;
            }
            sh.platform.idle();
        }
        if !stopped {
            left -= 1;
            sh.print(&format!("\x08\x08\x08{left:2} "));
        }
    }
    sh.print("\n");
    if stopped {
        return;
    }
    crate::boot::mark("autoboot");
    let _ = sh.run_script(&bootcmd);
}

/// Whether the DT says secondaries wait on a spin-table (a predecessor's pen
/// after a kexec, or foreign spin-table firmware): they are spinning now.
fn held_by_spin_table(st: &crate::boot::State) -> bool {
    st.dt.as_ref().is_some_and(|d| {
        d.cpus.iter().any(|c| {
            c.enable_method == Some(loader::dt::EnableMethod::SpinTable)
                && matches!(c.release_addr, loader::dt::Prop64::Value(_))
        })
    })
}

/// `pen_gather=boot` after a predecessor left CPUs spinning: take them over
/// as at start, then let them wait in firmware (PSCI CPU_OFF) until booti or
/// `cpus` recalls them. Without usable PSCI they stay in the pen.
fn rest_now(sh: &mut Sh) {
    gather_now(sh);
    let Some(conduit) = sh.platform.st.usable_psci() else {
        return;
    };
    let line = sh
        .platform
        .st
        .smp
        .as_mut()
        .map(|smp| match smp.rest_in_firmware(conduit) {
            Ok(()) => smp.summary(),
            Err(e) => format!("CPUs: cannot rest in firmware: {e}"),
        });
    if let Some(line) = line {
        sh.print(&format!("{line}\n"));
    }
}

/// Recalls CPUs resting in firmware into the pen (at `pen_addr` if set, else
/// where it is); a no-op when none rest.
pub fn recall_now(sh: &mut Sh) -> Result<(), String> {
    let st = &mut *sh.platform.st;
    let Some(mut smp) = st.smp.take() else {
        return Ok(());
    };
    if !smp.resting {
        st.smp = Some(smp);
        return Ok(());
    }
    let target = sh
        .env
        .get("pen_addr")
        .and_then(shell::parse_hex)
        .unwrap_or(smp.header.phys_base);
    let r = match st.usable_psci() {
        Some(cd) => smp.recall(st, cd, target),
        None => Err("no usable PSCI".into()),
    };
    let summary = smp.summary();
    st.smp = Some(smp);
    r?;
    sh.print(&format!("{summary}\n"));
    Ok(())
}

/// Gathers the CPUs into the pen now (at start by default; with
/// `pen_gather=boot` only when booti or `cpus` needs them — under QEMU TCG,
/// WFE is a busy yield, so parked vCPUs slow the boot CPU down).
pub fn gather_now(sh: &mut Sh) {
    let pen_addr = sh.env.get("pen_addr").and_then(shell::parse_hex);
    match crate::smp::gather(sh.platform.st, pen_addr) {
        Ok(s) => {
            // Ours now, with the CPUs in: they may sleep the hold period.
            s.hold(true, &sh.platform.st.wake);
            sh.print(&format!("{}\n", s.summary()));
            for c in s.cpus.iter().filter(|c| {
                matches!(
                    c.state,
                    crate::smp::CpuState::Missing(_) | crate::smp::CpuState::Lost(_)
                )
            }) {
                sh.print(&format!("CPU {:#x} ({}): {}\n", c.mpidr, c.path, c.state));
            }
            sh.platform.st.smp = Some(s);
        }
        Err(e) => {
            sh.print(&format!("CPUs: not gathered: {e}\n"));
            sh.platform.st.smp_error = Some(e);
        }
    }
}
