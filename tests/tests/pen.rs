//! The spin pen's release/park path, exercised by the bare-metal test payload
//! (tests/payload, built into target/payload.bin by `cargo xtask test`): no
//! stock kernel ever hands a CPU back through `cpu-park-addr`, the payload
//! does it ≥ 100 times per CPU and checks every step (docs/protocol.md).
//!
//! Every boot is driven by a small FAT disk: `/boot.cmd` (run by autoboot),
//! `/parkboot.env` (`bootdelay=0`), `/payload.bin` and, for chains,
//! `/loader.bin` — so each new loader in a chain boots the next payload by
//! itself, without typing.
use qemu_harness::{
    dts_add_root_child, edited_virt_dtb, loader_bin, payload_bin, scratch, Opts, Qemu,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use xtask::disk::{make_fat_disk, DiskSpec, Source, Table};
use xtask::virt_dt::{
    config_environment_node, parse_handoff, parse_payload_counter, Handoff, MEMORY_CHAIN,
};

const T: Duration = Duration::from_secs(60);

fn disk(dir: &Path, boot_cmd: &str, with_loader: bool) -> PathBuf {
    disk_with(dir, "bootdelay=0\n", Some(boot_cmd), with_loader)
}

/// A disk with `/parkboot.env` = `env`, `/payload.bin`, and optionally
/// `/boot.cmd` and `/loader.bin`.
fn disk_with(dir: &Path, env: &str, boot_cmd: Option<&str>, with_loader: bool) -> PathBuf {
    let mut files = vec![
        (
            "/parkboot.env".to_string(),
            Source::Bytes(env.as_bytes().to_vec()),
        ),
        ("/payload.bin".to_string(), Source::Host(payload_bin())),
    ];
    if let Some(cmd) = boot_cmd {
        files.push((
            "/boot.cmd".to_string(),
            Source::Bytes(cmd.as_bytes().to_vec()),
        ));
    }
    if with_loader {
        files.push(("/loader.bin".to_string(), Source::Host(loader_bin())));
    }
    let img = dir.join("disk.img");
    make_fat_disk(
        &img,
        &DiskSpec {
            table: Table::Mbr,
            fat: 32,
            size_mib: 40,
            files,
            label: None,
        },
    )
    .unwrap_or_else(|e| panic!("making {}: {e}", img.display()));
    img
}

/// Typed at the prompt: the payload from the disk with loader.bin as its initrd.
fn typed_payload_with_loader(q: &mut Qemu, bootargs: &str) {
    q.cmd(&format!("setenv bootargs '{bootargs}'"));
    q.cmd("load virtio 0 ${ramdisk_addr_r} /loader.bin");
    q.cmd("setenv rdsize ${filesize}");
    q.cmd("load virtio 0 ${kernel_addr_r} /payload.bin");
    q.send("booti ${kernel_addr_r} ${ramdisk_addr_r}:${rdsize}");
}

/// Boot script: `pre` commands, then the payload alone with `bootargs` (plus
/// `payload.next=poweroff`: PSCI SYSTEM_OFF after the verdict).
fn poweroff_script(pre: &str, bootargs: &str) -> String {
    format!(
        "{pre}setenv bootargs 'payload.next=poweroff {bootargs}'\n\
         load virtio 0 ${{kernel_addr_r}} /payload.bin\n\
         booti ${{kernel_addr_r}}\n"
    )
}

/// Boot script: the payload with loader.bin as its initrd; the payload chains into it.
const CHAIN_SCRIPT: &str = "setenv bootargs 'payload.next=loader'\n\
    load virtio 0 ${ramdisk_addr_r} /loader.bin\n\
    setenv rdsize ${filesize}\n\
    load virtio 0 ${kernel_addr_r} /payload.bin\n\
    booti ${kernel_addr_r} ${ramdisk_addr_r}:${rdsize}\n";

/// What one payload run printed.
struct Run {
    el: String,
    /// The payload's counter (CNTPCT) at its entry.
    entry_counter: Option<u64>,
    memreserve: String,
    verdict: String,
    timing: Option<String>,
    generation: Option<String>,
    ok_cpus: usize,
    /// Lines reporting an injected park-without-zeroing caught by the pen.
    unarmed: usize,
    /// `payload.wait=sleep`: the wait method of each secondary that sleeps in the pen.
    sleeping: Vec<String>,
    /// The release latency line.
    latency: Option<String>,
    /// Every entry found the timer off and no pen GIC state.
    entry_state_ok: bool,
    /// Everything from the memreserve line to the verdict.
    body: String,
}

/// Reads one payload run, from its start line to its verdict line.
fn payload_run(q: &mut Qemu) -> Run {
    q.expect_within("PAYLOAD: start el=", T);
    let el = q.expect_within(" ", T).trim().to_string();
    let start = q.expect_within("\n", T);
    let entry_counter = parse_payload_counter(&start);
    q.expect_within("PAYLOAD: memreserve=", T);
    let memreserve = q.expect_within("\n", T).trim().to_string();
    let body = q.expect_within("PAYLOAD: VERDICT ", Duration::from_secs(180));
    let verdict = q.expect_within("\n", T).trim().to_string();
    let timing = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("PAYLOAD: rounds: "))
        .map(str::to_string);
    let generation = body
        .lines()
        .find_map(|l| l.split_once("generation "))
        .map(|(_, g)| g.split(',').next().unwrap_or("").to_string());
    let ok_cpus = body
        .lines()
        .filter(|l| l.trim().starts_with("PAYLOAD: ok cpu@") && l.contains(" MPIDR "))
        .count();
    let unarmed = body
        .lines()
        .filter(|l| l.contains("the pen held it UNARMED, no re-entry"))
        .count();
    let sleeping = body
        .lines()
        .filter_map(|l| l.split_once(" sleeps in the pen with "))
        .map(|(_, m)| m.split(':').next().unwrap_or("").to_string())
        .collect();
    let latency = body
        .lines()
        .find_map(|l| l.split_once("PAYLOAD: ok release latency "))
        .map(|(_, r)| r.trim().to_string());
    let entry_state_ok =
        body.contains("PAYLOAD: ok every entry found its timer off and no pen GIC state");
    Run {
        body,
        sleeping,
        latency,
        entry_state_ok,
        el,
        entry_counter,
        memreserve,
        verdict,
        timing,
        generation,
        ok_cpus,
        unarmed,
    }
}

