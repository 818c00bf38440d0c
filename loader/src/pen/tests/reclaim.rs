//! Reclaim planning.

use super::*;

pub(super) fn cpu(mpidr: u64, method: Option<EnableMethod>, rel: Prop64) -> Cpu {
    Cpu {
        path: format!("/cpus/cpu@{mpidr:x}"),
        mpidr,
        enable_method: method,
        release_addr: rel,
        park_addr: Prop64::Absent,
        status: Status::Okay,
    }
}

fn spin(mpidr: u64, rel: u64) -> Cpu {
    cpu(mpidr, Some(EnableMethod::SpinTable), Prop64::Value(rel))
}

/// Physical memory made of segments.
pub(super) struct Phys(pub(super) Vec<(u64, Vec<u8>)>);
impl Phys {
    pub(super) fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.0.iter().find_map(|(b, v)| {
            let off = usize::try_from(addr.checked_sub(*b)?).ok()?;
            v.get(off..off.checked_add(len)?).map(<[u8]>::to_vec)
        })
    }
}

fn env(psci: bool) -> ReclaimEnv<'static> {
    ReclaimEnv {
        current_mpidr: 0,
        current_el: 2,
        psci,
        our_code: None,
    }
}

/// An old pen at BASE for CPUs 0..4 with the given statuses of CPUs 1..4.
pub(super) fn old_pen(statuses: [SlotStatus; 3]) -> (Vec<u8>, PenHeader) {
    let (mut v, h) = built(BASE, &[0, 1, 2, 3], 2);
    for (k, s) in statuses.into_iter().enumerate() {
        if s != SlotStatus::Empty {
            sim_set(&mut v, &h, k + 1, s);
        }
    }
    (v, h)
}

pub(super) fn dt_with(cpus: Vec<Cpu>, memreserve: Vec<Region>) -> DtInfo {
    DtInfo {
        cpus,
        memreserve,
        ..DtInfo::default()
    }
}

#[test]
fn plan_takes_over_held_cpus_and_drops_the_old_pen() {
    let (v, h) = old_pen([SlotStatus::Waiting, SlotStatus::Parked, SlotStatus::Unarmed]);
    let r = |i| h.slot_release_addr(i).unwrap();
    let dt = dt_with(
        vec![spin(0, r(0)), spin(1, r(1)), spin(2, r(2)), spin(3, r(3))],
        vec![Region::new(0x4000_0000, 0x1000), h.region()],
    );
    let mem = Phys(vec![(BASE, v.clone())]);
    let c = code_bytes();
    let e = ReclaimEnv {
        our_code: Some(&c),
        ..env(false)
    };
    let plan = plan_reclaim(&dt, &e, |a, l| mem.read(a, l));
    assert_eq!(plan.cpus[0].action, CpuAction::Boot);
    for (i, st) in [
        (1, SlotStatus::Waiting),
        (2, SlotStatus::Parked),
        (3, SlotStatus::Unarmed),
    ] {
        assert_eq!(
            plan.cpus[i].action,
            CpuAction::TakeOverFromPen {
                old_pen_base: BASE,
                release_addr: r(i),
                status: st
            }
        );
    }
    assert!(plan.boot_cpu_in_dt);
    assert_eq!(plan.old_pens.len(), 1);
    let p = &plan.old_pens[0];
    assert_eq!(p.to_move, [1, 2, 3]);
    assert!(p.blockers.is_empty());
    assert!(p.same_code);
    assert_eq!(plan.next_generation, 2);
    assert!(!p.droppable_after(&[1, 2], &[]));
    assert!(p.droppable_after(&[1, 2, 3], &[]));
    assert_eq!(plan.droppable(&[1, 2, 3], &[]), [h.region()]);
    assert_eq!(plan.new_pen_cpus(), [0, 1, 2, 3]);
    assert!(plan.bad_pens.is_empty());
    let text = plan.to_string();
    assert!(
        text.contains("take over from parkboot pen") && text.contains("same code"),
        "{text}"
    );
}

