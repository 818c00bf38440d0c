extern crate std;

use super::*;
use alloc::string::ToString;
use alloc::vec;
use loader::dt::{Cpu, Status};
use loader::pen::{PenCode, PenLayout};
use std::string::String as StdString;

const PEN: u64 = 0x4800_0000;

fn cpu(n: u64, method: Option<EnableMethod>, release: Prop64, park: Prop64) -> Cpu {
    Cpu {
        path: format!("/cpus/cpu@{n}"),
        mpidr: n,
        enable_method: method,
        release_addr: release,
        park_addr: park,
        status: Status::Okay,
    }
}

/// A pen for `n` CPUs (MPIDRs 0..n) at `PEN`, every secondary WAITING.
fn pen(n: u64, el: u8) -> (Vec<u8>, loader::pen::PenHeader) {
    let code = vec![0u8; 640];
    let layout = PenLayout::new(n as usize, code.len(), el).unwrap();
    let mut mem = vec![0u8; layout.total_size as usize];
    let mpidrs: Vec<u64> = (0..n).collect();
    let h = layout
        .build(
            &mut mem,
            PEN,
            &PenCode {
                bytes: &code,
                entry: 0,
                park: 8,
            },
            &mpidrs,
        )
        .unwrap();
    for i in 1..n as usize {
        let st = (h.state_addr(i).unwrap() - PEN) as usize;
        mem[st..st + 8].copy_from_slice(&1u64.to_le_bytes()); // WAITING
        mem[st + 8..st + 16].copy_from_slice(&(i as u64).to_le_bytes()); // mpidr_seen
    }
    (mem, h)
}

/// The DT a correct loader hands on for `n` CPUs through the pen `h`.
fn good_dt(n: u64, h: &loader::pen::PenHeader) -> DtInfo {
    DtInfo {
        cpus: (0..n)
            .map(|i| {
                cpu(
                    i,
                    Some(EnableMethod::SpinTable),
                    Prop64::Value(h.slot_release_addr(i as usize).unwrap()),
                    Prop64::Value(h.park_addr()),
                )
            })
            .collect(),
        memreserve: vec![Region::new(0x4000_0000, 0x1000), h.region()],
        memory: vec![Region::new(0x4000_0000, 0x4000_0000)],
        ..DtInfo::default()
    }
}

fn run_dt(info: &DtInfo) -> (Result<SpinTable, String>, Vec<StdString>) {
    let mut lines = Vec::new();
    let r = check_dt(info, 0, &mut |l| lines.push(l.to_string()));
    (r, lines)
}

#[test]
fn good_dt_and_pen_pass_with_one_line_per_check() {
    let (mem, h) = pen(4, 2);
    let info = good_dt(4, &h);
    let (r, lines) = run_dt(&info);
    let st = r.unwrap();
    assert_eq!(st.cpus.len(), 4);
    assert_eq!(st.pen, h.region());
    assert_eq!(st.park, h.park_addr());
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].contains("spin-table"));
    assert!(lines[3].contains("exactly one /memreserve/"));
    let img = PenImage::parse(&mem, PEN).unwrap();
    let mut more = Vec::new();
    check_pen(&img, &st, 0, 2, &mut |l| more.push(l.to_string())).unwrap();
    assert_eq!(more.len(), 2, "{more:?}");
    assert!(more[1].contains("3 secondaries held"), "{more:?}");
    // Wrong EL.
    assert!(check_pen(&img, &st, 0, 1, &mut |_| {})
        .unwrap_err()
        .contains("entry_el 2"));
}

#[test]
fn psci_dt_fails_on_the_enable_method() {
    let (_, h) = pen(2, 2);
    let mut info = good_dt(2, &h);
    for c in &mut info.cpus {
        c.enable_method = Some(EnableMethod::Psci);
        c.release_addr = Prop64::Absent;
        c.park_addr = Prop64::Absent;
    }
    let (r, lines) = run_dt(&info);
    assert_eq!(
        r.unwrap_err(),
        "/cpus/cpu@0: enable-method \"psci\", expected \"spin-table\""
    );
    assert!(lines.is_empty());
}