fn pass_then_poweroff(name: &str, opts: Opts, bootargs: &str) -> Run {
    let dir = scratch(name);
    let img = disk(&dir, &poweroff_script("", bootargs), false);
    let smp = opts.smp;
    let el = if opts.el2 { 2 } else { 1 };
    let mut opts = opts;
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    let r = payload_run(&mut q);
    eprintln!(
        "[{name}] verdict {:?}; rounds: {:?}; memreserve {}",
        r.verdict, r.timing, r.memreserve
    );
    let rounds = bootargs
        .split_whitespace()
        .find_map(|w| w.strip_prefix("payload.rounds="))
        .unwrap_or("100");
    let want = format!("PASS cpus={smp} rounds={rounds} el={el}");
    if r.verdict != want {
        q.fail(&format!("verdict {:?}, expected {want:?}", r.verdict));
    }
    assert_eq!(r.el, el.to_string());
    assert_eq!(
        r.ok_cpus,
        smp as usize - 1,
        "one summary line per secondary"
    );
    assert!(r.timing.is_some(), "no timing line");
    q.expect_within("PAYLOAD: poweroff (PSCI SYSTEM_OFF via ", T);
    if !q.wait_exit(T) {
        q.fail("QEMU did not power off");
    }
    r
}

/// The sleeping pen (docs/protocol.md §3.3): every secondary the loader hands over waits with
/// WFI on its own timer through the GIC (`want`), its wake-up counter advances while held, the
/// payload's releases (a store and SEV, no kick — as stock Linux does it) are taken within
/// 1 ms of guest time (median and 90th percentile), and every entry finds the timer off and no
/// GIC state of the pen.
fn sleeping_pen(name: &str, opts: Opts, want: &str) {
    let smp = opts.smp as usize;
    let r = pass_then_poweroff(name, opts, "payload.wait=sleep payload.max_release_us=1000");
    assert_eq!(r.sleeping.len(), smp - 1, "{:?}", r.sleeping);
    assert!(r.sleeping.iter().all(|m| m == want), "{:?}", r.sleeping);
    let lat = r.latency.expect("no release latency line");
    eprintln!("[{name}] {lat}");
    assert!(
        lat.contains(&format!("over {} releases", (smp - 1) * 100)),
        "{lat}"
    );
    assert!(r.entry_state_ok, "no entry-state line");
}

#[test]
fn payload_release_park_el2_smp4() {
    sleeping_pen("pen-payload-el2-smp4", Opts::default(), "wfi+gicv2");
}

#[test]
fn payload_release_park_el1_smp2() {
    sleeping_pen(
        "pen-payload-el1-smp2",
        Opts {
            el2: false,
            smp: 2,
            ..Opts::default()
        },
        "wfi+gicv2",
    );
}

#[test]
fn payload_sleeping_pen_gicv3_el2_smp8() {
    sleeping_pen(
        "pen-payload-gicv3-el2-smp8",
        Opts {
            smp: 8,
            gic: Some(3),
            ..Opts::default()
        },
        "wfi+gicv3",
    );
}

#[test]
fn payload_sleeping_pen_gicv3_el1_smp4() {
    sleeping_pen(
        "pen-payload-gicv3-el1-smp4",
        Opts {
            el2: false,
            gic: Some(3),
            ..Opts::default()
        },
        "wfi+gicv3",
    );
}

/// Every secondary parks once WITHOUT zeroing its release word (the payload
/// breaks §5.2 step 2 on purpose): the pen must hold it UNARMED instead of
/// jumping to the stale entry again; once the payload zeroes the word the CPU
/// arms, shows PARKED, and the remaining rounds pass.
#[test]
fn payload_park_without_zeroing_is_held_unarmed() {
    let r = pass_then_poweroff(
        "pen-payload-inject-no-zero",
        Opts::default(),
        "payload.inject=no-zero",
    );
    assert_eq!(r.unarmed, 3, "one UNARMED catch per secondary");
}

