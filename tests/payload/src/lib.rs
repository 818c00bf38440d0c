//! The test payload's host-testable logic: what it checks in the DT and the
//! pen it was handed, the per-entry checks of a released secondary, the
//! bootargs it obeys, where it puts the next loader when chaining, and the
//! exact lines it prints. `src/main.rs` is the bare-metal glue.
//!
//! Every line the payload prints starts with `PAYLOAD: `; the QEMU tests
//! (tests/tests/pen.rs) key on:
//!
//! - `PAYLOAD: start el=<n> dtb=<addr>`
//! - `PAYLOAD: memreserve=<list>` (see [`memreserve_text`])
//! - `PAYLOAD: ok <what>` — one per passed check
//! - `PAYLOAD: FAIL <why>` — the first failed check (nothing else is tried)
//! - `PAYLOAD: rounds ...` timing (see [`timing_line`])
//! - `PAYLOAD: VERDICT PASS cpus=<n> rounds=<r> el=<el>` or `PAYLOAD: VERDICT FAIL <reason>`
#![no_std]
extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use loader::dt::{Cpu, DtInfo, EnableMethod, Prop64, Region};
use loader::pen::{PenImage, SlotStatus, MPIDR_MASK};

/// Most CPUs the payload handles (per-CPU stacks and records are static).
pub const MAX_CPUS: usize = 16;
/// Release/park rounds per secondary CPU unless `payload.rounds=` says otherwise.
pub const DEFAULT_ROUNDS: u32 = 100;
/// Upper bound for `payload.rounds=`.
pub const MAX_ROUNDS: u32 = 1_000_000;
/// How long one release → record updated + PARKED may take (µs). The protocol asks for
/// ≥ 100 ms; Linux gives a dying CPU 5 s. QEMU TCG on a loaded host needs slack.
pub const ROUND_TIMEOUT_US: u64 = 5_000_000;
/// Alignment of the chained loader's base (arm64 Image: 2 MiB).
pub const CHAIN_ALIGN: u64 = 2 << 20;

// ---------------------------------------------------------------------------------------------
// bootargs
// ---------------------------------------------------------------------------------------------

/// What to do after the verdict (`payload.next=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// No `payload.next`: print `PAYLOAD: done` and WFE forever.
    Stop,
    /// `payload.next=poweroff`: PSCI SYSTEM_OFF.
    Poweroff,
    /// `payload.next=loader`: chain into the loader.bin given as initrd.
    Loader,
}

/// `payload.handoff=`: what the payload breaks just before it chains into the next loader
/// (issue 17, item 11: bad input the next loader must refuse in one line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// Nothing: the DT and the pen as they are.
    Plain,
    /// `scribble-pen`: the old pen's header keeps its magic, version and size words; the
    /// rest of it (bytes 16..128, checksum included) becomes 0xa5 — a kernel that wrote over
    /// memory it should have left alone. Its CPUs still spin in the pen's code.
    ScribblePen,
    /// `dtb-totalsize=<hex>`: the DTB handed on claims this `totalsize`.
    DtbTotalsize(u32),
    /// `dtb-in-loader`: the DTB is copied to the next loader's footprint, past the end of
    /// loader.bin's file (where its .bss, stack and heap go), and x0 points there.
    DtbInLoader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub next: Next,
    /// Release/park rounds per secondary.
    pub rounds: u32,
    /// `payload.inject=no-zero`: in round 1 every secondary parks WITHOUT zeroing its release
    /// word (breaking §5.2 step 2 on purpose). The pen must then publish UNARMED and hold the
    /// CPU instead of re-entering the stale entry; the boot CPU zeroes the word (§5.2 step 5) and
    /// the CPU must arm and show PARKED.
    pub inject_no_zero: bool,
    /// `payload.keep=1`: after the verdict, release every secondary once more into a loop of
    /// our own that never parks (a kernel keeping its CPUs), then go on as `payload.next` says.
    pub keep: bool,
    /// `payload.wait=sleep`: every secondary must wait in the pen with a sleeping method
    /// (WFIT or WFI on the GIC timer) and show wake-ups while it waits.
    pub wait_sleep: bool,
    /// `payload.max_release_us=N`: releases must be taken within N µs of guest time (see
    /// [`LatencyStats::verdict`]); 0 = only report.
    pub max_release_us: u64,
    /// `payload.inject=fault`: after the rounds, release the last secondary to an undefined
    /// instruction: the pen's own vectors must record the exception in its state record
    /// (FAULTED, with ELR and ESR) and keep the CPU (docs/protocol.md §3.4). It is lost to
    /// the rest of the run.
    pub inject_fault: bool,
    /// `payload.el1=1` (at EL2): after the rounds, release the first secondary with mode 1 (as
    /// the resident PSCI part would for an EL1 OS): it must enter at EL1 with x0 = the
    /// context and booting.rst's EL1 state (PMU counters, SVE, PAuth not trapped; real
    /// MIDR/MPIDR). It stays at EL1 for the rest of the run.
    pub el1_entry: bool,
    /// `payload.foreign=1` (with `payload.next=loader`): before chaining, move every
    /// secondary into a spin loop on one shared release word (a U-Boot-style foreign
    /// spin-table) and hand the next loader a DT that lists all but the last secondary
    /// there; the last one has no cpu node, so it reaches the loader's pen as a stray. The
    /// first one follows the release 1.5 s late (after the loader stopped waiting).
    pub foreign: bool,
    /// `payload.handoff=...` (with `payload.next=loader`): see [`Handoff`].
    pub handoff: Handoff,
    /// `payload.psci=probe` (with a `/psci` node, `smc`): instead of the pen rounds, make bad
    /// PSCI calls (CPU_ON of an unknown MPIDR, of a CPU already on, with an entry point in
    /// secure memory or outside RAM, CPU_OFF of the last CPU, unknown function IDs) and check
    /// each gets the spec's error, then turn every secondary on and off twice to show the
    /// firmware still works (docs/psci.md).
    pub psci_probe: bool,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            next: Next::Stop,
            rounds: DEFAULT_ROUNDS,
            inject_no_zero: false,
            keep: false,
            wait_sleep: false,
            max_release_us: 0,
            inject_fault: false,
            el1_entry: false,
            foreign: false,
            handoff: Handoff::Plain,
            psci_probe: false,
        }
    }
}