#[test]
fn one_cell_duplicate_and_missing_properties_fail() {
    let (_, h) = pen(3, 2);
    let mut info = good_dt(3, &h);
    info.cpus[1].release_addr = Prop64::OneCell(0x1234);
    assert!(run_dt(&info).0.unwrap_err().contains("must be two cells"));

    let mut info = good_dt(3, &h);
    info.cpus[2].release_addr = info.cpus[1].release_addr;
    assert!(run_dt(&info).0.unwrap_err().contains("is also cpu@1's"));

    let mut info = good_dt(3, &h);
    info.cpus[2].park_addr = Prop64::Absent;
    assert!(run_dt(&info).0.unwrap_err().contains("no cpu-park-addr"));

    let mut info = good_dt(3, &h);
    info.cpus[2].park_addr = Prop64::Value(h.park_addr() + 4);
    assert!(run_dt(&info).0.unwrap_err().contains("differs"));

    let mut info = good_dt(3, &h);
    info.cpus.remove(0);
    assert!(run_dt(&info).0.unwrap_err().contains("boot CPU"));
}

#[test]
fn memreserve_must_be_exactly_one_covering_entry() {
    let (_, h) = pen(2, 2);
    // Missing.
    let mut info = good_dt(2, &h);
    info.memreserve.retain(|r| *r != h.region());
    assert!(run_dt(&info).0.unwrap_err().contains("no /memreserve/"));
    // Duplicated (a loader that adds one per boot).
    let mut info = good_dt(2, &h);
    info.memreserve.push(h.region());
    assert!(run_dt(&info)
        .0
        .unwrap_err()
        .contains("2 /memreserve/ entries"));
    // Overlapping second entry.
    let mut info = good_dt(2, &h);
    info.memreserve.push(Region::new(PEN + 0x800, 0x1000));
    assert!(run_dt(&info).0.unwrap_err().contains("covered by 2"));
    // Too small to hold the park address.
    let mut info = good_dt(2, &h);
    let last = info.memreserve.len() - 1;
    info.memreserve[last] = Region::new(PEN + 0x200, 0xe00);
    let e = run_dt(&info).0.unwrap_err();
    assert!(e.contains("outside the pen"), "{e}");
}

#[test]
fn pen_state_and_release_words_are_checked() {
    let (mut mem, h) = pen(3, 2);
    let info = good_dt(3, &h);
    let st = run_dt(&info).0.unwrap();
    // A secondary still RELEASED (an OS never gave it back).
    let s2 = (h.state_addr(2).unwrap() - PEN) as usize;
    mem[s2..s2 + 8].copy_from_slice(&2u64.to_le_bytes());
    let img = PenImage::parse(&mem, PEN).unwrap();
    let e = check_pen(&img, &st, 0, 2, &mut |_| {}).unwrap_err();
    assert!(e.starts_with("cpu@2: pen status RELEASED"), "{e}");
    // Held, but the release word is not 0.
    mem[s2..s2 + 8].copy_from_slice(&3u64.to_le_bytes());
    let r2 = (h.slot_release_addr(2).unwrap() - PEN) as usize;
    mem[r2..r2 + 8].copy_from_slice(&0x4008_0000u64.to_le_bytes());
    let img = PenImage::parse(&mem, PEN).unwrap();
    let e = check_pen(&img, &st, 0, 2, &mut |_| {}).unwrap_err();
    assert!(e.contains("release word 0x40080000 is not 0"), "{e}");
    // The boot CPU's own slot is not checked.
    mem[r2..r2 + 8].fill(0);
    let s0 = (h.state_addr(0).unwrap() - PEN) as usize;
    mem[s0..s0 + 8].copy_from_slice(&2u64.to_le_bytes());
    let img = PenImage::parse(&mem, PEN).unwrap();
    check_pen(&img, &st, 0, 2, &mut |_| {}).unwrap();
    // DT release address not the slot's.
    let mut st2 = st.clone();
    st2.cpus[1].release += 64;
    assert!(check_pen(&img, &st2, 0, 2, &mut |_| {})
        .unwrap_err()
        .contains("is not its pen slot's release word"));
}