/// With `cpu_method=psci` the loader hands the CPUs back to firmware and the DT
/// says "psci": the payload must fail in one clean line and still power off.
#[test]
fn payload_fails_cleanly_without_spin_table() {
    let name = "pen-payload-psci-fail";
    let dir = scratch(name);
    let img = disk(
        &dir,
        &poweroff_script("setenv cpu_method psci\n", ""),
        false,
    );
    let mut opts = Opts {
        smp: 2,
        ..Opts::default()
    };
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    let r = payload_run(&mut q);
    assert!(
        r.verdict.starts_with("FAIL ") && r.verdict.contains("enable-method \"psci\""),
        "{:?}",
        r.verdict
    );
    assert_eq!(
        r.memreserve, "none",
        "no pen reservation with cpu_method=psci"
    );
    q.expect_within("PAYLOAD: poweroff", T);
    if !q.wait_exit(T) {
        q.fail("QEMU did not power off after the failure");
    }
}

/// loader → payload (initrd = loader.bin) → loader → payload … in one QEMU run:
/// every new loader must reclaim the CPUs the previous payload left PARKED in
/// the pen, every payload passes with all CPUs, and the /memreserve/ table
/// never changes.
fn chain(name: &str, opts: Opts, cycles: usize) {
    let dir = scratch(name);
    let img = disk(&dir, CHAIN_SCRIPT, true);
    let smp = opts.smp;
    let el = if opts.el2 { 2 } else { 1 };
    let mut opts = opts;
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    let want = format!("PASS cpus={smp} rounds=100 el={el}");
    let mut first: Option<String> = None;
    for n in 0..cycles {
        q.expect_within("parkboot 0.1.0", T);
        let r = payload_run(&mut q);
        eprintln!(
            "[{name}] cycle {n}: {} | gen {:?} | {:?} | memreserve {}",
            r.verdict, r.generation, r.timing, r.memreserve
        );
        if r.verdict != want {
            q.fail(&format!(
                "cycle {n}: verdict {:?}, expected {want:?}",
                r.verdict
            ));
        }
        assert_eq!(r.ok_cpus, smp as usize - 1, "cycle {n}");
        match &first {
            None => first = Some(r.memreserve.clone()),
            Some(f) if *f != r.memreserve => q.fail(&format!(
                "cycle {n}: /memreserve/ {} differs from the first cycle's {f}",
                r.memreserve
            )),
            Some(_) => {}
        }
        q.expect_within("PAYLOAD: entering loader at ", T);
    }
    // The loader after the last payload reclaims the CPUs once more and boots the next one.
    q.expect_within("parkboot 0.1.0", T);
    q.expect_within("PAYLOAD: start", T);
    // Per-cycle time as the loaders report it: entry -> handoff (guest timer),
    // with the disk loads of payload.bin and loader.bin included.
    let mut us: Vec<u64> = q
        .transcript()
        .lines()
        .filter_map(|l| l.split("## loader entry -> handoff: ").nth(1))
        .filter_map(|v| parse_handoff(v).map(|h| h.us))
        .collect();
    us.sort();
    assert!(us.len() > cycles, "every loader reports its handoff time");
    eprintln!(
        "[{name}] loader entry -> handoff per cycle (guest us): min {} median {} max {}",
        us[0],
        us[us.len() / 2],
        us[us.len() - 1]
    );
}

#[test]
fn payload_chain_el2_smp4_50_cycles() {
    chain("pen-chain-el2-smp4", Opts::default(), 50);
}

#[test]
fn payload_chain_el1_smp2_10_cycles() {
    chain(
        "pen-chain-el1-smp2",
        Opts {
            el2: false,
            smp: 2,
            ..Opts::default()
        },
        10,
    );
}

