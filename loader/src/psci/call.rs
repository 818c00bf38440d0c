//! SMC calls as the resident part receives them: the function ID in w0, arguments in x1..x3
//! (w1..w3 for SMC32 function IDs, SMCCC v1.1).

pub use smccc::psci::error::{
    ALREADY_ON, DENIED, INTERNAL_FAILURE, INVALID_ADDRESS, INVALID_PARAMETERS, NOT_SUPPORTED,
    ON_PENDING, SUCCESS,
};
pub use smccc::psci::{
    PSCI_AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_32, PSCI_CPU_ON_64,
    PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64, PSCI_FEATURES, PSCI_MIGRATE_INFO_TYPE,
    PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_VERSION,
};

/// SMCCC_VERSION.
pub const SMCCC_VERSION: u32 = 0x8000_0000;
/// SMCCC_ARCH_FEATURES.
pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
/// What PSCI_VERSION returns: 1.1.
pub const PSCI_VERSION_1_1: u32 = 0x0001_0001;
/// What SMCCC_VERSION returns: 1.1.
pub const SMCCC_VERSION_1_1: u32 = 0x0001_0001;
/// MIGRATE_INFO_TYPE: no Trusted OS (or one that needs no migration).
pub const MIGRATE_INFO_NO_TOS: i64 = 2;

/// One call, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    PsciVersion,
    PsciFeatures {
        fid: u32,
    },
    CpuSuspend {
        power_state: u32,
        entry: u64,
        context: u64,
    },
    CpuOff,
    CpuOn {
        target: u64,
        entry: u64,
        context: u64,
    },
    AffinityInfo {
        target: u64,
        level: u64,
    },
    MigrateInfoType,
    SystemOff,
    SystemReset,
    SmcccVersion,
    SmcccArchFeatures {
        fid: u32,
    },
    /// Any other function ID (MIGRATE, SYSTEM_RESET2, SYSTEM_SUSPEND, yielding calls, …).
    Unknown {
        fid: u32,
    },
}

/// Decodes an SMC from its registers. The function ID is w0 (bits 63:32 of x0 are ignored);
/// SMC32 functions take w1..w3 (their upper halves are ignored, SMCCC v1.1 §2.6).
#[must_use]
pub fn decode(x0: u64, x1: u64, x2: u64, x3: u64) -> Call {
    let fid = x0 as u32;
    let w = |x: u64| x & 0xffff_ffff;
    match fid {
        PSCI_VERSION => Call::PsciVersion,
        PSCI_FEATURES => Call::PsciFeatures { fid: x1 as u32 },
        PSCI_CPU_SUSPEND_64 => Call::CpuSuspend {
            power_state: x1 as u32,
            entry: x2,
            context: x3,
        },
        PSCI_CPU_SUSPEND_32 => Call::CpuSuspend {
            power_state: x1 as u32,
            entry: w(x2),
            context: w(x3),
        },
        PSCI_CPU_OFF => Call::CpuOff,
        PSCI_CPU_ON_64 => Call::CpuOn {
            target: x1,
            entry: x2,
            context: x3,
        },
        PSCI_CPU_ON_32 => Call::CpuOn {
            target: w(x1),
            entry: w(x2),
            context: w(x3),
        },
        PSCI_AFFINITY_INFO_64 => Call::AffinityInfo {
            target: x1,
            level: x2,
        },
        PSCI_AFFINITY_INFO_32 => Call::AffinityInfo {
            target: w(x1),
            level: w(x2),
        },
        PSCI_MIGRATE_INFO_TYPE => Call::MigrateInfoType,
        PSCI_SYSTEM_OFF => Call::SystemOff,
        PSCI_SYSTEM_RESET => Call::SystemReset,
        SMCCC_VERSION => Call::SmcccVersion,
        SMCCC_ARCH_FEATURES => Call::SmcccArchFeatures { fid: x1 as u32 },
        fid => Call::Unknown { fid },
    }
}