#[test]
fn plan_released_cpu_is_lost_and_blocks_the_pen() {
    let (v, h) = old_pen([
        SlotStatus::Released,
        SlotStatus::Waiting,
        SlotStatus::Refused,
    ]);
    let r = |i| h.slot_release_addr(i).unwrap();
    let dt = dt_with(
        vec![spin(0, r(0)), spin(1, r(1)), spin(2, r(2)), spin(3, r(3))],
        vec![h.region()],
    );
    let mem = Phys(vec![(BASE, v)]);
    let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
    assert_eq!(
        plan.cpus[1].action,
        CpuAction::Lost {
            reason: LostReason::Released
        }
    );
    assert!(matches!(
        plan.cpus[2].action,
        CpuAction::TakeOverFromPen { .. }
    ));
    assert_eq!(
        plan.cpus[3].action,
        CpuAction::Lost {
            reason: LostReason::Refused
        }
    );
    let p = &plan.old_pens[0];
    assert_eq!(p.to_move, [2]);
    assert_eq!(
        p.blockers,
        [
            Blocker {
                mpidr: 1,
                status: SlotStatus::Released
            },
            Blocker {
                mpidr: 3,
                status: SlotStatus::Refused
            }
        ]
    );
    assert!(!p.droppable_after(&[2], &[]));
    assert!(plan.droppable(&[1, 2, 3], &[]).is_empty());
    assert_eq!(plan.new_pen_cpus(), [0, 2]);
    assert!(!p.same_code); // our_code not given
}

#[test]
fn plan_boot_cpu_released_slot_does_not_block() {
    // the kernel that kexec'd us ran on CPU 1, which it got from the old pen
    let (v, h) = old_pen([SlotStatus::Released, SlotStatus::Parked, SlotStatus::Empty]);
    let r = |i| h.slot_release_addr(i).unwrap();
    let dt = dt_with(
        vec![spin(0, r(0)), spin(1, r(1)), spin(2, r(2)), spin(3, r(3))],
        vec![h.region()],
    );
    let mem = Phys(vec![(BASE, v)]);
    let e = ReclaimEnv {
        current_mpidr: 0x8000_0001,
        ..env(false)
    }; // MPIDR with the U/MT-style high bit
    let plan = plan_reclaim(&dt, &e, |a, l| mem.read(a, l));
    assert_eq!(plan.cpus[1].action, CpuAction::Boot);
    // CPU 0 (slot EMPTY: the old loader's boot CPU, never parked) without PSCI
    assert_eq!(
        plan.cpus[0].action,
        CpuAction::Lost {
            reason: LostReason::NeverArrived
        }
    );
    assert_eq!(
        plan.cpus[3].action,
        CpuAction::Lost {
            reason: LostReason::NeverArrived
        }
    );
    let p = &plan.old_pens[0];
    assert!(p.blockers.is_empty());
    assert!(p.droppable_after(&[2], &[]));
    // with PSCI, EMPTY slots are started with CPU_ON
    let plan = plan_reclaim(&dt, &ReclaimEnv { psci: true, ..e }, |a, l| mem.read(a, l));
    assert_eq!(plan.cpus[0].action, CpuAction::PsciCpuOn);
    assert_eq!(plan.cpus[3].action, CpuAction::PsciCpuOn);
}

