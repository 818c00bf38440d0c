//! Boards as data.
//!
//! A [`Board`] is a plain `static` description: which device-tree root `compatible` strings it
//! matches, which UART to use before the DT is parsed (or when it is broken), the environment
//! defaults, and quirks. Adding a board means adding one `static` and listing it in [`BOARDS`];
//! no code changes. The loader picks the board with [`select`] once it has the DT's root
//! compatible list, and uses [`DEFAULT_BOARD`] before that.
#![no_std]

/// Board-specific deviations from the generic behaviour. All default to "no quirk".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// `(base, size)` of RAM assumed when the DT has no usable `/memory` node (the minimum the
    /// board always has).
    pub fallback_ram: Option<(u64, u64)>,
}

impl Quirks {
    /// No quirks.
    pub const NONE: Self = Self { fallback_ram: None };
}

impl Default for Quirks {
    fn default() -> Self {
        Self::NONE
    }
}

/// Where parkboot's resident EL3 part lives on a board it can start on at EL3 from reset
/// (docs/psci.md). These addresses are needed before any DT is read: the image in flash
/// copies itself to `resident`, and the secondaries wait on `hold` from their first
/// instructions. Checked against the DT at start (secure RAM must be described there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct El3 {
    /// The image in flash, `(base, size)`, where the CPUs start.
    pub flash: (u64, u64),
    /// Secure RAM `(base, size)`: the resident part, its stacks and pen, and the hold.
    pub secure_ram: (u64, u64),
    /// The resident copy of the image (2 MiB aligned, at the start of secure RAM).
    pub resident: u64,
    /// The secondaries' reset hold: 8 bytes per CPU (keyed by MPIDR), 4 KiB.
    pub hold: u64,
    /// Where the platform puts the DT for the firmware.
    pub dtb: u64,
    /// Where the non-secure loader copy goes, from the start of the first RAM bank.
    pub ns_loader_offset: u64,
}

/// A supported board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// Short name (shown by `bdinfo`, used as `board` in the environment).
    pub name: &'static str,
    /// DT root compatible strings this board matches.
    pub compatible: &'static [&'static str],
    /// PL011 base used before the DT is parsed or when it is unusable; `None` = no early
    /// console.
    pub default_uart: Option<u64>,
    /// Environment defaults, applied before the loader's computed variables (load addresses)
    /// and before a saved environment.
    pub default_env: &'static [(&'static str, &'static str)],
    pub quirks: Quirks,
    /// How parkboot runs as the board's firmware from EL3, if it can.
    pub el3: Option<El3>,
}

/// Environment shared by all boards. `bootcmd` runs U-Boot's distro boot (`distro_bootcmd`,
/// the loader's `distroboot`: extlinux.conf and boot scripts on every disk) when `bootdelay`
/// expires.
const COMMON_ENV: &[(&str, &str)] = &[
    ("bootdelay", "2"),
    ("baudrate", "115200"),
    ("stdin", "serial"),
    ("stdout", "serial"),
    ("stderr", "serial"),
    ("bootcmd", "run distro_bootcmd"),
    ("distro_bootcmd", "distroboot"),
];

/// QEMU virt: the common env and `fdtfile`, the name distribution boot files use for the
/// board's DT (extlinux `fdtdir`, flash-kernel's `dtbs/<version>/${fdtfile}`).
const QEMU_VIRT_ENV: &[(&str, &str)] = &[
    ("bootdelay", "2"),
    ("baudrate", "115200"),
    ("stdin", "serial"),
    ("stdout", "serial"),
    ("stderr", "serial"),
    ("bootcmd", "run distro_bootcmd"),
    ("distro_bootcmd", "distroboot"),
    ("fdtfile", "qemu/virt.dtb"),
];