/// Typed chain: every cycle the test picks the pen's place (`pen_addr`,
/// alternating between two addresses, gathered at booti with
/// `pen_gather=boot`), so each new loader must MOVE the CPUs from the old pen
/// into a new one and drop the old reservation. Every cycle: payload PASS
/// with every CPU, exactly one /memreserve/ (the new pen), the same loader
/// heap high-water mark, and the loader's entry → handoff time reported.
#[test]
fn payload_chain_moves_pen_every_other_cycle() {
    let name = "pen-chain-move";
    let dir = scratch(name);
    let img = disk_with(&dir, "bootdelay=-1\npen_gather=boot\n", None, true);
    let mut opts = Opts::default();
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    let places = [0x7ff0_0000u64, 0x7fe0_0000];
    let mut hwm: Option<String> = None;
    let mut times = Vec::new();
    for n in 0..12 {
        q.expect_within("parkboot 0.1.0", T);
        q.expect_within("=> ", T);
        let bd = q.cmd("bdinfo");
        let hw = bd
            .lines()
            .find(|l| l.starts_with("heap"))
            .and_then(|l| l.split("high water ").nth(1))
            .unwrap_or_else(|| q.fail("bdinfo has no heap line"))
            .to_string();
        // Cycle 0 starts from QEMU; later ones from a payload, with an old pen to read.
        if n >= 1 {
            match &hwm {
                None => hwm = Some(hw.clone()),
                Some(h) if *h != hw => q.fail(&format!("cycle {n}: heap high water {hw} != {h}")),
                Some(_) => {}
            }
        }
        let pen = places[(n / 2) % 2];
        q.cmd(&format!("setenv pen_addr {pen:x}"));
        typed_payload_with_loader(&mut q, "payload.next=loader");
        let us = handoff(&mut q).us;
        times.push(us);
        let r = payload_run(&mut q);
        eprintln!(
            "[{name}] cycle {n}: pen {pen:#x} {} memreserve {} handoff {us} us",
            r.verdict, r.memreserve
        );
        assert_eq!(r.verdict, "PASS cpus=4 rounds=100 el=2", "cycle {n}");
        assert_eq!(
            r.memreserve,
            format!("{pen:#x}+0x2000"),
            "cycle {n}: exactly one /memreserve/, the new pen"
        );
        q.expect_within("PAYLOAD: entering loader at ", T);
    }
    times.sort();
    eprintln!(
        "[{name}] loader entry -> handoff (guest us): min {} median {} max {}",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

/// Reads the next handoff line of a loader.
fn handoff(q: &mut Qemu) -> Handoff {
    q.expect_within("## loader entry -> handoff: ", T);
    let line = q.expect_within("\n", T);
    parse_handoff(&line)
        .unwrap_or_else(|| q.fail(&format!("cannot read the handoff line {line:?}")))
}

/// The in-memory chain (issue "Chain-boot forever", 5c and the per-cycle
/// measure): no disk at all. QEMU puts pristine copies of payload.bin and
/// loader.bin into RAM (`-device loader`); the DT the first loader gets has a
/// `/config/environment` node (U-Boot's ENV_IMPORT_FDT) whose bootcmd boots
/// the payload with loader.bin as its initrd, and — with `fdt set` on the DT
/// it hands on — flips `pen_addr` for the next loader every other cycle. So
/// 50 loaders in a row run by themselves: they alternately adopt the old pen
/// in place and move every CPU into a new pen at the other address.
///
/// Every cycle: the payload passes with every CPU; the /memreserve/ table is
/// exactly the one pen, at the address the cycle asked for; the loader's heap
/// high-water mark equals that of every other cycle of the same kind (adopt or
/// move). Reported: loader entry -> payload entry per cycle, in guest time
/// (both read the same counter).
#[test]
fn payload_chain_in_memory_50_cycles_moving_the_pen() {
    in_memory_chain("pen-chain-memory", 50, "start");
}

/// The same chain with `pen_gather=boot`: each loader takes the CPUs over
/// from the old pen at start and lets them wait in firmware (PSCI CPU_OFF)
/// while it runs; booti recalls them (CPU_ON) into the pen — the one it
/// adopted, or a new one where `pen_addr` says. Under QEMU TCG this keeps the
/// waiting vCPUs from spinning while the loader works.
#[test]
fn payload_chain_in_memory_cpus_rest_in_firmware() {
    in_memory_chain("pen-chain-memory-rest", 20, "boot");
}

fn in_memory_chain(name: &str, cycles: usize, pen_gather: &str) {
    let dir = scratch(name);
    let loader = loader_bin();
    let loader_len = std::fs::metadata(&loader).unwrap().len();
    let chain = &MEMORY_CHAIN;
    let vars = chain.env(loader_len, pen_gather, 10);
    let node = config_environment_node(&vars);
    let mut opts = Opts::default();
    opts.dtb = Some(edited_virt_dtb(&dir, "env", &opts, |dts| {
        dts_add_root_child(&dts, &node)
    }));
    opts.extra.extend(chain.qemu_args(&payload_bin(), &loader));
    let mut q = Qemu::start(name, &opts);
    let want = "PASS cpus=4 rounds=10 el=2";
    let name = name.to_string();
    let mut hwm_adopt: Option<u64> = None;
    let mut hwm_move: Option<u64> = None;
    let mut cycle_ms = Vec::new();
    for n in 0..cycles {
        q.expect_within("parkboot 0.1.0", T);
        q.expect_within(
            &format!(
                "env: {} variable(s) from the DT's /config/environment",
                vars.len()
            ),
            T,
        );
        if pen_gather == "boot" && n > 0 {
            q.expect_within("CPUs: 4 in DT, 3 resting in firmware until booti", T);
        }
        let pen = chain.pen_for_cycle(n);
        let h = handoff(&mut q);
        let r = payload_run(&mut q);
        let ms = r
            .entry_counter
            .map(|c| h.ms_until(c))
            .unwrap_or_else(|| q.fail("payload start line has no counter"));
        cycle_ms.push(ms);
        let kind = match n {
            0 => "first",
            _ if n % 2 == 1 => "adopt",
            _ => "move",
        };
        eprintln!(
            "[{name}] cycle {n} ({kind}): pen {pen:#x}, {}, memreserve {}, loader entry -> payload entry {ms:.1} ms (-> handoff {} us), heap high water {}",
            r.verdict, r.memreserve, h.us, h.heap_high_water
        );
        if r.verdict != want {
            q.fail(&format!(
                "cycle {n}: verdict {:?}, expected {want:?}",
                r.verdict
            ));
        }
        assert_eq!(r.ok_cpus, 3, "cycle {n}");
        if r.memreserve != format!("{pen:#x}+0x2000") {
            q.fail(&format!(
                "cycle {n}: /memreserve/ {}, expected exactly the pen at {pen:#x}",
                r.memreserve
            ));
        }
        let slot = match kind {
            "adopt" => Some(&mut hwm_adopt),
            "move" => Some(&mut hwm_move),
            _ => None,
        };
        if let Some(slot) = slot {
            match *slot {
                None => *slot = Some(h.heap_high_water),
                Some(v) if v != h.heap_high_water => q.fail(&format!(
                    "cycle {n} ({kind}): heap high water {} bytes, earlier {kind} cycles {v}",
                    h.heap_high_water
                )),
                Some(_) => {}
            }
        }
        q.expect_within("PAYLOAD: entering loader at ", T);
    }
    q.expect_within("parkboot 0.1.0", T);
    let mut sorted = cycle_ms.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "[{name}] loader entry -> payload entry over {cycles} in-memory cycles, pen_gather={pen_gather} (guest ms): min {:.1} median {:.1} max {:.1}",
        sorted[0],
        sorted[cycles / 2],
        sorted[cycles - 1]
    );
}

/// A CPU that never arrives (issue "Robustness", 3): the DT says cpu@1 waits
/// on a foreign spin-table at a reserved address, but nothing spins there
/// (QEMU keeps that CPU powered off). The loader writes the release word,
/// waits its 1 s, reports the CPU in one line and marks its node
/// `status = "fail"` in the DT it hands on; the following boot (the payload, from the disk's boot.cmd)
/// passes with the boot CPU alone and powers off.
#[test]
fn cpu_that_never_arrives_is_reported_and_failed() {
    let name = "pen-cpu-never-arrives";
    let dir = scratch(name);
    let mut opts = Opts {
        smp: 2,
        ..Opts::default()
    };
    let dtb = edited_virt_dtb(&dir, "spin", &opts, |dts| {
        let at = dts.find("cpu@1 {").expect("cpu@1 in QEMU's DT");
        let (head, tail) = dts.split_at(at);
        let tail = tail.replacen(
            "enable-method = \"psci\";",
            "enable-method = \"spin-table\";\n\t\t\tcpu-release-addr = <0x00 0x7fff0000>;",
            1,
        );
        format!("{head}{tail}").replacen(
            "/dts-v1/;",
            "/dts-v1/;\n/memreserve/ 0x7fff0000 0x1000;",
            1,
        )
    });
    opts.dtb = Some(dtb);
    let img = disk(&dir, &poweroff_script("", ""), false);
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    let banner = q.expect_within("Starting kernel", T);
    for want in [
        "CPUs: 2 in DT, 0 in pen",
        "1 missing or lost",
        "CPU 0x1 (/cpus/cpu@1): missing: did not arrive within 1000 ms",
    ] {
        if !banner.contains(want) {
            q.fail(&format!("no {want:?} in the start-up report"));
        }
    }
    let r = payload_run(&mut q);
    // The boot CPU alone: nothing to release, so no rounds.
    if r.verdict != "PASS cpus=1 rounds=0 el=2" {
        q.fail(&format!("verdict {:?} with cpu@1 left out", r.verdict));
    }
    // #17 item 6: its node is still there, failed (and the payload, like Linux, skips it).
    if !r
        .body
        .contains("PAYLOAD: ok /cpus/cpu@1: status \"fail\", skipped")
    {
        q.fail("cpu@1's node is not there with status \"fail\"");
    }
    q.expect_within("PAYLOAD: poweroff", T);
    if !q.wait_exit(T) {
        q.fail("QEMU did not power off");
    }
}

/// A payload that keeps CPUs and never returns them (issue "Robustness", 3):
/// it releases every secondary into a loop of its own (`payload.keep=1`) and
/// kexecs the loader. The new loader finds their slots RELEASED in the old
/// pen: it reports each CPU as lost in one line, never writes to their slots,
/// keeps the old pen reserved, and leaves their nodes out of the DT. The
/// prompt comes back, and a following boot works with the boot CPU alone.
#[test]
fn payload_that_keeps_cpus_leaves_them_lost_and_untouched() {
    let name = "pen-payload-keeps-cpus";
    let dir = scratch(name);
    let img = disk_with(&dir, "bootdelay=-1\n", None, true);
    let mut opts = Opts::default();
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    q.expect_within("=> ", T);
    typed_payload_with_loader(
        &mut q,
        "payload.next=loader payload.keep=1 payload.rounds=10",
    );
    let r = payload_run(&mut q);
    assert_eq!(r.verdict, "PASS cpus=4 rounds=10 el=2");
    let old_pen = r.memreserve.clone();
    let kept = q.expect_within("PAYLOAD: entering loader at ", T);
    assert_eq!(kept.matches("PAYLOAD: keeping cpu@").count(), 3, "{kept}");
    q.expect_within("parkboot 0.1.0", T);
    let banner = q.expect_within("=> ", T);
    if !banner.contains("3 missing or lost") {
        q.fail("the new loader does not report the 3 kept CPUs");
    }
    for i in 1..=3 {
        let want =
            format!("CPU {i:#x} (/cpus/cpu@{i}): lost: released to an OS that never parked it");
        if !banner.contains(&want) {
            q.fail(&format!("no one-line report {want:?}"));
        }
    }
    let cpus = q.cmd("cpus");
    assert!(cpus.contains("kept reserved"), "{cpus}");
    // A good boot afterwards: the boot CPU alone, the old pen still reserved.
    q.cmd("setenv bootargs 'payload.next=poweroff'");
    q.cmd("load virtio 0 ${kernel_addr_r} /payload.bin");
    q.send("booti ${kernel_addr_r}");
    let r = payload_run(&mut q);
    if r.verdict != "PASS cpus=1 rounds=0 el=2" {
        q.fail(&format!("verdict {:?} after the kept CPUs", r.verdict));
    }
    let (old_base, _) = old_pen.split_once('+').unwrap_or((&old_pen, ""));
    assert!(
        r.memreserve.contains(old_base),
        "the old pen {old_pen} stays reserved: {}",
        r.memreserve
    );
    q.expect_within("PAYLOAD: poweroff", T);
    if !q.wait_exit(T) {
        q.fail("QEMU did not power off");
    }
}

/// #17 item 5: a CPU released to an undefined instruction takes the exception to the pen's
/// own vectors (not to whatever VBAR the payload left): the pen records FAULTED with the ELR
/// and ESR in its state record and keeps the CPU.
#[test]
fn pen_vectors_record_a_fault_and_keep_the_cpu() {
    let r = pass_then_poweroff(
        "pen-fault-record",
        Opts::default(),
        "payload.inject=fault payload.rounds=5",
    );
    let want = "PAYLOAD: ok cpu@3 released to an undefined instruction: the pen's vectors kept it and recorded FAULTED: exception at EL2 (vector 0x200): ELR ";
    assert!(r.body.contains(want), "{}", r.body);
    assert!(r.body.contains("(EC 0x0)"), "{}", r.body);
}

/// #17 item 6: a mode-1 release (ERET to EL1, as the resident PSCI part does for an EL1 OS)
/// gives booting.rst's EL1 entry state with EL2 present: every PMU counter visible
/// (MDCR_EL2.HPMN = N), SVE and pointer authentication not trapped (`-cpu max` has both), the
/// real MIDR/MPIDR, x0 = the context.
#[test]
fn mode1_release_gives_the_el1_entry_state() {
    let r = pass_then_poweroff(
        "pen-mode1-el1",
        Opts {
            cpu: "max".into(),
            smp: 2,
            ..Opts::default()
        },
        "payload.el1=1 payload.rounds=5",
    );
    let line = r
        .body
        .lines()
        .find(|l| l.contains("entered at EL1 by a mode-1 release"))
        .unwrap_or_else(|| panic!("no EL1 entry line in {}", r.body));
    for want in [
        "x0 = context 0x5eed000000000001",
        "SVE usable",
        "PAuth keys accessible",
        "real MIDR/MPIDR",
    ] {
        assert!(line.contains(want), "{want:?} not in {line}");
    }
}

/// #17 items 1 and 2: a CPU that reaches the pen without a slot (here: it spins on a shared
/// foreign release word with CPUs that have nodes, but has none itself — as under a U-Boot
/// spin-table whose DT lists fewer CPUs) is recorded as a stray and reported; a CPU that
/// comes after the gather gave up on it is handed on with the others at booti; and a
/// `cpu_method=psci` boot, which hands every CPU of the pen back to firmware, keeps the pen's
/// /memreserve/ because the stray still runs in it.
#[test]
fn stray_cpu_is_reported_and_keeps_the_pen_reserved() {
    let name = "pen-stray";
    let dir = scratch(name);
    let img = disk_with(&dir, "bootdelay=-1\n", None, true);
    let mut opts = Opts::default();
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    q.expect_within("=> ", T);
    typed_payload_with_loader(
        &mut q,
        "payload.next=loader payload.foreign=1 payload.rounds=2",
    );
    let r = payload_run(&mut q);
    assert_eq!(r.verdict, "PASS cpus=4 rounds=2 el=2");
    let chain = q.expect_within("PAYLOAD: entering loader at ", T);
    assert!(
        chain.contains("cpu@3 (MPIDR 0x3) too, with no cpu node"),
        "{chain}"
    );
    q.expect_within("parkboot 0.1.0", T);
    let banner = q.expect_within("=> ", T);
    // cpu@1 comes 1.5 s after the release: missing at the gather, WAITING by booti
    for want in [
        "CPUs: 3 in DT, 1 in pen",
        "CPU 0x1 (/cpus/cpu@1): missing: did not arrive within 1000 ms",
    ] {
        assert!(banner.contains(want), "{want:?} not in {banner}");
    }
    let cpus = q.cmd("cpus");
    let want = "stray 0x00000003: MPIDR 0x3: no slot for it (arrived 1 time(s), last at EL2 through pen_entry)";
    if !cpus.contains(want) {
        q.fail(&format!("no stray line in `cpus`:\n{cpus}"));
    }
    let pen = cpus
        .split(" in pen at ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| q.fail(&format!("no pen address in `cpus`:\n{cpus}")))
        .to_string();
    q.cmd("setenv cpu_method psci");
    q.cmd("setenv bootargs 'payload.next=poweroff'");
    q.cmd("load virtio 0 ${kernel_addr_r} /payload.bin");
    q.cmd("sleep 1"); // cpu@1 has arrived by now (1.5 s after the gather began)
    q.send("booti ${kernel_addr_r}");
    let late = q.expect_within("Starting kernel", T);
    assert!(
        late.contains("CPUs: CPU 0x1 (/cpus/cpu@1) arrived late: in the pen now"),
        "{late}"
    );
    let r = payload_run(&mut q);
    assert!(
        r.verdict.starts_with("FAIL ") && r.verdict.contains("enable-method \"psci\""),
        "{:?}",
        r.verdict
    );
    assert!(
        r.memreserve.contains(&format!("{pen}+0x2000")),
        "the pen {pen} holding the stray must stay reserved: {}",
        r.memreserve
    );
    q.expect_within("PAYLOAD: poweroff", T);
    if !q.wait_exit(T) {
        q.fail("QEMU did not power off");
    }
}

/// #17 item 3: with `cpu_method=psci` the CPUs go to firmware only after the last step of
/// booti that can fail. An Image.gz whose CRC is wrong fails at the end of inflation: the boot
/// fails in one line, every CPU is still in the pen, and a spin-table boot right after gets
/// them all.
#[test]
fn psci_boot_that_fails_late_leaves_the_cpus_in_the_pen() {
    let name = "pen-psci-late-failure";
    let dir = scratch(name);
    let payload = std::fs::read(payload_bin()).unwrap();
    let gz = dir.join("payload.gz");
    let out = std::process::Command::new("gzip")
        .arg("-9nc")
        .arg(payload_bin())
        .output()
        .expect("gzip (Debian package gzip)");
    assert!(out.status.success());
    let mut bad = out.stdout;
    let n = bad.len();
    bad[n - 8] ^= 0xff; // the CRC-32 in the trailer
    std::fs::write(&gz, &bad).unwrap();
    let img = dir.join("disk.img");
    make_fat_disk(
        &img,
        &DiskSpec {
            table: Table::Mbr,
            fat: 32,
            size_mib: 40,
            files: vec![
                (
                    "/parkboot.env".to_string(),
                    Source::Bytes(b"bootdelay=-1\n".to_vec()),
                ),
                ("/payload.bin".to_string(), Source::Bytes(payload)),
                ("/bad.gz".to_string(), Source::Host(gz)),
            ],
            label: None,
        },
    )
    .unwrap();
    let mut opts = Opts::default();
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    q.expect_within("=> ", T);
    q.cmd("setenv cpu_method psci");
    q.cmd("load virtio 0 ${kernel_addr_r} /bad.gz");
    let out = q.cmd("booti ${kernel_addr_r}");
    assert!(
        out.trim()
            .starts_with("booti: Image.gz: gzip CRC32 mismatch: trailer ")
            && out.trim().lines().count() == 1,
        "{out:?}"
    );
    let cpus = q.cmd("cpus");
    assert_eq!(cpus.matches(" parked ").count(), 3, "{cpus}");
    assert!(!cpus.contains(" off "), "{cpus}");
    q.cmd("setenv cpu_method spin-table");
    q.cmd("setenv bootargs 'payload.next=poweroff payload.rounds=5'");
    q.cmd("load virtio 0 ${kernel_addr_r} /payload.bin");
    q.send("booti ${kernel_addr_r}");
    let r = payload_run(&mut q);
    assert_eq!(r.verdict, "PASS cpus=4 rounds=5 el=2", "{}", r.body);
    q.expect_within("PAYLOAD: poweroff", T);
    if !q.wait_exit(T) {
        q.fail("QEMU did not power off");
    }
}

/// #17 item 11: a payload that chains into the next loader with `payload.handoff=<how>` broken
/// (tests/payload: `Handoff`), the next loader stopping at its prompt (`bootdelay=-1`). Returns
/// the running QEMU, what the payload printed about what it broke, and the new loader's
/// output from its banner to the prompt.
fn bad_handoff(name: &str, how: &str) -> (Qemu, String, String) {
    let dir = scratch(name);
    let img = disk_with(&dir, "bootdelay=-1\n", None, true);
    let mut opts = Opts::default();
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    q.expect_within("=> ", T);
    typed_payload_with_loader(
        &mut q,
        &format!("payload.next=loader payload.rounds=2 payload.handoff={how}"),
    );
    let r = payload_run(&mut q);
    assert_eq!(r.verdict, "PASS cpus=4 rounds=2 el=2");
    let broke = q.expect_within("PAYLOAD: entering loader at ", T);
    q.expect_within("\nparkboot 0.1.0 ", T);
    let banner = q.expect_within("=> ", T);
    assert_eq!(q.cmd("echo alive"), "alive", "the prompt must be back");
    (q, broke, banner)
}

/// The address after `key` in `text` (e.g. "at " in "... at 0x7ff00000: ...").
fn addr_after(text: &str, key: &str) -> u64 {
    let v = text
        .split(key)
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_hexdigit() && c != 'x').next())
        .unwrap_or_else(|| panic!("no {key:?} in {text}"));
    qemu_harness::hex(v)
}