#[test]
fn plan_el_mismatch_slot_mismatch_and_corruption() {
    let (mut v, h) = old_pen([SlotStatus::Waiting, SlotStatus::Waiting, SlotStatus::Parked]);
    // corrupt CPU 3's state record
    wr_u64(&mut v, h.state_off(3).unwrap() + state::MPIDR_SEEN, 9).unwrap();
    let r = |i| h.slot_release_addr(i).unwrap();
    let dt = dt_with(
        vec![
            spin(0, r(0)),
            spin(1, r(2)),     // another CPU's slot
            spin(2, r(2) + 8), // inside the pen, not a release word
            spin(3, r(3)),
        ],
        vec![h.region()],
    );
    let mem = Phys(vec![(BASE, v)]);
    let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
    assert_eq!(
        plan.cpus[1].action,
        CpuAction::Lost {
            reason: LostReason::SlotOwnerMismatch { owner: 2 }
        }
    );
    assert_eq!(
        plan.cpus[2].action,
        CpuAction::Lost {
            reason: LostReason::NotASlot { addr: r(2) + 8 }
        }
    );
    assert_eq!(
        plan.cpus[3].action,
        CpuAction::Lost {
            reason: LostReason::SlotCorrupt { seen: 9 }
        }
    );
    // held CPUs nobody moves keep the pen reserved
    assert_eq!(plan.old_pens[0].blockers.len(), 3);
    // EL mismatch
    let plan = plan_reclaim(
        &dt,
        &ReclaimEnv {
            current_el: 1,
            ..env(true)
        },
        |a, l| mem.read(a, l),
    );
    assert_eq!(
        plan.cpus[3].action,
        CpuAction::Lost {
            reason: LostReason::SlotCorrupt { seen: 9 }
        }
    );
    let dt2 = dt_with(vec![spin(0, r(0)), spin(1, r(1))], vec![h.region()]);
    let plan = plan_reclaim(
        &dt2,
        &ReclaimEnv {
            current_el: 1,
            ..env(true)
        },
        |a, l| mem.read(a, l),
    );
    assert_eq!(
        plan.cpus[1].action,
        CpuAction::Lost {
            reason: LostReason::ElMismatch {
                pen_el: 2,
                current_el: 1
            }
        }
    );
}

#[test]
fn plan_invalid_pen_is_never_used() {
    let (mut v, h) = old_pen([
        SlotStatus::Waiting,
        SlotStatus::Waiting,
        SlotStatus::Waiting,
    ]);
    v[hdr::GENERATION] ^= 1; // checksum now wrong
    let r = |i| h.slot_release_addr(i).unwrap();
    let dt = dt_with(vec![spin(0, r(0)), spin(1, r(1))], vec![h.region()]);
    let mem = Phys(vec![(BASE, v)]);
    let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
    assert!(plan.old_pens.is_empty());
    assert_eq!(plan.bad_pens.len(), 1);
    assert!(matches!(
        &plan.cpus[1].action,
        CpuAction::Lost {
            reason: LostReason::InvalidPen {
                base: BASE,
                error: PenError::BadChecksum { .. }
            }
        }
    ));
    assert!(plan.droppable(&[1], &[]).is_empty());
    assert!(plan.to_string().contains("invalid pen"));
}

#[test]
fn plan_pen_not_fully_reserved_or_unreadable() {
    let (v, h) = old_pen([SlotStatus::Waiting; 3]);
    let r1 = h.slot_release_addr(1).unwrap();
    let dt = dt_with(vec![spin(1, r1)], vec![Region::new(BASE, 0x800)]);
    let mem = Phys(vec![(BASE, v.clone())]);
    let plan = plan_reclaim(&dt, &env(false), |a, l| mem.read(a, l));
    assert!(plan.old_pens.is_empty());
    assert!(matches!(
        plan.cpus[0].action,
        CpuAction::Lost {
            reason: LostReason::InvalidPen { .. }
        }
    ));
    // header readable, body not
    let mem = Phys(vec![(BASE, v[..0x100].to_vec())]);
    let dt = dt_with(vec![spin(1, r1)], vec![h.region()]);
    let plan = plan_reclaim(&dt, &env(false), |a, l| mem.read(a, l));
    assert!(matches!(
        plan.cpus[0].action,
        CpuAction::Lost {
            reason: LostReason::InvalidPen { .. }
        }
    ));
    // nothing readable: not touched
    let plan = plan_reclaim(&dt, &env(false), |_, _| None);
    assert_eq!(
        plan.cpus[0].action,
        CpuAction::Lost {
            reason: LostReason::Unreadable { addr: r1 }
        }
    );
    assert_eq!(plan.unreadable, [h.region()]);
}

