//! `payload.psci=probe`: bad PSCI calls to the firmware (parkboot's resident part at EL3,
//! docs/psci.md), each checked against the spec's error, then every secondary turned on and
//! off twice to show the firmware still works. The calls are raw SMCs (not the `smccc`
//! crate's typed wrappers) so that every return code is seen as the firmware gave it.
use crate::println;
use crate::rt::{self, civac, rd, wr};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use arch::{cpu, timer};
use loader::dt::DtInfo;
use parkboot_payload::psci_probe_line;

const PSCI_VERSION: u64 = 0x8400_0000;
const CPU_OFF: u64 = 0x8400_0002;
const CPU_ON: u64 = 0xc400_0003;
const AFFINITY_INFO: u64 = 0xc400_0004;
const MIGRATE_INFO_TYPE: u64 = 0x8400_0006;
const PSCI_FEATURES: u64 = 0x8400_000a;
const SMCCC_VERSION: u64 = 0x8000_0000;

const SUCCESS: i64 = 0;
const NOT_SUPPORTED: i64 = -1;
const INVALID_PARAMETERS: i64 = -2;
const DENIED: i64 = -3;
const ALREADY_ON: i64 = -4;
const INVALID_ADDRESS: i64 = -9;
/// AFFINITY_INFO's answers.
const AFF_ON: i64 = 0;
const AFF_OFF: i64 = 1;
/// How long a CPU may take to come on, or to go off again.
const CPU_TIMEOUT_US: u64 = 2_000_000;

/// Where a CPU turned on by the probe writes `[MPIDR, CurrentEL]` (the context id in x0);
/// it then waits for `go` to be non-zero before its CPU_OFF.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct ProbeRecord {
    mpidr: u64,
    current_el: u64,
    go: u64,
}

pub static PROBE_RECORDS: rt::Shared<[ProbeRecord; rt::MAX_CPUS]> = rt::Shared::new(
    [ProbeRecord {
        mpidr: 0,
        current_el: 0,
        go: 0,
    }; rt::MAX_CPUS],
);

// The probe's CPU_ON target: records itself in its ProbeRecord (x0, the context id), waits
// for its `go`, then CPU_OFF. No stack, MMU off (as CPU_ON leaves it).
core::arch::global_asm!(
    ".section .text.payload_psci_probe, \"ax\"",
    ".global payload_psci_probe_entry",
    "payload_psci_probe_entry:",
    "    mrs     x1, mpidr_el1",
    "    mrs     x2, CurrentEL",
    "    stp     x1, x2, [x0]",
    "    dc      civac, x0",
    "    dsb     sy",
    "2:  dc      civac, x0",
    "    dsb     sy",
    "    ldr     x3, [x0, #16]",
    "    cbz     x3, 2b",
    "    movz    w0, #0x0002",
    "    movk    w0, #0x8400, lsl #16",
    "    smc     #0",
    "1:  wfe",
    "    b       1b",
);

extern "C" {
    fn payload_psci_probe_entry();
}

/// One SMC: function `f` with `a`, `b`, `c`; w0 sign-extended (every answer here fits 32
/// bits).
fn smc(f: u64, a: u64, b: u64, c: u64) -> i64 {
    let mut x0 = f;
    // SAFETY: an SMC to the firmware; SMCCC: x0..x3 are the arguments and results, the
    // caller-saved registers are declared clobbered; no memory of ours is touched.
    unsafe {
        core::arch::asm!(
            "smc #0",
            inout("x0") x0,
            inout("x1") a => _,
            inout("x2") b => _,
            inout("x3") c => _,
            clobber_abi("C"),
            options(nostack)
        );
    }
    i64::from(x0 as u32 as i32)
}

fn check(what: &str, got: i64, want: i64) -> Result<(), String> {
    let line = psci_probe_line(what, got, want)?;
    println!("PAYLOAD: ok {line}");
    Ok(())
}

fn record_ptr(i: usize) -> *mut ProbeRecord {
    let i = i.min(rt::MAX_CPUS - 1);
    // SAFETY: in bounds of the static array.
    unsafe { PROBE_RECORDS.get().cast::<ProbeRecord>().add(i) }
}

/// Waits until `done` or [`CPU_TIMEOUT_US`]; whether it happened.
fn wait_for(done: impl Fn() -> bool) -> bool {
    let t0 = timer::now_us();
    while timer::now_us() - t0 < CPU_TIMEOUT_US {
        if done() {
            return true;
        }
    }
    done()
}

