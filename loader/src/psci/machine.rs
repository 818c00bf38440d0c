//! What each PSCI call does, as the resident part decides it (docs/psci.md): the arguments
//! are checked first, then the CPUs' states (which come from the resident pen, docs/protocol.md
//! §8), then an [`Action`] says what the glue carries out. Nothing a caller passes is used
//! before it is checked, and no call can make the resident part write anything but the pen's
//! mailbox of a CPU it turns on and its own per-CPU record.

use super::call::*;
use crate::dt::Region;
use crate::pen::MPIDR_MASK;

/// AFFINITY_INFO's answer for one CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    On,
    Off,
    OnPending,
}

impl Power {
    /// The PSCI encoding (0 ON, 1 OFF, 2 ON_PENDING).
    #[must_use]
    pub const fn code(self) -> i64 {
        match self {
            Self::On => 0,
            Self::Off => 1,
            Self::OnPending => 2,
        }
    }
}

/// One CPU as the resident pen shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuState {
    /// Held in the pen (WAITING or PARKED) with its release word 0: CPU_ON may release it.
    Off,
    /// Held, a release written, not taken yet.
    OnPending,
    /// Out of the pen: released to the caller's entry (RELEASED), or the CPU that booted the
    /// non-secure world and never entered the pen (its slot is EMPTY).
    On,
    /// In the pen and unable to take a release (REFUSED, FAULTED, UNARMED), or a secondary
    /// that never reached it (EMPTY): it is not running anything, and CPU_ON cannot start it.
    Stuck,
}

/// The CPUs, as the glue reads them from the pen and its own per-CPU records.
pub trait CpuTable {
    /// Number of CPUs (= slots of the resident pen).
    fn len(&self) -> usize;
    /// No CPUs at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The index of the CPU whose MPIDR affinity is `mpidr`.
    fn index_of(&self, mpidr: u64) -> Option<usize>;
    /// Its state.
    fn state(&self, index: usize) -> CpuState;
    /// It called CPU_OFF and is on its way into the pen (its slot still says RELEASED).
    fn leaving(&self, index: usize) -> bool;
}

/// Who calls, and what the caller may use.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The calling CPU's index.
    pub index: usize,
    /// The EL CPU_ON enters its target at: the non-secure world's highest, EL2 where it is
    /// implemented (as Trusted Firmware-A does: a kernel entered at EL2 runs at EL1 without
    /// VHE, yet its secondaries must enter at EL2 too, booting.rst), else EL1.
    pub el: u8,
    /// Non-secure RAM: where an entry point may be.
    pub ns_ram: &'a [Region],
    /// Everything secure (secure RAM, secure flash, secure devices): never an entry point.
    pub secure: &'a [Region],
}

/// What the glue does for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Return this value in x0 (x1..x17 as they were).
    Return(i64),
    /// Release CPU `index` from the pen to enter `entry` at `el` with x0 = `context`; the
    /// caller gets SUCCESS.
    TurnOn {
        index: usize,
        entry: u64,
        context: u64,
        el: u8,
    },
    /// The caller goes back into the pen (never returns).
    TurnOff,
    /// CPU_SUSPEND standby: wait for an interrupt (WFI), then return SUCCESS.
    Standby,
    SystemOff,
    SystemReset,
}

/// CPU_SUSPEND power_state (original format): StateType, bit 16 (0 standby, 1 power-down).
const POWER_STATE_TYPE: u32 = 1 << 16;
/// CPU_SUSPEND power_state: PowerLevel, bits 25:24.
const POWER_STATE_LEVEL: u32 = 3 << 24;

/// Decides what `call` does.
#[must_use]
pub fn handle(call: Call, caller: &Caller<'_>, cpus: &impl CpuTable) -> Action {
    let ret = |v: i32| Action::Return(i64::from(v));
    match call {
        Call::PsciVersion => Action::Return(i64::from(PSCI_VERSION_1_1)),
        Call::PsciFeatures { fid } => Action::Return(psci_features(fid)),
        Call::SmcccVersion => Action::Return(i64::from(SMCCC_VERSION_1_1)),
        Call::SmcccArchFeatures { fid } => Action::Return(arch_features(fid)),
        Call::MigrateInfoType => Action::Return(MIGRATE_INFO_NO_TOS),
        Call::SystemOff => Action::SystemOff,
        Call::SystemReset => Action::SystemReset,
        Call::Unknown { .. } => ret(NOT_SUPPORTED),
        Call::CpuSuspend { power_state, .. } => {
            // Only standby of this core: StateType 0 and PowerLevel 0. A power-down state
            // (StateType 1) is not offered (PSCI_FEATURES says the original format).
            if power_state & (POWER_STATE_TYPE | POWER_STATE_LEVEL) == 0 {
                Action::Standby
            } else {
                ret(INVALID_PARAMETERS)
            }
        }
        Call::CpuOff => cpu_off(caller, cpus),
        Call::CpuOn {
            target,
            entry,
            context,
        } => cpu_on(caller, cpus, target, entry, context),
        Call::AffinityInfo { target, level } => {
            // From PSCI 1.0 only level 0 is required; higher levels are not offered.
            if level != 0 {
                return ret(INVALID_PARAMETERS);
            }
            match valid_target(cpus, target) {
                Some(i) => Action::Return(power(cpus.state(i)).code()),
                None => ret(INVALID_PARAMETERS),
            }
        }
    }
}