#[test]
fn plan_foreign_spin_tables() {
    // U-Boot style: one shared release word inside a /memreserve/
    let uboot = Region::new(0xbff0_0000, 0x1000);
    let mut foreign = vec![0u8; 0x1000];
    foreign[..8].copy_from_slice(b"notapen!");
    let mem = Phys(vec![(uboot.base, foreign)]);
    let dt = dt_with(
        vec![
            spin(0, 0),
            spin(1, 0xbff0_0ff8),
            spin(2, 0xbff0_0ff8),
            spin(3, 0xbff0_0ff4), // misaligned
            spin(4, 0xbff0_0ffd), // word would cross the end
            spin(5, 0x9000_0000), // not reserved
            cpu(6, Some(EnableMethod::SpinTable), Prop64::OneCell(0x1234)),
            cpu(7, Some(EnableMethod::SpinTable), Prop64::Absent),
        ],
        vec![uboot],
    );
    let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
    let a = |i: usize| plan.cpus[i].action.clone();
    assert_eq!(
        a(1),
        CpuAction::SpinTableForeign {
            release_addr: 0xbff0_0ff8
        }
    );
    assert_eq!(
        a(2),
        CpuAction::SpinTableForeign {
            release_addr: 0xbff0_0ff8
        }
    );
    assert_eq!(
        a(3),
        CpuAction::Lost {
            reason: LostReason::Misaligned { addr: 0xbff0_0ff4 }
        }
    );
    assert_eq!(
        a(4),
        CpuAction::Lost {
            reason: LostReason::NotReserved { addr: 0xbff0_0ffd }
        }
    );
    assert_eq!(
        a(5),
        CpuAction::Lost {
            reason: LostReason::NotReserved { addr: 0x9000_0000 }
        }
    );
    assert_eq!(
        a(6),
        CpuAction::Lost {
            reason: LostReason::NoReleaseAddr
        }
    );
    assert_eq!(
        a(7),
        CpuAction::Lost {
            reason: LostReason::NoReleaseAddr
        }
    );
    assert!(plan.old_pens.is_empty() && plan.bad_pens.is_empty());
    assert_eq!(plan.next_generation, 1);
}

#[test]
fn plan_psci_and_other_methods() {
    let mut off = cpu(4, Some(EnableMethod::Psci), Prop64::Absent);
    off.status = Status::Disabled;
    let dt = dt_with(
        vec![
            cpu(0, Some(EnableMethod::Psci), Prop64::Absent),
            cpu(1, Some(EnableMethod::Psci), Prop64::Absent),
            cpu(2, None, Prop64::Absent),
            cpu(
                3,
                Some(EnableMethod::Other("acpi-parking".into())),
                Prop64::Absent,
            ),
            off,
        ],
        vec![],
    );
    let plan = plan_reclaim(&dt, &env(true), |_, _| None);
    let a = |p: &ReclaimPlan, i: usize| p.cpus[i].action.clone();
    assert_eq!(a(&plan, 0), CpuAction::Boot);
    assert_eq!(a(&plan, 1), CpuAction::PsciCpuOn);
    assert_eq!(a(&plan, 2), CpuAction::PsciCpuOn);
    assert_eq!(
        a(&plan, 3),
        CpuAction::Lost {
            reason: LostReason::UnknownMethod("acpi-parking".into())
        }
    );
    assert_eq!(
        a(&plan, 4),
        CpuAction::Lost {
            reason: LostReason::Disabled
        }
    );
    assert!(!plan.cpus[4].enabled);
    let plan = plan_reclaim(&dt, &env(false), |_, _| None);
    assert_eq!(
        a(&plan, 1),
        CpuAction::Lost {
            reason: LostReason::NoPsci
        }
    );
    assert_eq!(
        a(&plan, 2),
        CpuAction::Lost {
            reason: LostReason::NoEnableMethod
        }
    );
    // the boot CPU not in the DT
    let plan = plan_reclaim(
        &dt,
        &ReclaimEnv {
            current_mpidr: 0x100,
            ..env(true)
        },
        |_, _| None,
    );
    assert!(!plan.boot_cpu_in_dt);
    assert_eq!(a(&plan, 0), CpuAction::PsciCpuOn);
}