/// Parses `/chosen/bootargs`: whitespace-separated words; `payload.next=poweroff|loader|stop`,
/// `payload.rounds=<decimal 1..=1000000>` and `payload.inject=no-zero` are ours, everything
/// else is ignored. A bad value
/// of one of ours is an error (the payload then fails rather than guessing).
pub fn parse_bootargs(bootargs: Option<&str>) -> Result<Args, String> {
    let mut a = Args::default();
    for w in bootargs.unwrap_or("").split_ascii_whitespace() {
        if let Some(v) = w.strip_prefix("payload.next=") {
            a.next = match v {
                "poweroff" => Next::Poweroff,
                "loader" => Next::Loader,
                "stop" | "" => Next::Stop,
                other => {
                    return Err(format!(
                        "bootargs: payload.next={other}: expected poweroff, loader or stop"
                    ))
                }
            };
        } else if let Some(v) = w.strip_prefix("payload.rounds=") {
            a.rounds = match v.parse::<u32>() {
                Ok(n) if (1..=MAX_ROUNDS).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "bootargs: payload.rounds={v}: expected 1..={MAX_ROUNDS}"
                    ))
                }
            };
        } else if let Some(v) = w.strip_prefix("payload.keep=") {
            a.keep = match v {
                "1" => true,
                "0" => false,
                other => return Err(format!("bootargs: payload.keep={other}: expected 0 or 1")),
            };
        } else if let Some(v) = w.strip_prefix("payload.wait=") {
            a.wait_sleep = match v {
                "sleep" => true,
                "any" => false,
                other => {
                    return Err(format!(
                        "bootargs: payload.wait={other}: expected sleep or any"
                    ))
                }
            };
        } else if let Some(v) = w.strip_prefix("payload.max_release_us=") {
            a.max_release_us = match v.parse::<u64>() {
                Ok(n) if n <= 10_000_000 => n,
                _ => {
                    return Err(format!(
                        "bootargs: payload.max_release_us={v}: expected 0..=10000000"
                    ))
                }
            };
        } else if let Some(v) = w.strip_prefix("payload.inject=") {
            match v {
                "no-zero" => a.inject_no_zero = true,
                "fault" => a.inject_fault = true,
                other => {
                    return Err(format!(
                        "bootargs: payload.inject={other}: expected no-zero or fault"
                    ))
                }
            }
        } else if let Some(v) = w.strip_prefix("payload.el1=") {
            a.el1_entry = match v {
                "1" => true,
                "0" => false,
                other => return Err(format!("bootargs: payload.el1={other}: expected 0 or 1")),
            };
        } else if let Some(v) = w.strip_prefix("payload.handoff=") {
            a.handoff = parse_handoff(v)?;
        } else if let Some(v) = w.strip_prefix("payload.psci=") {
            a.psci_probe = match v {
                "probe" => true,
                other => return Err(format!("bootargs: payload.psci={other}: expected probe")),
            };
        } else if let Some(v) = w.strip_prefix("payload.foreign=") {
            a.foreign = match v {
                "1" => true,
                "0" => false,
                other => {
                    return Err(format!(
                        "bootargs: payload.foreign={other}: expected 0 or 1"
                    ))
                }
            };
        }
    }
    Ok(a)
}