/// AFFINITY_INFO for a CPU state: a stuck CPU runs nothing (OFF), though CPU_ON cannot
/// start it.
#[must_use]
pub const fn power(s: CpuState) -> Power {
    match s {
        CpuState::On => Power::On,
        CpuState::OnPending => Power::OnPending,
        CpuState::Off | CpuState::Stuck => Power::Off,
    }
}

fn valid_target(cpus: &impl CpuTable, target: u64) -> Option<usize> {
    if target & !MPIDR_MASK != 0 {
        return None;
    }
    cpus.index_of(target)
}

/// An entry point the caller may use: 4-byte aligned, inside non-secure RAM, not inside
/// anything secure.
#[must_use]
pub fn entry_ok(entry: u64, ns_ram: &[Region], secure: &[Region]) -> bool {
    let Some(end) = entry.checked_add(4) else {
        return false;
    };
    entry.is_multiple_of(4)
        && ns_ram.iter().any(|r| entry >= r.base && end <= r.end())
        && !secure.iter().any(|r| entry < r.end() && r.base < end)
}

fn cpu_on(
    caller: &Caller<'_>,
    cpus: &impl CpuTable,
    target: u64,
    entry: u64,
    context: u64,
) -> Action {
    let ret = |v: i32| Action::Return(i64::from(v));
    let Some(index) = valid_target(cpus, target) else {
        return ret(INVALID_PARAMETERS);
    };
    if !entry_ok(entry, caller.ns_ram, caller.secure) {
        return ret(INVALID_ADDRESS);
    }
    if !(1..=2).contains(&caller.el) {
        return ret(INVALID_PARAMETERS);
    }
    match cpus.state(index) {
        CpuState::On => ret(ALREADY_ON),
        CpuState::OnPending => ret(ON_PENDING),
        CpuState::Stuck => ret(INTERNAL_FAILURE),
        CpuState::Off => Action::TurnOn {
            index,
            entry,
            context,
            el: caller.el,
        },
    }
}