/// The probe: `Ok(n)` with the number of CPU_ON/CPU_OFF cycles done, or the first wrong
/// answer. `blob` is the DT (for the secure RAM), `el` the payload's EL.
pub fn run(info: &DtInfo, blob: &[u8], boot: u64, el: u8) -> Result<u32, String> {
    let secure = loader::psci::resident::SecureInfo::parse(blob)?;
    let secure_entry = secure
        .ram
        .first()
        .map(|r| r.base + 0x1000)
        .ok_or("the DT describes no secure RAM")?;
    let ram_end = info
        .memory
        .iter()
        .map(|r| r.base + r.size)
        .max()
        .ok_or("the DT describes no RAM")?;
    let entry = payload_psci_probe_entry as *const () as usize as u64;
    let mpidrs: Vec<u64> = info
        .cpus
        .iter()
        .map(|c| c.mpidr)
        .filter(|&m| m != boot)
        .collect();
    let Some(&first) = mpidrs.first() else {
        return Err("the probe needs a secondary CPU".into());
    };

    check("PSCI_VERSION", smc(PSCI_VERSION, 0, 0, 0), 0x1_0001)?;
    check("SMCCC_VERSION", smc(SMCCC_VERSION, 0, 0, 0), 0x1_0001)?;
    check("MIGRATE_INFO_TYPE", smc(MIGRATE_INFO_TYPE, 0, 0, 0), 2)?;
    check(
        "PSCI_FEATURES(CPU_ON)",
        smc(PSCI_FEATURES, CPU_ON, 0, 0),
        SUCCESS,
    )?;
    check(
        "PSCI_FEATURES(0x8400001f)",
        smc(PSCI_FEATURES, 0x8400_001f, 0, 0),
        NOT_SUPPORTED,
    )?;
    for f in [
        0x8400_001f_u64,
        0xc400_0013,
        0x8200_0000,
        0xc300_0001,
        0x8600_ff00,
    ] {
        check(
            &format!("unknown function {f:#x}"),
            smc(f, 0, 0, 0),
            NOT_SUPPORTED,
        )?;
    }
    check(
        "CPU_ON unknown MPIDR 0xff",
        smc(CPU_ON, 0xff, entry, 0),
        INVALID_PARAMETERS,
    )?;
    check(
        "AFFINITY_INFO unknown MPIDR 0xff",
        smc(AFFINITY_INFO, 0xff, 0, 0),
        INVALID_PARAMETERS,
    )?;
    check(
        &format!("CPU_ON {boot:#x} (the caller, already on)"),
        smc(CPU_ON, boot, entry, 0),
        ALREADY_ON,
    )?;
    check(
        &format!("CPU_ON {first:#x} entry {secure_entry:#x} (secure RAM)"),
        smc(CPU_ON, first, secure_entry, 0),
        INVALID_ADDRESS,
    )?;
    check(
        &format!("CPU_ON {first:#x} entry {ram_end:#x} (outside RAM)"),
        smc(CPU_ON, first, ram_end, 0),
        INVALID_ADDRESS,
    )?;
    check(
        &format!("CPU_ON {first:#x} entry 0x0 (flash)"),
        smc(CPU_ON, first, 0, 0),
        INVALID_ADDRESS,
    )?;
    for &m in &mpidrs {
        check(
            &format!("AFFINITY_INFO {m:#x} (handed back)"),
            smc(AFFINITY_INFO, m, 0, 0),
            AFF_OFF,
        )?;
    }
    check("CPU_OFF of the last CPU", smc(CPU_OFF, 0, 0, 0), DENIED)?;
    // Still working: every secondary on (at the caller's EL) and off again, twice.
    let mut cycles = 0;
    for round in 0..2 {
        for (i, &m) in mpidrs.iter().enumerate() {
            let rec = record_ptr(i);
            // SAFETY: fields of our own static record (the CPU is off).
            unsafe {
                wr(&raw mut (*rec).mpidr, 0);
                wr(&raw mut (*rec).current_el, 0);
                wr(&raw mut (*rec).go, 0);
            }
            civac(rec as u64, 64);
            check(
                &format!("round {round}: CPU_ON {m:#x}"),
                smc(CPU_ON, m, entry, rec as u64),
                SUCCESS,
            )?;
            let seen = || {
                civac(rec as u64, 64);
                // SAFETY: a field of our static record.
                let v = unsafe { rd(&raw const (*rec).mpidr) };
                v & 0xff_00ff_ffff == m
            };
            if !wait_for(seen) {
                return Err(format!("psci round {round}: CPU {m:#x} did not come on"));
            }
            // SAFETY: as above.
            let cel = (unsafe { rd(&raw const (*rec).current_el) } >> 2) & 3;
            if cel != u64::from(el) {
                return Err(format!(
                    "psci round {round}: CPU {m:#x} entered at EL{cel}, expected EL{el}"
                ));
            }
            // On and waiting for its go: a second CPU_ON is refused, AFFINITY_INFO says ON.
            check(
                &format!("round {round}: CPU_ON {m:#x} again (on)"),
                smc(CPU_ON, m, entry, rec as u64),
                ALREADY_ON,
            )?;
            check(
                &format!("round {round}: AFFINITY_INFO {m:#x} (on)"),
                smc(AFFINITY_INFO, m, 0, 0),
                AFF_ON,
            )?;
            // SAFETY: a field of our static record; the CPU polls it.
            unsafe { wr(&raw mut (*rec).go, 1) };
            civac(rec as u64, 64);
            if !wait_for(|| smc(AFFINITY_INFO, m, 0, 0) == AFF_OFF) {
                return Err(format!(
                    "psci round {round}: CPU {m:#x} did not go off after its CPU_OFF"
                ));
            }
            cycles += 1;
        }
        println!(
            "PAYLOAD: ok psci round {round}: {} CPUs on at EL{el} and off again",
            mpidrs.len()
        );
    }
    check(
        "AFFINITY_INFO of the caller",
        smc(AFFINITY_INFO, boot, 0, 0),
        AFF_ON,
    )?;
    cpu::dsb();
    Ok(cycles)
}