/// QEMU `virt` (any version): PL011 at 0x0900_0000, RAM at 0x4000_0000. With `secure=on`
/// and `-bios` (QEMU 7.2 `hw/arm/virt.c`): the secure flash at 0 (64 MiB), secure RAM at
/// 0x0e00_0000 (16 MiB), the DT at the start of RAM.
pub static QEMU_VIRT: Board = Board {
    name: "qemu-virt",
    compatible: &["linux,dummy-virt"],
    default_uart: Some(0x0900_0000),
    default_env: QEMU_VIRT_ENV,
    quirks: Quirks {
        fallback_ram: Some((0x4000_0000, 0x800_0000)),
    },
    el3: Some(El3 {
        flash: (0, 0x400_0000),
        secure_ram: (0x0e00_0000, 0x0100_0000),
        resident: 0x0e00_0000,
        hold: 0x0eff_f000,
        dtb: 0x4000_0000,
        ns_loader_offset: 0x20_0000,
    }),
};

/// Fallback for an unknown DT: no early UART (the console comes from `/chosen/stdout-path`).
pub static GENERIC: Board = Board {
    name: "generic",
    compatible: &[],
    default_uart: None,
    default_env: COMMON_ENV,
    quirks: Quirks::NONE,
    el3: None,
};

/// All specific boards, in matching priority order (not including [`GENERIC`]).
pub static BOARDS: &[&Board] = &[&QEMU_VIRT];

/// The board assumed before the DT is parsed (parkboot's primary target).
pub static DEFAULT_BOARD: &Board = &QEMU_VIRT;

/// Picks the board for a DT root compatible list (most specific first): the first DT string any
/// board lists wins; [`GENERIC`] if none matches.
#[must_use]
pub fn select(compatibles: &[&str]) -> &'static Board {
    for c in compatibles {
        if let Some(b) = BOARDS.iter().find(|b| b.compatible.contains(c)) {
            return b;
        }
    }
    &GENERIC
}

/// Looks a board up by [`Board::name`].
#[must_use]
pub fn by_name(name: &str) -> Option<&'static Board> {
    BOARDS
        .iter()
        .copied()
        .chain(core::iter::once(&GENERIC))
        .find(|b| b.name == name)
}

impl Board {
    /// The default value of an environment variable.
    #[must_use]
    pub fn env_default(&self, key: &str) -> Option<&'static str> {
        self.default_env
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_virt_selected_by_its_compatible() {
        let b = select(&["linux,dummy-virt"]);
        assert_eq!(b.name, "qemu-virt");
        assert_eq!(b.default_uart, Some(0x0900_0000));
        assert_eq!(b.env_default("bootdelay"), Some("2"));
        assert_eq!(b.env_default("baudrate"), Some("115200"));
        assert_eq!(b.env_default("stdout"), Some("serial"));
        assert!(b.env_default("bootcmd").is_some());
        // Every board's env has everything the common env has.
        for (k, _) in COMMON_ENV {
            assert!(b.env_default(k).is_some(), "{} lacks {k}", b.name);
        }
    }

    #[test]
    fn unknown_falls_back_to_generic() {
        assert_eq!(select(&["acme,board", "acme,soc"]).name, "generic");
        assert_eq!(select(&[]).name, "generic");
        assert_eq!(select(&[]).default_uart, None);
    }

    #[test]
    fn dt_order_decides() {
        // A later, less specific string still matches when earlier ones are unknown.
        assert_eq!(
            select(&["acme,virt-clone", "linux,dummy-virt"]).name,
            "qemu-virt"
        );
    }

    #[test]
    fn board_table_is_consistent() {
        for b in BOARDS {
            assert!(!b.compatible.is_empty(), "{} matches nothing", b.name);
            assert_eq!(by_name(b.name), Some(*b));
            let mut keys: [&str; 32] = [""; 32];
            for (i, (k, _)) in b.default_env.iter().enumerate() {
                assert!(!keys[..i].contains(k), "{}: duplicate env {k}", b.name);
                keys[i] = k;
            }
        }
        assert_eq!(by_name("generic"), Some(&GENERIC));
        assert_eq!(DEFAULT_BOARD.name, "qemu-virt");
    }
}