#[test]
fn bootargs() {
    assert_eq!(parse_bootargs(None).unwrap(), Args::default());
    let a = parse_bootargs(Some(
        "console=ttyAMA0 payload.next=loader payload.rounds=250",
    ))
    .unwrap();
    assert_eq!(a.next, Next::Loader);
    assert_eq!(a.rounds, 250);
    assert_eq!(
        parse_bootargs(Some("payload.next=poweroff")).unwrap().next,
        Next::Poweroff
    );
    assert!(parse_bootargs(Some("payload.next=reboot")).is_err());
    assert!(
        parse_bootargs(Some("payload.inject=no-zero"))
            .unwrap()
            .inject_no_zero
    );
    assert!(parse_bootargs(Some("payload.inject=other")).is_err());
    assert!(
        parse_bootargs(Some("payload.inject=fault"))
            .unwrap()
            .inject_fault
    );
    assert!(parse_bootargs(Some("payload.el1=1")).unwrap().el1_entry);
    assert!(parse_bootargs(Some("payload.el1=2")).is_err());
    assert!(parse_bootargs(Some("payload.foreign=1")).unwrap().foreign);
    assert!(parse_bootargs(Some("payload.foreign=x")).is_err());
    assert_eq!(
        parse_bootargs(Some("payload.handoff=scribble-pen"))
            .unwrap()
            .handoff,
        Handoff::ScribblePen
    );
    assert_eq!(
        parse_bootargs(Some("payload.handoff=dtb-totalsize=0x7fff0000"))
            .unwrap()
            .handoff,
        Handoff::DtbTotalsize(0x7fff_0000)
    );
    assert_eq!(
        parse_bootargs(Some("payload.handoff=dtb-in-loader"))
            .unwrap()
            .handoff,
        Handoff::DtbInLoader
    );
    assert!(parse_bootargs(Some("payload.handoff=dtb-totalsize=zz")).is_err());
    assert!(parse_bootargs(Some("payload.handoff=other")).is_err());
    assert!(parse_bootargs(Some("payload.keep=1")).unwrap().keep);
    assert!(!parse_bootargs(Some("payload.keep=0")).unwrap().keep);
    assert!(parse_bootargs(Some("payload.keep=yes")).is_err());
    assert!(parse_bootargs(Some("payload.rounds=0")).is_err());
    assert!(parse_bootargs(Some("payload.rounds=x")).is_err());
    assert_eq!(
        parse_bootargs(Some("payload.nextx=1 foo")).unwrap(),
        Args::default()
    );
}

#[test]
fn entry_records() {
    let c = SpinCpu {
        name: "cpu@1".into(),
        mpidr: 1,
        release: 0x4800_0340,
    };
    let good = EntryRecord {
        entries: 7,
        mpidr: 1,
        el: 2,
        regs: [0; 4],
        entry_ticks: 0,
        timer_ctl: 0,
        gic_bits: GicBits::CHECKED,
        wakes: 0,
    };
    check_entry(&c, &good, 7, 2).unwrap();
    assert!(check_entry(&c, &good, 8, 2)
        .unwrap_err()
        .contains("7 entries"));
    assert!(check_entry(&c, &good, 7, 1).unwrap_err().contains("EL2"));
    let bad = EntryRecord {
        regs: [0, 0, 0x1234, 0],
        ..good
    };
    assert!(check_entry(&c, &bad, 7, 2).unwrap_err().contains("0x1234"));
    let other = EntryRecord { mpidr: 2, ..good };
    assert!(check_entry(&c, &other, 7, 2)
        .unwrap_err()
        .contains("MPIDR 0x2"));
}

#[test]
fn round_states() {
    use SlotStatus::*;
    // base parks 10, round 3.
    assert_eq!(round_state(3, Parked, 13, 3, 10, false), RoundState::Done);
    assert_eq!(
        round_state(2, Released, 12, 3, 10, false),
        RoundState::Pending
    );
    assert_eq!(
        round_state(3, Released, 12, 3, 10, false),
        RoundState::Pending
    ); // recorded, not parked yet
    assert_eq!(
        round_state(2, Parked, 12, 3, 10, false),
        RoundState::Pending
    ); // previous park still showing
    assert_eq!(
        round_state(3, Unarmed, 13, 3, 10, false),
        RoundState::Broken
    );
    assert_eq!(
        round_state(3, Unarmed, 13, 3, 10, true),
        RoundState::Pending
    );
    assert_eq!(
        round_state(3, Refused, 13, 3, 10, false),
        RoundState::Broken
    );
    assert_eq!(round_state(4, Parked, 13, 3, 10, false), RoundState::Broken);
    assert_eq!(round_state(3, Parked, 14, 3, 10, false), RoundState::Broken);
}

