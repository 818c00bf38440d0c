//! Start-up of the boot CPU, in one place and in order. `entry.S` leaves the
//! CPU in a known state and calls [`rust_entry`], which
//!
//! 1. brings the machine up: console on the board default, heap, the DT at
//!    x0 (probed, parsed), the board, the console from /chosen, the identity
//!    map with MMU and caches on, the memory map with the loader's claims;
//!    says who it is and what went wrong;
//! 2. starts the shell: board env, the machine's env (load addresses), the
//!    loader's commands, the saved env (so the disks are scanned now), the
//!    DT's /config/environment, the sleep set-up, the CPU gather, the "ready
//!    in" line, autoboot, the prompt.
//!
//! Everything it decides comes from the host-tested library (`loader` crate)
//! and the board data (`boards`); the machine's state lives in the parts of
//! [`Machine`].

use crate::arch::{cpu, exceptions, heap, mmu, timer};
use crate::cmd_cpus;
use crate::cmd_storage;
use crate::commands;
use crate::console::Console;
use crate::devtree::Dt;
use crate::firmware::Firmware;
use crate::footprint::Footprint;
use crate::machine::Machine;
use crate::memory::{self, Memory};
use crate::net::Net;
use crate::platform::Sh;
use crate::println;
use crate::sleep::Sleep;
use crate::smp::Cpus;
use crate::stages::{self, Timing};
use crate::storage::Disks;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use boards::Board;
use loader::wake::DEFAULT_WAKE_PERIOD_US;
use shell::Shell;

#[no_mangle]
extern "C" fn rust_entry(x0: u64, entry_ticks: u64, el: u64, x1: u64, x2: u64, x3: u64) -> ! {
    if el == 3 {
        // From reset at EL3 (-bios): the resident PSCI part, which then enters the normal
        // loader in the non-secure world (docs/psci.md).
        crate::resident::main(entry_ticks)
    }
    let machine = bring_up(x0, entry_ticks, el, [x1, x2, x3]);
    run_shell(machine)
}

/// Step 1: from the entry registers to a machine with MMU, caches and a memory map.
fn bring_up(x0: u64, entry_ticks: u64, el: u64, x1_x3: [u64; 3]) -> Machine {
    stages::mark_at("entry", entry_ticks, 0);
    let board0: &'static Board = boards::DEFAULT_BOARD;
    Console::early(board0);
    let fp = Footprint::from_linker();
    fp.paint_stack();
    let (heap_lo, heap_hi) = fp.heap();
    // SAFETY: the heap range is inside our footprint and used by nothing else.
    unsafe { heap::init(heap_lo as usize, heap_hi as usize) };
    stages::mark("heap ready");

    // The untrusted DT, parsed into a typed description.
    let dt = Dt::from_x0(x0, (fp.base(), fp.base() + fp.size()));
    stages::mark("DT parsed");
    let board = match dt.info() {
        Some(_) => boards::select(&dt.compatible()),
        None => board0,
    };
    let console = Console::choose(board, board0, dt.info());

    // The identity map: RAM from the DT (or the board's fallback, or just our own
    // footprint); device regions from every DT `reg`.
    let ram = memory::ram_ranges(&dt, board, &fp);
    let map_errors = map_identity(&ram, &dt, &console);
    console.switch();
    stages::mark("MMU on");
    cpu::enable_event_stream();

    // The memory map and its claims.
    let (mem, warnings) = Memory::build(&ram, &fp, &dt, map_errors);
    stages::mark("memory map");

    banner(&fp, el, x1_x3, &dt, board, &warnings, map_errors);
    Machine {
        board,
        footprint: fp,
        console,
        fw: Firmware::new(dt.info()),
        dt,
        mem,
        disks: Disks::new(),
        rng: crate::rng::Rng::new(),
        net: Net::new(),
        cpus: Cpus::new(),
        sleep: Sleep::new(),
        timing: Timing::new(entry_ticks),
    }
}

/// Maps `ram` as Normal memory and every DT device (and the console) as Device memory, and
/// turns the MMU and caches on; returns how many regions could not be mapped.
fn map_identity(ram: &[(u64, u64)], dt: &Dt, console: &Console) -> usize {
    let mut devices: Vec<(u64, u64)> = dt
        .info()
        .into_iter()
        .flat_map(|i| i.mmio.iter())
        .filter(|m| m.region.size > 0)
        .map(|m| (m.region.base, m.region.size))
        .collect();
    devices.extend(console.mmio());
    mmu::enable(&mmu::Layout2 {
        normal: ram,
        device: &devices,
    })
}