fn parse_handoff(v: &str) -> Result<Handoff, String> {
    let bad = || {
        format!(
            "bootargs: payload.handoff={v}: expected plain, scribble-pen, dtb-totalsize=<hex> or dtb-in-loader"
        )
    };
    Ok(match v {
        "plain" => Handoff::Plain,
        "scribble-pen" => Handoff::ScribblePen,
        "dtb-in-loader" => Handoff::DtbInLoader,
        _ => {
            let n = v.strip_prefix("dtb-totalsize=").ok_or_else(bad)?;
            let n = n.strip_prefix("0x").unwrap_or(n);
            Handoff::DtbTotalsize(u32::from_str_radix(n, 16).map_err(|_| bad())?)
        }
    })
}

/// One PSCI probe's line: `ok psci <what>: <got>` when the firmware returned `want`, else the
/// failure (the same words, with what was expected).
///
/// # Errors
/// The one-line failure when `got != want`.
pub fn psci_probe_line(what: &str, got: i64, want: i64) -> Result<String, String> {
    if got == want {
        Ok(format!("psci {what}: {}", psci_code_name(got)))
    } else {
        Err(format!(
            "psci {what}: returned {} ({got}), expected {} ({want})",
            psci_code_name(got),
            psci_code_name(want)
        ))
    }
}

/// The PSCI spec's name of a return code (anything else: the number).
#[must_use]
pub fn psci_code_name(v: i64) -> String {
    match v {
        0 => "SUCCESS".into(),
        -1 => "NOT_SUPPORTED".into(),
        -2 => "INVALID_PARAMETERS".into(),
        -3 => "DENIED".into(),
        -4 => "ALREADY_ON".into(),
        -5 => "ON_PENDING".into(),
        -6 => "INTERNAL_FAILURE".into(),
        -7 => "NOT_PRESENT".into(),
        -8 => "DISABLED".into(),
        -9 => "INVALID_ADDRESS".into(),
        other => format!("{other:#x}"),
    }
}

// ---------------------------------------------------------------------------------------------
// DT checks
// ---------------------------------------------------------------------------------------------

/// One spin-table CPU as the DT describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinCpu {
    pub name: String,
    pub mpidr: u64,
    /// `cpu-release-addr`.
    pub release: u64,
}

/// What the DT checks established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinTable {
    pub cpus: Vec<SpinCpu>,
    /// `cpu-park-addr` (the same on every node).
    pub park: u64,
    /// The one `/memreserve/` entry covering the pen.
    pub pen: Region,
}

impl SpinTable {
    /// The CPU with `mpidr` (affinity bits).
    #[must_use]
    pub fn cpu(&self, mpidr: u64) -> Option<&SpinCpu> {
        self.cpus.iter().find(|c| c.mpidr == mpidr & MPIDR_MASK)
    }
}

fn overlaps(a: Region, b: Region) -> bool {
    a.size != 0 && b.size != 0 && a.base < b.end() && b.base < a.end()
}

fn covers(r: Region, addr: u64, len: u64) -> bool {
    addr >= r.base && addr.checked_add(len).is_some_and(|e| e <= r.end())
}