/// PSCI_FEATURES: 0 for the functions the resident part implements (for CPU_SUSPEND the
/// feature flags: 0 = the original power_state format, platform-coordinated), NOT_SUPPORTED
/// for every other.
#[must_use]
pub fn psci_features(fid: u32) -> i64 {
    match fid {
        PSCI_VERSION
        | PSCI_FEATURES
        | PSCI_CPU_SUSPEND_32
        | PSCI_CPU_SUSPEND_64
        | PSCI_CPU_OFF
        | PSCI_CPU_ON_32
        | PSCI_CPU_ON_64
        | PSCI_AFFINITY_INFO_32
        | PSCI_AFFINITY_INFO_64
        | PSCI_MIGRATE_INFO_TYPE
        | PSCI_SYSTEM_OFF
        | PSCI_SYSTEM_RESET
        | SMCCC_VERSION => i64::from(SUCCESS),
        _ => i64::from(NOT_SUPPORTED),
    }
}

/// SMCCC_ARCH_FEATURES: the SMCCC functions themselves are implemented; the CPU erratum
/// workarounds (SMCCC_ARCH_WORKAROUND_1/2/3) and SMCCC_ARCH_SOC_ID are not — the resident
/// part does nothing a workaround would need, so it does not claim one.
#[must_use]
pub fn arch_features(fid: u32) -> i64 {
    match fid {
        SMCCC_VERSION | SMCCC_ARCH_FEATURES => i64::from(SUCCESS),
        _ => i64::from(NOT_SUPPORTED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_conventions() {
        assert_eq!(decode(0x8400_0000, 9, 9, 9), Call::PsciVersion);
        // the upper half of x0 is not part of the function ID
        assert_eq!(decode(0xdead_0000_8400_0000, 0, 0, 0), Call::PsciVersion);
        assert_eq!(
            decode(0xc400_0003, 0x1_0000_0102, 0x4008_0000, 0x1234_5678_9abc),
            Call::CpuOn {
                target: 0x1_0000_0102,
                entry: 0x4008_0000,
                context: 0x1234_5678_9abc
            }
        );
        // SMC32: w1..w3
        assert_eq!(
            decode(
                0x8400_0003,
                0xffff_0000_0000_0001,
                0x5_4008_0000,
                0x7_0000_0009
            ),
            Call::CpuOn {
                target: 1,
                entry: 0x4008_0000,
                context: 9
            }
        );
        assert_eq!(
            decode(0x8400_0004, 0xff_0000_0003, 0, 0),
            Call::AffinityInfo {
                target: 3,
                level: 0
            }
        );
        assert_eq!(decode(0x8400_0002, 0, 0, 0), Call::CpuOff);
        assert_eq!(decode(0x8400_0008, 0, 0, 0), Call::SystemOff);
        assert_eq!(decode(0x8400_0009, 0, 0, 0), Call::SystemReset);
        assert_eq!(decode(0x8400_0006, 0, 0, 0), Call::MigrateInfoType);
        assert_eq!(decode(0x8000_0000, 0, 0, 0), Call::SmcccVersion);
        assert_eq!(
            decode(0x8000_0001, 0x8000_8000, 0, 0),
            Call::SmcccArchFeatures { fid: 0x8000_8000 }
        );
        for fid in [
            0xc400_0005u64,
            0x8400_0012,
            0xc400_000e,
            0x0400_0000,
            0x8200_0000,
        ] {
            assert_eq!(
                decode(fid, 0, 0, 0),
                Call::Unknown { fid: fid as u32 },
                "{fid:#x}"
            );
        }
    }

    #[test]
    fn features_say_what_is_implemented() {
        for fid in [
            PSCI_VERSION,
            PSCI_FEATURES,
            PSCI_CPU_OFF,
            PSCI_CPU_ON_64,
            PSCI_CPU_ON_32,
            PSCI_AFFINITY_INFO_64,
            PSCI_CPU_SUSPEND_64,
            PSCI_SYSTEM_OFF,
            PSCI_SYSTEM_RESET,
            PSCI_MIGRATE_INFO_TYPE,
            SMCCC_VERSION,
        ] {
            assert_eq!(psci_features(fid), 0, "{fid:#x}");
        }
        for fid in [
            0xc400_0005,
            0x8400_0012,
            0xc400_000e,
            0x8000_8000,
            0xdead_beef,
        ] {
            assert_eq!(psci_features(fid), -1, "{fid:#x}");
        }
        assert_eq!(arch_features(SMCCC_ARCH_FEATURES), 0);
        assert_eq!(arch_features(0x8000_8000), -1); // WORKAROUND_1
        assert_eq!(arch_features(0x8000_7fff), -1); // WORKAROUND_2
        assert_eq!(arch_features(0x8000_0002), -1); // SOC_ID
    }
}