/// #17 item 11: a kernel scribbled over the old pen's header between two loaders (its CPUs
/// still spin in the pen's code). The next loader must not trust, write or drop that pen: one
/// line names the region and the reason, every CPU the DT put there is reported lost for it,
/// the region stays claimed (a write there is refused) and stays byte-for-byte as the scribbler
/// left it, and the prompt comes back.
#[test]
fn scribbled_pen_between_loaders_is_left_alone() {
    let (mut q, broke, banner) = bad_handoff("pen-scribbled", "scribble-pen");
    let base = addr_after(&broke, "scribbled the pen header at ");
    // What the header now is: magic, version 1, header size 128, then 0xa5.
    let mut head = Vec::new();
    head.extend_from_slice(b"PKBTPEN1");
    head.extend_from_slice(&1u32.to_le_bytes());
    head.extend_from_slice(&128u32.to_le_bytes());
    head.resize(128, 0xa5);
    let computed = qemu_harness::crc32(&head[..124]);
    let why = format!("pen header checksum 0xa5a5a5a5 does not match {computed:#010x}");
    let region =
        format!("  note: reserved region {base:#x}+0x2000 is not a valid pen ({why}); left alone");
    let cpus = q.cmd("cpus");
    if !cpus.lines().any(|l| l == region) {
        q.fail(&format!("no {region:?} in `cpus`:\n{cpus}"));
    }
    for cpu in 1..4 {
        let want = format!(
            "CPU {cpu:#x} (/cpus/cpu@{cpu}): lost: pen at {base:#x} does not validate: {why}"
        );
        if !banner.contains(&want) {
            q.fail(&format!("no {want:?} in the banner:\n{banner}"));
        }
    }
    assert!(
        banner.contains("CPUs: 4 in DT, 0 in pen"),
        "no CPU can be in the new pen:\n{banner}"
    );
    // Still claimed, unchanged.
    let claims = q.claims();
    let end = base + 0x2000;
    assert!(
        claims.contains(&format!("{base:#012x}..{end:#012x}  /memreserve/ #")),
        "the old pen must stay claimed:\n{claims}"
    );
    assert_eq!(
        q.crc(base, 128),
        qemu_harness::crc32(&head),
        "the header changed"
    );
    // No CPU of it was released: every secondary's release word is still 0 (the CPUs in it
    // update their state records, so the pen as a whole keeps changing).
    let release = r_release_words(&q.transcript());
    assert_eq!(release.len(), 3, "{release:?}");
    for &a in &release {
        assert_eq!(
            q.crc(a, 8),
            qemu_harness::crc32(&[0; 8]),
            "release word {a:#x}"
        );
    }
    let out = q.cmd(&format!("mw {:x} 0", base + 0x100));
    assert!(
        out.starts_with(&format!("mw: refused: {:#x}..", base + 0x100))
            && out.contains("/memreserve/ #0"),
        "{out}"
    );
    assert_eq!(
        q.crc(base, 128),
        qemu_harness::crc32(&head),
        "the header changed"
    );
}