/// Checks the DT's CPU and reservation description against docs/protocol.md §6: every cpu
/// node has `enable-method = "spin-table"`, a two-cell `cpu-release-addr` (unique, 8-byte
/// aligned) and a two-cell `cpu-park-addr` (the same on every node); exactly one `/memreserve/`
/// entry covers every release word and the park address, and no other entry overlaps it; the
/// boot CPU (`boot_mpidr`) is one of the nodes. `ok` gets one line per passed check (without the
/// `PAYLOAD: ` prefix). The first failure is returned.
pub fn check_dt(
    info: &DtInfo,
    boot_mpidr: u64,
    ok: &mut impl FnMut(&str),
) -> Result<SpinTable, String> {
    let boot_mpidr = boot_mpidr & MPIDR_MASK;
    // Nodes whose status is not okay are skipped, as Linux does (a loader marks the nodes of
    // CPUs that did not come `status = "fail"`, docs/protocol.md §6).
    let (live, failed): (Vec<&Cpu>, Vec<&Cpu>) =
        info.cpus.iter().partition(|c| c.status.is_enabled());
    for c in &failed {
        ok(&format!("{}: status \"{}\", skipped", c.path, c.status));
    }
    if live.is_empty() {
        return Err("no /cpus/cpu@* nodes in the DT".into());
    }
    if live.len() > MAX_CPUS {
        return Err(format!(
            "{} cpu nodes: the payload handles at most {MAX_CPUS}",
            live.len()
        ));
    }
    // enable-method
    for c in &live {
        match &c.enable_method {
            Some(EnableMethod::SpinTable) => {}
            Some(m) => {
                return Err(format!(
                    "{}: enable-method \"{m}\", expected \"spin-table\"",
                    c.path
                ))
            }
            None => {
                return Err(format!(
                    "{}: no enable-method, expected \"spin-table\"",
                    c.path
                ))
            }
        }
    }
    ok(&format!(
        "enable-method \"spin-table\" on all {} cpu nodes",
        live.len()
    ));
    // unique MPIDRs, boot CPU present
    for (i, c) in live.iter().enumerate() {
        if live[..i].iter().any(|d| d.mpidr == c.mpidr) {
            return Err(format!("{}: reg {:#x} appears twice", c.path, c.mpidr));
        }
    }
    if !live.iter().any(|c| c.mpidr == boot_mpidr) {
        return Err(format!(
            "the boot CPU (MPIDR {boot_mpidr:#x}) has no cpu node"
        ));
    }
    // cpu-release-addr
    let mut cpus = Vec::new();
    for c in &live {
        let release = match c.release_addr {
            Prop64::Value(v) => v,
            Prop64::Absent => return Err(format!("{}: no cpu-release-addr", c.path)),
            other => {
                return Err(format!(
                    "{}: cpu-release-addr {other}: must be two cells (64-bit)",
                    c.path
                ))
            }
        };
        if release == 0 || !release.is_multiple_of(8) {
            return Err(format!(
                "{}: cpu-release-addr {release:#x} is not a non-zero 8-byte aligned address",
                c.path
            ));
        }
        if let Some(d) = cpus.iter().find(|d: &&SpinCpu| d.release == release) {
            return Err(format!(
                "{}: cpu-release-addr {release:#x} is also {}'s",
                c.path, d.name
            ));
        }
        cpus.push(SpinCpu {
            name: String::from(c.name()),
            mpidr: c.mpidr,
            release,
        });
    }
    let mut line = String::from("cpu-release-addr two cells, unique:");
    for c in &cpus {
        line.push_str(&format!(" {}={:#x}", c.name, c.release));
    }
    ok(&line);
    // cpu-park-addr
    let mut park = None;
    for c in &live {
        let p = match c.park_addr {
            Prop64::Value(v) => v,
            Prop64::Absent => return Err(format!("{}: no cpu-park-addr", c.path)),
            other => {
                return Err(format!(
                    "{}: cpu-park-addr {other}: must be two cells (64-bit)",
                    c.path
                ))
            }
        };
        if p == 0 || !p.is_multiple_of(4) {
            return Err(format!(
                "{}: cpu-park-addr {p:#x} is not a non-zero 4-byte aligned address",
                c.path
            ));
        }
        match park {
            None => park = Some(p),
            Some(q) if q == p => {}
            Some(q) => {
                return Err(format!(
                    "{}: cpu-park-addr {p:#x} differs from the other nodes' {q:#x}",
                    c.path
                ))
            }
        }
    }
    let park = park.unwrap_or(0);
    ok(&format!("cpu-park-addr two cells, {park:#x} on every node"));
    // the one /memreserve/
    let first = cpus[0].release;
    let covering: Vec<Region> = info
        .memreserve
        .iter()
        .copied()
        .filter(|r| covers(*r, first, 8))
        .collect();
    let pen = match covering.as_slice() {
        [] => {
            return Err(format!(
                "no /memreserve/ entry covers cpu-release-addr {first:#x} ({})",
                cpus[0].name
            ))
        }
        [r] => *r,
        many => {
            return Err(format!(
                "{} /memreserve/ entries cover cpu-release-addr {first:#x}: {}",
                many.len(),
                memreserve_text(many)
            ))
        }
    };
    for c in &cpus {
        if !covers(pen, c.release, 8) {
            return Err(format!(
                "{}: cpu-release-addr {:#x} is outside the pen's /memreserve/ {pen}",
                c.name, c.release
            ));
        }
    }
    if !covers(pen, park, 4) {
        return Err(format!(
            "cpu-park-addr {park:#x} is outside the pen's /memreserve/ {pen}"
        ));
    }
    let others = info
        .memreserve
        .iter()
        .filter(|r| **r != pen && overlaps(**r, pen))
        .count();
    let dups = info.memreserve.iter().filter(|r| **r == pen).count();
    if others != 0 || dups != 1 {
        return Err(format!(
            "the pen {pen} is covered by {} /memreserve/ entries: {}",
            others + dups,
            memreserve_text(&info.memreserve)
        ));
    }
    ok(&format!(
        "exactly one /memreserve/ {pen} covers every cpu-release-addr and cpu-park-addr"
    ));
    Ok(SpinTable { cpus, park, pen })
}