#[test]
fn chain_destination() {
    const M: u64 = 1 << 20;
    let mem = [Region::new(0x4000_0000, 1024 * M)];
    // Payload at 0x4400_0000 (3 MiB), initrd at 0x4800_0000 (300 KiB), DT at 0x4820_0000, pen high.
    let payload = Region::new(0x4400_0000, 3 * M);
    let initrd = Region::new(0x4800_0000, 300 * 1024);
    let dt = Region::new(0x4820_0000, 0x2000);
    let pen = Region::new(0x7fff_f000, 0x1000);
    let avoid = [payload, initrd, dt, pen];
    let above = initrd.end().max(payload.end());
    // 5 MiB footprint: 0x4840_0000 is the first 2 MiB boundary above the DT.
    assert_eq!(
        choose_chain_dest(&mem, &avoid, 5 * M, CHAIN_ALIGN, above),
        Some(0x4840_0000)
    );
    // No room above: falls back to the lowest free slot.
    let small = [Region::new(0x4000_0000, 0x0840_0000 + 4 * M)];
    assert_eq!(
        choose_chain_dest(&small, &avoid, 5 * M, CHAIN_ALIGN, above),
        Some(0x4000_0000)
    );
    // Nothing fits.
    let tiny = [Region::new(0x4000_0000, 4 * M)];
    assert_eq!(
        choose_chain_dest(&tiny, &avoid, 5 * M, CHAIN_ALIGN, 0),
        None
    );
    // Several banks, unsorted.
    let banks = [
        Region::new(0x1_0000_0000, 64 * M),
        Region::new(0x4000_0000, 0x0840_0000),
    ];
    assert_eq!(
        choose_chain_dest(&banks, &avoid, 5 * M, CHAIN_ALIGN, above),
        Some(0x1_0000_0000)
    );
}

#[test]
fn image_headers() {
    let mut h = vec![0u8; 64];
    assert!(image_footprint(&h).is_err());
    h[56..60].copy_from_slice(b"ARM\x64");
    h[16..24].copy_from_slice(&0x50_0000u64.to_le_bytes());
    assert_eq!(image_footprint(&h), Ok(0x50_0000));
    h[8..16].copy_from_slice(&0x8_0000u64.to_le_bytes());
    assert!(image_footprint(&h).is_err());
    assert!(image_footprint(&h[..10]).is_err());
}

#[test]
fn output_lines() {
    assert_eq!(memreserve_text(&[]), "none");
    assert_eq!(
        memreserve_text(&[
            Region::new(0x4000_0000, 0x1000),
            Region::new(0x7fff_f000, 0x1000)
        ]),
        "0x40000000+0x1000,0x7ffff000+0x1000"
    );
    assert_eq!(
        verdict_pass(4, 100, 2),
        "PAYLOAD: VERDICT PASS cpus=4 rounds=100 el=2"
    );
    assert_eq!(verdict_fail("a\nb"), "PAYLOAD: VERDICT FAIL a b");
    assert_eq!(
        timing_line(3, 100, 123_456, 9_000),
        "PAYLOAD: rounds: 3 cpus x 100 in 123456 us, avg 1234.56 us/round, 411.52 us per release+park, slowest 9000 us"
    );
}

#[test]
fn entry_state_must_show_no_pen_wakeup_state() {
    let c = SpinCpu {
        name: "cpu@1".into(),
        mpidr: 1,
        release: 0x8000_0000,
    };
    let good = EntryRecord {
        entries: 1,
        mpidr: 1,
        el: 2,
        regs: [0; 4],
        entry_ticks: 0,
        timer_ctl: 0,
        gic_bits: GicBits::CHECKED,
        wakes: 0,
    };
    assert_eq!(check_entry_state(&c, &good, 1), Ok(()));
    // ISTATUS alone (a timer that fired while disabled) is fine; ENABLE is not.
    let r = EntryRecord {
        timer_ctl: 4,
        ..good
    };
    assert_eq!(check_entry_state(&c, &r, 1), Ok(()));
    let r = EntryRecord {
        timer_ctl: 5,
        ..good
    };
    assert_eq!(
        check_entry_state(&c, &r, 3).unwrap_err(),
        "cpu@1: entry 3 with its timer enabled (CTL 0x5)"
    );
    let r = EntryRecord {
        gic_bits: GicBits::CHECKED | GicBits::TIMER_ENABLED | GicBits::PMR_SET,
        ..good
    };
    assert_eq!(
        check_entry_state(&c, &r, 2).unwrap_err(),
        "cpu@1: entry 2 with pen GIC state left: timer interrupt enabled, priority mask set"
    );
}

#[test]
fn release_latency_verdict() {
    let mut l = LatencyStats::default();
    assert!(l.verdict(1000).is_ok());
    l.us = (1..=100).collect();
    l.wakes = vec![1; 100];
    assert_eq!(l.summary(), (50, 90, 100));
    assert!(l.verdict(0).is_ok());
    assert!(l.verdict(50).is_ok());
    let e = l.verdict(49).unwrap_err();
    assert!(e.ends_with("over the 49 us bound"), "{e}");
    // A few slow outliers do not fail; a slow majority does.
    l.us = vec![300; 95];
    l.us.extend([50_000; 5]);
    assert!(l.verdict(1000).is_ok());
    l.us = vec![25_000; 100];
    assert!(l.verdict(1000).is_err());
    // Releases the CPU only saw after several wake-ups fail beyond 5 %.
    l.us = vec![300; 100];
    l.wakes = vec![1; 94];
    l.wakes.extend([3; 6]);
    let e = l.verdict(1000).unwrap_err();
    assert!(e.contains("6 needed more than 2 wake-ups"), "{e}");
    l.wakes.truncate(95);
    assert!(l.verdict(1000).is_ok());
}