#[test]
fn plan_disabled_cpu_in_old_pen_still_moves() {
    let (v, h) = old_pen([SlotStatus::Parked, SlotStatus::Empty, SlotStatus::Empty]);
    let mut c1 = spin(1, h.slot_release_addr(1).unwrap());
    c1.status = Status::Disabled;
    let dt = dt_with(
        vec![spin(0, h.slot_release_addr(0).unwrap()), c1],
        vec![h.region()],
    );
    let mem = Phys(vec![(BASE, v)]);
    let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
    assert!(matches!(
        plan.cpus[1].action,
        CpuAction::TakeOverFromPen { .. }
    ));
    assert!(plan.old_pens[0].droppable_after(&[1], &[]));
}

#[test]
fn plan_two_pens_and_duplicate_memreserve() {
    let base2 = BASE + 0x10_0000;
    let (mut v1, h1) = built(BASE, &[0, 1, 2], 2);
    sim_set(&mut v1, &h1, 1, SlotStatus::Released);
    let c = code_bytes();
    let l = PenLayout::new(2, c.len(), 2).unwrap().with_generation(5);
    let mut v2 = vec![0u8; l.total_size as usize];
    let h2 = l.build(&mut v2, base2, &code(&c), &[0, 2]).unwrap();
    sim_set(&mut v2, &h2, 1, SlotStatus::Parked);
    let dt = dt_with(
        vec![
            spin(0, h2.slot_release_addr(0).unwrap()),
            spin(1, h1.slot_release_addr(1).unwrap()),
            spin(2, h2.slot_release_addr(1).unwrap()),
        ],
        vec![h1.region(), h2.region(), h1.region()],
    );
    let mem = Phys(vec![(BASE, v1), (base2, v2)]);
    let plan = plan_reclaim(&dt, &env(false), |a, l| mem.read(a, l));
    assert_eq!(plan.old_pens.len(), 2);
    assert_eq!(plan.next_generation, 6);
    assert_eq!(
        plan.cpus[1].action,
        CpuAction::Lost {
            reason: LostReason::Released
        }
    );
    assert_eq!(
        plan.cpus[2].action,
        CpuAction::TakeOverFromPen {
            old_pen_base: base2,
            release_addr: h2.slot_release_addr(1).unwrap(),
            status: SlotStatus::Parked
        }
    );
    assert_eq!(plan.droppable(&[2], &[]), [h2.region()]);
}

#[test]
fn plan_caps_old_pens() {
    let c = code_bytes();
    let l = PenLayout::new(1, c.len(), 2).unwrap();
    let mut segs = Vec::new();
    let mut regions = Vec::new();
    for k in 0..MAX_OLD_PENS as u64 + 2 {
        let base = 0x5000_0000 + k * 0x1000;
        let mut v = vec![0u8; 0x1000];
        l.build(&mut v, base, &code(&c), &[k + 1]).unwrap();
        segs.push((base, v));
        regions.push(Region::new(base, 0x1000));
    }
    let mem = Phys(segs);
    let dt = dt_with(vec![spin(10, 0x5000_0000 + 0x9000 + 0x300)], regions);
    let plan = plan_reclaim(&dt, &env(false), |a, l| mem.read(a, l));
    assert_eq!(plan.old_pens.len(), MAX_OLD_PENS);
    assert_eq!(plan.bad_pens.len(), 2);
    assert!(matches!(
        plan.cpus[0].action,
        CpuAction::Lost {
            reason: LostReason::InvalidPen {
                error: PenError::TooManyPens { .. },
                ..
            }
        }
    ));
}