/// Checks the pen snapshot `img` (read at the memreserve base) against the DT: header region
/// equals the reservation's start and fits in it, `entry_el` is ours, `cpu-park-addr` is the pen's
/// `pen_park`, every DT CPU's release address is exactly its slot's release word, and every
/// secondary is held (WAITING or PARKED) with its release word 0 and `mpidr_seen` equal to its
/// MPIDR. Returns one line per passed check.
pub fn check_pen(
    img: &PenImage<'_>,
    st: &SpinTable,
    boot_mpidr: u64,
    el: u8,
    ok: &mut impl FnMut(&str),
) -> Result<(), String> {
    let h = img.header();
    if h.phys_base != st.pen.base || h.total_size > st.pen.size {
        return Err(format!(
            "pen header at {:#x} describes {}, not inside /memreserve/ {}",
            st.pen.base,
            h.region(),
            st.pen
        ));
    }
    if h.entry_el != u32::from(el) {
        return Err(format!(
            "pen entry_el {} differs from the payload's EL{el}",
            h.entry_el
        ));
    }
    if h.park_addr() != st.park {
        return Err(format!(
            "cpu-park-addr {:#x} is not the pen's pen_park {:#x}",
            st.park,
            h.park_addr()
        ));
    }
    ok(&format!(
        "pen header at {:#x} valid: version {}, generation {}, {} slots, entry_el {}, park {:#x}, {} bytes",
        h.phys_base,
        h.version,
        h.generation,
        h.nr_slots,
        h.entry_el,
        h.park_addr(),
        h.total_size
    ));
    for c in &st.cpus {
        let s = img
            .slot_of(c.mpidr)
            .ok_or_else(|| format!("{}: no pen slot for MPIDR {:#x}", c.name, c.mpidr))?;
        if s.release_addr != c.release {
            return Err(format!(
                "{}: cpu-release-addr {:#x} is not its pen slot's release word {:#x}",
                c.name, c.release, s.release_addr
            ));
        }
        if c.mpidr == boot_mpidr & MPIDR_MASK {
            continue;
        }
        if !s.state.status.is_held() {
            return Err(format!(
                "{}: pen status {} before the first release, expected WAITING or PARKED",
                c.name, s.state
            ));
        }
        if s.release != 0 {
            return Err(format!(
                "{}: release word {:#x} is not 0 before the first release",
                c.name, s.release
            ));
        }
        if s.state.mpidr_seen != c.mpidr {
            return Err(format!(
                "{}: pen state mpidr_seen {:#x} != {:#x}",
                c.name, s.state.mpidr_seen, c.mpidr
            ));
        }
    }
    ok(&format!(
        "pen slots match the DT; {} secondaries held, release words 0",
        st.cpus.len().saturating_sub(1)
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Per-entry checks
// ---------------------------------------------------------------------------------------------

/// What a released secondary recorded at its entry (`main.rs` Record, read back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryRecord {
    /// Entries so far (the secondary's round counter).
    pub entries: u64,
    pub mpidr: u64,
    pub el: u64,
    /// x0..x3 at the entry.
    pub regs: [u64; 4],
    /// CNTPCT at the entry.
    pub entry_ticks: u64,
    /// The control register of the timer the pen sleeps on, at entry.
    pub timer_ctl: u64,
    /// [`GicBits`] found at entry.
    pub gic_bits: u64,
    /// The pen state record's `wakes` at entry.
    pub wakes: u64,
}

/// What a released CPU finds of the pen's GIC wake-up set-up (a bit each; all must be clear).
pub struct GicBits;

impl GicBits {
    pub const TIMER_ENABLED: u64 = 1 << 0;
    pub const TIMER_PENDING: u64 = 1 << 1;
    pub const SGI_ENABLED: u64 = 1 << 2;
    pub const CPU_IF_ENABLED: u64 = 1 << 3;
    pub const PMR_SET: u64 = 1 << 4;
    pub const SGI_PENDING: u64 = 1 << 5;
    /// The GIC was found and read.
    pub const CHECKED: u64 = 1 << 63;

    #[must_use]
    pub fn describe(bits: u64) -> String {
        let names = [
            (Self::TIMER_ENABLED, "timer interrupt enabled"),
            (Self::TIMER_PENDING, "timer interrupt pending"),
            (Self::SGI_ENABLED, "SGI 15 enabled"),
            (Self::CPU_IF_ENABLED, "CPU interface enabled"),
            (Self::PMR_SET, "priority mask set"),
            (Self::SGI_PENDING, "SGI 15 pending"),
        ];
        let v: Vec<&str> = names
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect();
        v.join(", ")
    }
}

/// docs/protocol.md §3.3: a released CPU finds its timer off and no GIC wake-up state.
pub fn check_entry_state(cpu: &SpinCpu, rec: &EntryRecord, round: u64) -> Result<(), String> {
    if rec.timer_ctl & 1 != 0 {
        return Err(format!(
            "{}: entry {round} with its timer enabled (CTL {:#x})",
            cpu.name, rec.timer_ctl
        ));
    }
    let left = rec.gic_bits & !GicBits::CHECKED;
    if left != 0 {
        return Err(format!(
            "{}: entry {round} with pen GIC state left: {}",
            cpu.name,
            GicBits::describe(left)
        ));
    }
    Ok(())
}

/// Release latencies (release store → the released CPU's first instruction), guest time, and
/// how many of its wake-ups each release took (its `wakes` at entry minus before the store).
#[derive(Debug, Default, Clone)]
pub struct LatencyStats {
    pub us: Vec<u64>,
    pub wakes: Vec<u32>,
}

impl LatencyStats {
    /// Median, 90th percentile and maximum (µs); zeros when empty.
    #[must_use]
    pub fn summary(&self) -> (u64, u64, u64) {
        let mut v = self.us.clone();
        v.sort_unstable();
        let at = |q: usize| {
            v.get((v.len().saturating_sub(1)) * q / 100)
                .copied()
                .unwrap_or(0)
        };
        (at(50), at(90), v.last().copied().unwrap_or(0))
    }

    /// Releases that took more than two wake-ups (a sleeping CPU sees a release at the first
    /// wake after the store, or the second if one fell between our read and the store).
    #[must_use]
    pub fn late(&self) -> usize {
        self.wakes.iter().filter(|&&w| w > 2).count()
    }

    /// `max_us` = 0: no bound. Otherwise the median must be within it, and at most 5 % of the
    /// releases may have needed more than two wake-ups. (Under QEMU TCG the guest clock runs
    /// while a vCPU thread waits for a host CPU, so on a loaded host single releases take
    /// several ms although the CPU saw them at its next wake-up; the tail is reported, the
    /// wake count says whether the pen was at fault.)
    pub fn verdict(&self, max_us: u64) -> Result<String, String> {
        let (p50, p90, max) = self.summary();
        let line = format!(
            "release latency over {} releases: median {p50} us, 90% {p90} us, max {max} us; {} needed more than 2 wake-ups",
            self.us.len(),
            self.late()
        );
        if max_us != 0 && (p50 > max_us || self.late() * 20 > self.wakes.len()) {
            return Err(format!("{line}: over the {max_us} us bound"));
        }
        Ok(line)
    }
}

/// One release/park round of `cpu` is complete and correct: the record shows entry number
/// `round` by the right CPU, at the boot CPU's EL, with x0..x3 = 0.
pub fn check_entry(cpu: &SpinCpu, rec: &EntryRecord, round: u64, el: u8) -> Result<(), String> {
    if rec.entries != round {
        return Err(format!(
            "{}: record shows {} entries, expected {round}",
            cpu.name, rec.entries
        ));
    }
    if rec.mpidr != cpu.mpidr {
        return Err(format!(
            "{}: entry {round} recorded MPIDR {:#x}, expected {:#x}",
            cpu.name, rec.mpidr, cpu.mpidr
        ));
    }
    if rec.el != u64::from(el) {
        return Err(format!(
            "{}: entry {round} at EL{}, the boot CPU is at EL{el}",
            cpu.name, rec.el
        ));
    }
    if rec.regs != [0; 4] {
        return Err(format!(
            "{}: entry {round} with x0..x3 = {:#x} {:#x} {:#x} {:#x}, expected 0",
            cpu.name, rec.regs[0], rec.regs[1], rec.regs[2], rec.regs[3]
        ));
    }
    Ok(())
}

/// How a round stands, from the pen's state record and the payload's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundState {
    /// Record updated and the pen says PARKED with `parks` advanced by one: done.
    Done,
    /// Not yet.
    Pending,
    /// Can never complete (REFUSED, UNARMED after a park, counters beyond the round).
    Broken,
}

/// Classifies a poll: `entries` (payload record), pen `status` and `parks`, against the round
/// number (1-based) and the pen's `parks` before the first release. UNARMED after this round's
/// park is broken (the CPU parked with its release word set) unless `unarmed_ok`: the boot CPU
/// has just zeroed the word (§5.2 step 5) and the CPU arms shortly.
#[must_use]
pub fn round_state(
    entries: u64,
    status: SlotStatus,
    parks: u64,
    round: u64,
    base_parks: u64,
    unarmed_ok: bool,
) -> RoundState {
    let want_parks = base_parks.wrapping_add(round);
    if entries > round || parks.wrapping_sub(base_parks) > round {
        return RoundState::Broken;
    }
    match status {
        SlotStatus::Refused | SlotStatus::Unknown(_) | SlotStatus::Empty => RoundState::Broken,
        SlotStatus::Unarmed if parks == want_parks && !unarmed_ok => RoundState::Broken,
        SlotStatus::Parked if entries == round && parks == want_parks => RoundState::Done,
        _ => RoundState::Pending,
    }
}

// ---------------------------------------------------------------------------------------------
// Chaining: where the next loader goes
// ---------------------------------------------------------------------------------------------

/// Chooses where to copy the next loader (footprint `size` bytes, `align`-aligned base):
/// the lowest aligned base at or above `above` such that the whole footprint lies inside one
/// `/memory` bank and overlaps none of `avoid`; failing that, the lowest such base anywhere.
///
/// The payload passes `above` = the end of its own footprint and of the initrd (whichever is
/// higher), and `avoid` = every `/memreserve/` and `/reserved-memory` range (the pen among
/// them), the DT, the initrd (the source of the copy) and the payload's footprint (the code
/// doing the copy). So the new loader sits just above what is in use, normally below the DT
/// the old loader placed at `fdt_addr_r` — and whatever it overlaps is memory nobody owns.
#[must_use]
pub fn choose_chain_dest(
    memory: &[Region],
    avoid: &[Region],
    size: u64,
    align: u64,
    above: u64,
) -> Option<u64> {
    if size == 0 || !align.is_power_of_two() {
        return None;
    }
    let mask = align - 1;
    let up = |a: u64| a.checked_add(mask).map(|v| v & !mask);
    let mut banks: Vec<Region> = memory.to_vec();
    banks.sort();
    let search = |from: u64| -> Option<u64> {
        for bank in &banks {
            let Some(mut base) = up(from.max(bank.base)) else {
                continue;
            };
            while let Some(end) = base.checked_add(size) {
                if end > bank.end() {
                    break;
                }
                let r = Region::new(base, size);
                // The highest end among the ranges in the way; none: free.
                match avoid
                    .iter()
                    .filter(|a| overlaps(**a, r))
                    .map(Region::end)
                    .max()
                {
                    None => return Some(base),
                    Some(next) => match up(next) {
                        Some(n) if n > base => base = n,
                        _ => break,
                    },
                }
            }
        }
        None
    };
    search(above).or_else(|| search(0))
}

/// Reads an arm64 Image header's `image_size` (the in-place footprint), checking the magic.
pub fn image_footprint(header: &[u8]) -> Result<u64, String> {
    if header.len() < 64 {
        return Err(format!(
            "{} bytes: too short for an arm64 Image header",
            header.len()
        ));
    }
    if &header[56..60] != b"ARM\x64" {
        return Err("no arm64 Image magic (\"ARM\\x64\" at offset 56)".into());
    }
    let mut w = [0u8; 8];
    w.copy_from_slice(&header[16..24]);
    let image_size = u64::from_le_bytes(w);
    w.copy_from_slice(&header[8..16]);
    let text_offset = u64::from_le_bytes(w);
    if text_offset != 0 {
        return Err(format!(
            "text_offset {text_offset:#x}: the payload only chains text_offset 0 Images"
        ));
    }
    Ok(image_size)
}

// ---------------------------------------------------------------------------------------------
// Output lines
// ---------------------------------------------------------------------------------------------

/// `/memreserve/` entries as `base+size` (hex), comma-separated; `none` when empty. The chain
/// test compares this text across cycles.
#[must_use]
pub fn memreserve_text(list: &[Region]) -> String {
    if list.is_empty() {
        return String::from("none");
    }
    let parts: Vec<String> = list
        .iter()
        .map(|r| format!("{:#x}+{:#x}", r.base, r.size))
        .collect();
    parts.join(",")
}

/// Makes `s` a single line (the verdict must be one line).
#[must_use]
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect()
}