#[test]
fn wait_and_latency_bootargs() {
    let a = parse_bootargs(Some("payload.wait=sleep payload.max_release_us=1000")).unwrap();
    assert!(a.wait_sleep);
    assert_eq!(a.max_release_us, 1000);
    assert!(parse_bootargs(Some("payload.wait=nap"))
        .unwrap_err()
        .contains("payload.wait=nap"));
    assert!(parse_bootargs(Some("payload.max_release_us=x"))
        .unwrap_err()
        .contains("payload.max_release_us=x"));
}

#[test]
fn el1_entry_report() {
    let want = El1Want {
        context: 0x5eed_0001,
        pmu_n: 6,
        sve: true,
        pauth: true,
        midr: 0x410f_d070,
        mpidr: 0x8000_0001,
    };
    let good = El1Report {
        done: 1,
        x0: 0x5eed_0001,
        el: 1,
        pmu_n: 6,
        sve_vl: 256,
        pauth: 1,
        midr: 0x410f_d070,
        mpidr: 0x8000_0001,
    };
    let line = check_el1_entry("cpu@1", &good, &want).unwrap();
    assert!(
        line.contains("x0 = context 0x5eed0001") && line.contains("SVE"),
        "{line}"
    );
    let bad = |f: &dyn Fn(&mut El1Report)| {
        let mut r = good;
        f(&mut r);
        check_el1_entry("cpu@1", &r, &want).unwrap_err()
    };
    assert!(bad(&|r| r.el = 2).contains("EL2"));
    assert!(bad(&|r| r.x0 = 0).contains("x0"));
    assert!(bad(&|r| r.pmu_n = 0).contains("PMCR_EL0.N"));
    assert!(bad(&|r| r.sve_vl = u64::MAX).contains("SVE"));
    assert!(bad(&|r| r.pauth = u64::MAX).contains("pointer authentication"));
    assert!(bad(&|r| r.mpidr = 0x8000_0000).contains("MPIDR"));
    // without the features nothing is asked of them
    let plain = El1Want {
        sve: false,
        pauth: false,
        ..want
    };
    let r = El1Report {
        sve_vl: u64::MAX,
        pauth: u64::MAX,
        ..good
    };
    check_el1_entry("cpu@1", &r, &plain).unwrap();
}

#[test]
fn fault_record() {
    use loader::pen::{SlotState, SlotStatus};
    let st = SlotState {
        status: SlotStatus::Faulted,
        mpidr_seen: 3,
        entries: 1,
        parks: 100,
        releases: 101,
        last_entry: 0x4821_0040,
        el: 2 | 4 << 8 | 0x0200_0000 << 32,
        wakes: 0,
        wait: loader::wake::WaitMethod::Unknown,
        gic_target: 0,
    };
    let line = check_fault("cpu@3", &st, 0x4821_0040, 2).unwrap();
    assert!(line.contains("FAULTED"), "{line}");
    assert!(check_fault("cpu@3", &st, 0x4821_0044, 2)
        .unwrap_err()
        .contains("ELR"));
    let other = SlotState {
        status: SlotStatus::Released,
        ..st
    };
    assert!(check_fault("cpu@3", &other, 0x4821_0040, 2)
        .unwrap_err()
        .contains("RELEASED"));
}

#[test]
fn psci_probe_bootarg_and_lines() {
    assert!(
        parse_bootargs(Some("payload.psci=probe"))
            .unwrap()
            .psci_probe
    );
    assert!(!parse_bootargs(None).unwrap().psci_probe);
    assert_eq!(
        parse_bootargs(Some("payload.psci=yes")).unwrap_err(),
        "bootargs: payload.psci=yes: expected probe"
    );
    assert_eq!(
        psci_probe_line("CPU_ON unknown MPIDR", -2, -2).unwrap(),
        "psci CPU_ON unknown MPIDR: INVALID_PARAMETERS"
    );
    assert_eq!(
        psci_probe_line("CPU_OFF last CPU", 0, -3).unwrap_err(),
        "psci CPU_OFF last CPU: returned SUCCESS (0), expected DENIED (-3)"
    );
    assert_eq!(psci_code_name(0x10001), "0x10001");
}