/// The secondaries' `cpu-release-addr`s as the (first) payload listed them.
fn r_release_words(t: &str) -> Vec<u64> {
    let line = t
        .lines()
        .find(|l| l.contains("PAYLOAD: ok cpu-release-addr"))
        .unwrap_or("");
    line.split_whitespace()
        .filter(|w| w.starts_with("cpu@") && !w.starts_with("cpu@0="))
        .filter_map(|w| w.split_once('=').map(|(_, v)| qemu_harness::hex(v)))
        .collect()
}

/// #17 item 11: a DTB at entry whose `totalsize` is implausible (bigger than any DT the loader
/// accepts) or too small for its own blocks: one line says so, the loader runs on its board's
/// defaults, and the prompt comes back.
#[test]
fn dtb_at_entry_with_bogus_totalsize_is_one_line() {
    for (how, why) in [
        ("dtb-totalsize=0x7fff0000", "implausible totalsize 0x7fff0000".to_string()),
        (
            "dtb-totalsize=0x100",
            "malformed device tree: FDT header has failed validation: strings offset out of bounds at offset 12".to_string(),
        ),
    ] {
        let (q, broke, banner) = bad_handoff(&format!("dtb-totalsize-{how}"), how);
        assert!(broke.contains("totalsize set to"), "{broke}");
        let line = banner
            .lines()
            .find(|l| l.starts_with("error: no valid device tree at x0 ("))
            .unwrap_or_else(|| q.fail(&format!("no DT error line in:\n{banner}")));
        eprintln!("[{how}] {line}");
        assert_eq!(
            line,
            format!("error: no valid device tree at x0 ({why}); using board qemu-virt defaults")
        );
    }
}

/// #17 item 11: x0 points into the next loader's own footprint (past loader.bin's file, where
/// its .bss, stack and heap go): the loader refuses the blob unread with one line naming both,
/// and comes up on its board's defaults.
#[test]
fn dtb_at_entry_inside_the_loader_is_refused() {
    let (q, broke, banner) = bad_handoff("dtb-in-loader", "dtb-in-loader");
    let at = addr_after(&broke, "footprint at ");
    let base = addr_after(&banner, ") at ");
    let kib = banner
        .split(" KiB in place")
        .next()
        .and_then(|t| t.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| q.fail(&format!("no footprint in the banner:\n{banner}")));
    let want = format!(
        "error: no valid device tree at x0 (x0 {at:#x} is inside the loader's footprint {base:#x}..{:#x}); using board qemu-virt defaults",
        base + kib * 1024
    );
    if !banner.lines().any(|l| l == want) {
        q.fail(&format!("no {want:?} in:\n{banner}"));
    }
}