#[must_use]
pub fn verdict_pass(cpus: usize, rounds: u32, el: u8) -> String {
    format!("PAYLOAD: VERDICT PASS cpus={cpus} rounds={rounds} el={el}")
}

#[must_use]
pub fn verdict_fail(reason: &str) -> String {
    format!("PAYLOAD: VERDICT FAIL {}", one_line(reason))
}

/// Timing of the rounds: `elapsed_us` for `rounds` rounds of `secondaries` CPUs released
/// concurrently. Average per round (all secondaries) and per release→park of one CPU, in µs
/// with two decimals.
#[must_use]
pub fn timing_line(secondaries: usize, rounds: u32, elapsed_us: u64, max_round_us: u64) -> String {
    let cents = elapsed_us.saturating_mul(100);
    let per_round = cents.checked_div(u64::from(rounds)).unwrap_or(0);
    let n = (secondaries as u64).saturating_mul(u64::from(rounds));
    let per_release = cents.checked_div(n).unwrap_or(0);
    format!(
        "PAYLOAD: rounds: {secondaries} cpus x {rounds} in {elapsed_us} us, avg {}.{:02} us/round, {}.{:02} us per release+park, slowest {max_round_us} us",
        per_round / 100,
        per_round % 100,
        per_release / 100,
        per_release % 100
    )
}