/// CPU_OFF: the caller parks — unless it is the last CPU running (then nothing would ever
/// turn a CPU on again, and the system would be dead without a reset): DENIED, the one error
/// CPU_OFF has.
fn cpu_off(caller: &Caller<'_>, cpus: &impl CpuTable) -> Action {
    let others_on = (0..cpus.len()).any(|i| {
        i != caller.index
            && !cpus.leaving(i)
            && matches!(cpus.state(i), CpuState::On | CpuState::OnPending)
    });
    if others_on {
        Action::TurnOff
    } else {
        Action::Return(i64::from(DENIED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    struct Table(Vec<(u64, CpuState, bool)>);
    impl CpuTable for Table {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn index_of(&self, mpidr: u64) -> Option<usize> {
            self.0.iter().position(|c| c.0 == mpidr)
        }
        fn state(&self, i: usize) -> CpuState {
            self.0[i].1
        }
        fn leaving(&self, i: usize) -> bool {
            self.0[i].2
        }
    }

    const RAM: [Region; 1] = [Region::new(0x4000_0000, 0x4000_0000)];
    const SECURE: [Region; 2] = [
        Region::new(0x0e00_0000, 0x0100_0000),
        Region::new(0, 0x0400_0000),
    ];

    fn caller(index: usize) -> Caller<'static> {
        Caller {
            index,
            el: 2,
            ns_ram: &RAM,
            secure: &SECURE,
        }
    }

    /// CPU 0 (MPIDR 0) on, 1 off, 2 on-pending, 3 stuck.
    fn table() -> Table {
        Table(vec![
            (0, CpuState::On, false),
            (1, CpuState::Off, false),
            (2, CpuState::OnPending, false),
            (0x100, CpuState::Stuck, false),
        ])
    }

    fn on(target: u64, entry: u64) -> Action {
        handle(
            Call::CpuOn {
                target,
                entry,
                context: 0xc0ffee,
            },
            &caller(0),
            &table(),
        )
    }

    #[test]
    fn cpu_on_releases_an_off_cpu_at_the_callers_el() {
        assert_eq!(
            on(1, 0x4008_0000),
            Action::TurnOn {
                index: 1,
                entry: 0x4008_0000,
                context: 0xc0ffee,
                el: 2
            }
        );
        let mut c = caller(0);
        c.el = 1;
        assert!(matches!(
            handle(
                Call::CpuOn {
                    target: 1,
                    entry: 0x4000_0000,
                    context: 0
                },
                &c,
                &table()
            ),
            Action::TurnOn { el: 1, .. }
        ));
    }

    #[test]
    fn cpu_on_errors_are_the_specs() {
        let r = |v: i32| Action::Return(i64::from(v));
        // unknown MPIDR; bits outside the affinity fields
        assert_eq!(on(7, 0x4008_0000), r(INVALID_PARAMETERS));
        assert_eq!(on(1 | 1 << 31, 0x4008_0000), r(INVALID_PARAMETERS));
        assert_eq!(on(1 | 1 << 40, 0x4008_0000), r(INVALID_PARAMETERS));
        // the entry: in secure RAM, in the secure flash, outside RAM, misaligned, wrapping
        assert_eq!(on(1, 0x0e00_1000), r(INVALID_ADDRESS));
        assert_eq!(on(1, 0x1000), r(INVALID_ADDRESS));
        assert_eq!(on(1, 0x3fff_fffc), r(INVALID_ADDRESS));
        assert_eq!(on(1, 0x8000_0000), r(INVALID_ADDRESS));
        assert_eq!(on(1, 0x4008_0002), r(INVALID_ADDRESS));
        assert_eq!(on(1, u64::MAX - 3), r(INVALID_ADDRESS));
        // the last word of RAM is fine
        assert!(matches!(on(1, 0x7fff_fffc), Action::TurnOn { .. }));
        // states
        assert_eq!(on(0, 0x4008_0000), r(ALREADY_ON));
        assert_eq!(on(2, 0x4008_0000), r(ON_PENDING));
        assert_eq!(on(0x100, 0x4008_0000), r(INTERNAL_FAILURE));
        // a bad target is reported before a bad entry
        assert_eq!(on(7, 0x1000), r(INVALID_PARAMETERS));
    }

    #[test]
    fn cpu_off_parks_unless_it_is_the_last() {
        assert_eq!(handle(Call::CpuOff, &caller(0), &table()), Action::TurnOff);
        // CPU 0 is the only one on
        let t = Table(vec![(0, CpuState::On, false), (1, CpuState::Off, false)]);
        assert_eq!(
            handle(Call::CpuOff, &caller(0), &t),
            Action::Return(i64::from(DENIED))
        );
        // two CPUs calling CPU_OFF at once: the second one to decide is the last
        let t = Table(vec![(0, CpuState::On, true), (1, CpuState::On, false)]);
        assert_eq!(
            handle(Call::CpuOff, &caller(1), &t),
            Action::Return(i64::from(DENIED))
        );
        let t = Table(vec![(0, CpuState::On, false), (1, CpuState::On, false)]);
        assert_eq!(handle(Call::CpuOff, &caller(1), &t), Action::TurnOff);
    }

    #[test]
    fn affinity_info_reads_the_pen() {
        let ai = |target, level| handle(Call::AffinityInfo { target, level }, &caller(0), &table());
        assert_eq!(ai(0, 0), Action::Return(0));
        assert_eq!(ai(1, 0), Action::Return(1));
        assert_eq!(ai(2, 0), Action::Return(2));
        assert_eq!(ai(0x100, 0), Action::Return(1));
        assert_eq!(ai(9, 0), Action::Return(-2));
        assert_eq!(ai(1, 1), Action::Return(-2));
    }

    #[test]
    fn the_rest() {
        let h = |c| handle(c, &caller(0), &table());
        assert_eq!(h(Call::PsciVersion), Action::Return(0x1_0001));
        assert_eq!(h(Call::SmcccVersion), Action::Return(0x1_0001));
        assert_eq!(h(Call::MigrateInfoType), Action::Return(2));
        assert_eq!(h(Call::Unknown { fid: 0xc400_0005 }), Action::Return(-1));
        assert_eq!(h(Call::SystemOff), Action::SystemOff);
        assert_eq!(h(Call::SystemReset), Action::SystemReset);
        let s = |power_state| {
            h(Call::CpuSuspend {
                power_state,
                entry: 0,
                context: 0,
            })
        };
        assert_eq!(s(0), Action::Standby);
        assert_eq!(s(0x1234), Action::Standby); // a StateID is fine
        assert_eq!(s(1 << 16), Action::Return(-2)); // power-down
        assert_eq!(s(1 << 24), Action::Return(-2)); // a cluster level
    }
}