/// Says who we are, and what went wrong, before anything else.
fn banner(
    fp: &Footprint,
    el: u64,
    [x1, x2, x3]: [u64; 3],
    dt: &Dt,
    board: &Board,
    warnings: &[String],
    map_errors: usize,
) {
    println!();
    println!(
        "parkboot {} (EL{el}) at {:#x}, {} KiB in place",
        env!("CARGO_PKG_VERSION"),
        fp.base(),
        fp.size() / 1024
    );
    if x1 != 0 || x2 != 0 || x3 != 0 {
        println!("warning: entered with x1-x3 = {x1:#x} {x2:#x} {x3:#x} (booting.rst wants 0)");
    }
    match (dt.error(), dt.blob(), dt.info()) {
        (Some(e), _, _) => println!(
            "error: no valid device tree at x0 ({e}); using board {} defaults",
            board.name
        ),
        (None, Some((a, t)), Some(i)) => {
            let mem: u64 = i.memory.iter().map(|r| r.size).sum();
            println!(
                "DT at {a:#x} ({t} bytes): {}, {} MiB RAM, {} CPU(s), board {}",
                i.model.as_deref().unwrap_or("?"),
                mem >> 20,
                i.cpus.len(),
                board.name
            );
            for w in i.warnings.iter().take(8) {
                println!("DT warning: {w}");
            }
        }
        _ => {}
    }
    for w in warnings {
        println!("warning: {w}");
    }
    if map_errors != 0 {
        println!("warning: {map_errors} region(s) could not be mapped");
    }
}

/// Step 2: the shell over the machine, its env and commands, the CPUs, autoboot, the prompt.
fn run_shell(machine: Machine) -> ! {
    let mut sh = Shell::new(machine);
    for (k, v) in sh.platform.board.default_env {
        let _ = sh.env.set(k, v);
    }
    for (k, v) in sh.platform.env() {
        let _ = sh.env.set(k, &v);
    }
    // What `env default` restores: the board's defaults and the computed
    // variables, before /parkboot.env and the DT's /config/environment.
    sh.default_env = sh.env.clone();
    commands::register(&mut sh);
    for line in cmd_storage::load_saved_env(&mut sh) {
        sh.print(&format!("{line}\n"));
    }
    if let Some(msg) = import_dt_env(&mut sh) {
        sh.print(&format!("{msg}\n"));
    }
    let period = wake_period(&mut sh);
    sh.platform.init_sleep(period);
    if sh.env.get("pen_gather") != Some("boot") {
        cmd_cpus::gather_now(&mut sh);
    } else if sh.platform.dt.cpus_spinning() {
        cmd_cpus::rest_now(&mut sh);
    }
    let us = sh.platform.timing.set_ready();
    let ndisks = sh.platform.disks.len();
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

/// `${pen_wake_us}`: how often waiting CPUs wake (a bad value is said and replaced by the
/// default).
fn wake_period(sh: &mut Sh) -> u64 {
    let Some(v) = sh.env.get("pen_wake_us") else {
        return DEFAULT_WAKE_PERIOD_US;
    };
    match v.trim().parse::<u64>() {
        Ok(us) => us,
        Err(_) => {
            let line = format!(
                "pen_wake_us '{v}' is not a number of microseconds: using {DEFAULT_WAKE_PERIOD_US}\n"
            );
            sh.print(&line);
            DEFAULT_WAKE_PERIOD_US
        }
    }
}

/// U-Boot's `CONFIG_ENV_IMPORT_FDT`: the properties of `/config/environment`
/// in the DT the loader was given become env variables, over the board
/// defaults and `/parkboot.env` (the previous stage — a kernel doing kexec, a
/// test — knows best what this boot should do). The node stays in the DT
/// handed on, so a chain of loaders shares it.
fn import_dt_env(sh: &mut Sh) -> Option<String> {
    let vars = sh.platform.dt.config_env().to_vec();
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
            sh.platform.console.idle();
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
    stages::mark("autoboot");
    let _ = sh.run_script(&bootcmd);
}