#[cfg(test)]
mod tests;

// ---------------------------------------------------------------------------------------------
// Mode-1 (EL1) entry and the pen's fault record
// ---------------------------------------------------------------------------------------------

/// What a secondary released with mode 1 reports from EL1 (`payload_el1_entry` in
/// secondary.S writes it; the layout is used there).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct El1Report {
    /// 1 once the rest is written.
    pub done: u64,
    /// x0 at entry.
    pub x0: u64,
    /// CurrentEL.
    pub el: u64,
    /// PMCR_EL0.N as EL1 reads it (MDCR_EL2.HPMN).
    pub pmu_n: u64,
    /// `rdvl #1` (bytes), or `u64::MAX` when the CPU has no SVE.
    pub sve_vl: u64,
    /// 1 when APIAKeyLo_EL1 could be read, `u64::MAX` without pointer authentication.
    pub pauth: u64,
    pub midr: u64,
    pub mpidr: u64,
}

/// What the boot CPU expects of [`El1Report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct El1Want {
    pub context: u64,
    /// PMCR_EL0.N read at EL2 (every counter).
    pub pmu_n: u64,
    pub sve: bool,
    pub pauth: bool,
    pub midr: u64,
    pub mpidr: u64,
}

/// Checks a mode-1 entry against booting.rst's state for a kernel entered at EL1 with EL2
/// present (docs/protocol.md §3.2 step 11); the `ok` line, or the first failure.
pub fn check_el1_entry(name: &str, r: &El1Report, w: &El1Want) -> Result<String, String> {
    if r.el != 1 {
        return Err(format!(
            "{name}: mode-1 release entered at EL{}, not EL1",
            r.el
        ));
    }
    if r.x0 != w.context {
        return Err(format!(
            "{name}: mode-1 release: x0 {:#x}, expected the context {:#x}",
            r.x0, w.context
        ));
    }
    if r.pmu_n != w.pmu_n {
        return Err(format!(
            "{name}: at EL1 PMCR_EL0.N is {}, at EL2 {}: MDCR_EL2.HPMN hides counters",
            r.pmu_n, w.pmu_n
        ));
    }
    if w.sve && (r.sve_vl == u64::MAX || r.sve_vl < 16) {
        return Err(format!(
            "{name}: SVE not usable at EL1 (rdvl {:#x})",
            r.sve_vl
        ));
    }
    if w.pauth && r.pauth != 1 {
        return Err(format!(
            "{name}: pointer authentication keys not accessible at EL1"
        ));
    }
    if r.midr != w.midr || r.mpidr & MPIDR_MASK != w.mpidr & MPIDR_MASK {
        return Err(format!(
            "{name}: EL1 reads MIDR {:#x} MPIDR {:#x}, the CPU is {:#x} / {:#x}",
            r.midr, r.mpidr, w.midr, w.mpidr
        ));
    }
    let mut line = format!(
        "{name} entered at EL1 by a mode-1 release: x0 = context {:#x}, PMCR_EL0.N {} as at EL2",
        r.x0, r.pmu_n
    );
    if w.sve {
        line.push_str(&format!(", SVE usable (VL {} bytes)", r.sve_vl));
    }
    if w.pauth {
        line.push_str(", PAuth keys accessible");
    }
    line.push_str(", real MIDR/MPIDR");
    Ok(line)
}

/// Checks the state record of a CPU released to an undefined instruction at `entry`: the
/// pen's vectors must have recorded it (FAULTED, ELR = `entry`, unknown-instruction class,
/// the current EL's SPx synchronous vector); the `ok` line, or what was found.
pub fn check_fault(
    name: &str,
    st: &loader::pen::SlotState,
    entry: u64,
    el: u8,
) -> Result<String, String> {
    let Some(f) = st.fault() else {
        return Err(format!(
            "{name}: released to an undefined instruction, the pen says {st}"
        ));
    };
    if f.elr != entry || f.ec() != 0 || f.el != el || f.vector != 4 {
        return Err(format!(
            "{name}: fault record {f}: expected ELR {entry:#x}, EC 0, EL{el}, vector 0x200"
        ));
    }
    Ok(format!(
        "{name} released to an undefined instruction: the pen's vectors kept it and recorded {st}"
    ))
}
