//! The pxelinux.cfg file names `pxe get` tries, in U-Boot's order
//! (cmd/pxe.c `pxe_get`, boot/pxe_utils.c `get_pxelinux_path`,
//! `format_mac_pxe`, `pxe_setup_ctx`):
//!
//! 1. `pxelinux.cfg/<pxeuuid>` when `pxeuuid` is set;
//! 2. `pxelinux.cfg/01-<mac>` (ARP type 1, lower-case hex, dashes);
//! 3. our IPv4 address as 8 upper-case hex digits, then shorter and shorter
//!    prefixes of it down to one digit (`0A00020F`, `0A00020`, … `0`);
//! 4. `default-<arch>-<soc>-<board>`, `default-<arch>-<soc>` (when the
//!    board has a SoC name), `default-<arch>`, `default`.
//!
//! Every name is relative to the directory of `bootfile` (the part up to
//! its last `/`), as pxelinux does; names longer than U-Boot's 512-byte path
//! limit are skipped.

use super::sink::Sink;
use super::stack::NetStack;
use super::tftp::{self, TftpError, TftpOptions, TftpRequest};
use super::{Ctx, Ipv4Addr, Mac, NetDevice, NetError};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// U-Boot's MAX_TFTP_PATH_LEN.
pub const MAX_PATH: usize = 512;
/// The directory the names are in.
pub const DIR: &str = "pxelinux.cfg/";
/// U-Boot's CONFIG_SYS_ARCH for arm64 boards.
pub const ARCH: &str = "arm";

/// What identifies this machine to the PXE server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity<'a> {
    /// `pxeuuid`.
    pub uuid: Option<&'a str>,
    /// The MAC address in use (`ethaddr`).
    pub mac: Mac,
    /// Our address (`ipaddr`).
    pub ip: Ipv4Addr,
    /// CONFIG_SYS_ARCH ([`ARCH`]).
    pub arch: &'a str,
    /// CONFIG_SYS_SOC, if the board has one.
    pub soc: Option<&'a str>,
    /// CONFIG_SYS_BOARD, if the board has one.
    pub board: Option<&'a str>,
}