#[test]
fn plan_keeps_a_pen_that_strays_are_in() {
    // #17 item 2: CPU 3 reached the old pen without a slot (a foreign shared release word, a
    // cpu node whose reg is not its MPIDR): its stray record keeps the pen, even once every
    // CPU with a slot has moved.
    let (mut v, h) = old_pen([SlotStatus::Parked, SlotStatus::Parked, SlotStatus::Empty]);
    sim_stray(&mut v, &h, 0, 0x7, 2, 0);
    let r = |i| h.slot_release_addr(i).unwrap();
    let dt = dt_with(
        vec![spin(0, r(0)), spin(1, r(1)), spin(2, r(2))],
        vec![h.region()],
    );
    let mem = Phys(vec![(BASE, v)]);
    let plan = plan_reclaim(&dt, &env(false), |a, l| mem.read(a, l));
    let p = &plan.old_pens[0];
    assert_eq!(p.to_move, [1, 2]);
    assert!(p.blockers.is_empty());
    assert_eq!(p.strays.len(), 1);
    assert_eq!(p.strays[0].mpidr, 7);
    assert!(!p.droppable_after(&[1, 2], &[]));
    assert!(plan.droppable(&[1, 2], &[]).is_empty());
    assert_eq!(p.kept_because(), ["stray CPU 0x7 has no slot"]);
    assert!(plan.to_string().contains("1 stray"), "{plan}");
}

#[test]
fn plan_faulted_cpu_is_lost_and_blocks_the_pen() {
    let (mut v, h) = old_pen([SlotStatus::Parked, SlotStatus::Empty, SlotStatus::Empty]);
    sim_fault(&mut v, &h, 2, 0x1234, 2, 4, 0x0200_0000);
    let r = |i| h.slot_release_addr(i).unwrap();
    let dt = dt_with(
        vec![spin(0, r(0)), spin(1, r(1)), spin(2, r(2))],
        vec![h.region()],
    );
    let mem = Phys(vec![(BASE, v)]);
    let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
    let CpuAction::Lost {
        reason: LostReason::Faulted(f),
    } = &plan.cpus[2].action
    else {
        panic!("{:?}", plan.cpus[2].action)
    };
    assert_eq!((f.elr, f.ec()), (0x1234, 0));
    let p = &plan.old_pens[0];
    assert_eq!(
        p.blockers,
        [Blocker {
            mpidr: 2,
            status: SlotStatus::Faulted
        }]
    );
    assert!(!p.droppable_after(&[1], &[]));
    assert_eq!(p.kept_because(), ["CPU 0x2 is FAULTED"]);
    assert!(
        plan.cpus[2]
            .action
            .to_string()
            .starts_with("lost: stuck in the old pen after an exception at EL2"),
        "{}",
        plan.cpus[2].action
    );
}

#[test]
fn plan_keeps_a_pen_an_unaccounted_on_cpu_may_run_in() {
    // A pen of an older loader has no stray records. CPU 3 has an EMPTY slot in it and
    // firmware says it is ON (CPU_ON: ALREADY_ON), but no pen holds it and no OS has it: it
    // may be spinning in this pen without having found its slot. CPU 9 has no slot at all.
    let (v, h) = old_pen([SlotStatus::Parked, SlotStatus::Parked, SlotStatus::Empty]);
    let r = |i| h.slot_release_addr(i).unwrap();
    let dt = dt_with(
        vec![spin(0, r(0)), spin(1, r(1)), spin(2, r(2)), spin(3, r(3))],
        vec![h.region()],
    );
    let mem = Phys(vec![(BASE, v)]);
    let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
    assert_eq!(plan.cpus[3].action, CpuAction::PsciCpuOn);
    let p = &plan.old_pens[0];
    assert!(p.droppable_after(&[1, 2], &[]));
    assert!(!p.droppable_after(&[1, 2], &[3]), "EMPTY slot, CPU ON");
    assert!(!p.droppable_after(&[1, 2], &[9]), "no slot, CPU ON");
    assert!(
        p.droppable_after(&[1, 2], &[2]),
        "CPU 2 was moved out of this pen: it is not in it"
    );
    assert!(plan.droppable(&[1, 2], &[3]).is_empty());
}