/// `01-52-54-00-12-34-56`.
pub fn mac_name(mac: &Mac) -> String {
    format!(
        "01-{:02x}-{:02x}-{:02x}-{:02x}-{:02x}-{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

/// The directory part of `bootfile` (up to and including its last `/`),
/// which every pxelinux path is relative to; empty without one.
pub fn bootdir(bootfile: Option<&str>) -> &str {
    bootfile
        .and_then(|b| b.rfind('/').map(|i| &b[..=i]))
        .unwrap_or_default()
}

/// The configuration files to try, in order, as paths for the TFTP server.
pub fn config_candidates(bootfile: Option<&str>, id: &Identity<'_>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if let Some(u) = id.uuid.filter(|u| !u.is_empty()) {
        names.push(u.into());
    }
    names.push(mac_name(&id.mac));
    let hex = format!("{:08X}", u32::from(id.ip));
    for len in (1..=8).rev() {
        names.push(hex[..len].into());
    }
    if let Some(soc) = id.soc {
        if let Some(board) = id.board {
            names.push(format!("default-{}-{soc}-{board}", id.arch));
        }
        names.push(format!("default-{}-{soc}", id.arch));
    }
    names.push(format!("default-{}", id.arch));
    names.push("default".into());
    let dir = bootdir(bootfile);
    names
        .into_iter()
        .filter(|n| DIR.len() + n.len() <= MAX_PATH)
        .map(|n| format!("{dir}{DIR}{n}"))
        .filter(|p| p.len() <= MAX_PATH)
        .collect()
}

/// `pxe get`: fetches the first of [`config_candidates`] the server has
/// into `sink` (at `pxefile_addr_r`), printing `Retrieving file: <path>`
/// and the TFTP transcript for each try, as U-Boot does. A missing file (or
/// any other refusal by the server) moves on to the next name; ctrl-C and a
/// server that stopped answering end the search. Returns the path found and
/// its size (the caller prints `Config file '<path>' found` and sets
/// `filesize`); `NetError::NoPxeConfig` ("Config file not found") if none.
pub fn pxe_get<D: NetDevice>(
    stack: &mut NetStack<D>,
    ctx: &mut dyn Ctx,
    server: Ipv4Addr,
    bootfile: Option<&str>,
    id: &Identity<'_>,
    opts: &TftpOptions,
    sink: &mut dyn Sink,
) -> Result<(String, u64), NetError> {
    for path in config_candidates(bootfile, id) {
        ctx.print(&format!("Retrieving file: {path}\n"));
        let req = TftpRequest {
            server,
            filename: path.clone(),
            opts: opts.clone(),
        };
        match tftp::tftp_get(stack, ctx, &req, sink) {
            Ok(t) => return Ok((path, t.bytes)),
            Err(e @ (NetError::Aborted | NetError::Tftp(TftpError::Timeout { .. }))) => {
                return Err(e)
            }
            Err(e) => ctx.print(&format!("{e}\n")),
        }
    }
    Err(NetError::NoPxeConfig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn candidates_in_u_boot_order() {
        let id = Identity {
            uuid: None,
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            ip: Ipv4Addr::new(10, 0, 2, 15),
            arch: ARCH,
            soc: None,
            board: Some("qemu-arm"),
        };
        assert_eq!(
            config_candidates(None, &id),
            vec![
                "pxelinux.cfg/01-52-54-00-12-34-56",
                "pxelinux.cfg/0A00020F",
                "pxelinux.cfg/0A00020",
                "pxelinux.cfg/0A0002",
                "pxelinux.cfg/0A000",
                "pxelinux.cfg/0A00",
                "pxelinux.cfg/0A0",
                "pxelinux.cfg/0A",
                "pxelinux.cfg/0",
                "pxelinux.cfg/default-arm",
                "pxelinux.cfg/default",
            ]
        );
    }

    #[test]
    fn uuid_soc_and_the_bootfile_directory() {
        let id = Identity {
            uuid: Some("8f4a7c02-0d8c-4a7e-9a3e-0123456789ab"),
            mac: [2, 0, 0, 0, 0, 1],
            ip: Ipv4Addr::new(192, 168, 1, 10),
            arch: "arm",
            soc: Some("rk3399"),
            board: Some("rockpro64"),
        };
        let c = config_candidates(Some("boot/arm64/pxelinux.0"), &id);
        assert_eq!(
            c[0],
            "boot/arm64/pxelinux.cfg/8f4a7c02-0d8c-4a7e-9a3e-0123456789ab"
        );
        assert_eq!(c[2], "boot/arm64/pxelinux.cfg/C0A8010A");
        assert_eq!(
            &c[c.len() - 4..],
            &[
                "boot/arm64/pxelinux.cfg/default-arm-rk3399-rockpro64",
                "boot/arm64/pxelinux.cfg/default-arm-rk3399",
                "boot/arm64/pxelinux.cfg/default-arm",
                "boot/arm64/pxelinux.cfg/default",
            ]
        );
        assert_eq!(bootdir(Some("pxelinux.0")), "");
        assert_eq!(bootdir(Some("/srv/x/")), "/srv/x/");
    }

    #[test]
    fn over_long_names_are_skipped() {
        let long = "u".repeat(600);
        let id = Identity {
            uuid: Some(&long),
            mac: [2, 0, 0, 0, 0, 1],
            ip: Ipv4Addr::new(10, 0, 0, 1),
            arch: "arm",
            soc: None,
            board: None,
        };
        let c = config_candidates(None, &id);
        assert_eq!(c[0], "pxelinux.cfg/01-02-00-00-00-00-01");
    }
}
