//! U-Boot's distro boot as decisions (config_distro_bootcmd.h and
//! boot/pxe_utils.c): which partitions of a disk are scanned, which files are
//! looked for and in what order, the variables a boot script is given, and
//! what booting one extlinux label means — which files go where, the kernel
//! command line, the device tree and its overlays. The bin performs these
//! decisions with its disk (or network) reader; nothing here touches memory
//! or a device.

use crate::bootconf::{self, BootMenu, Label};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// `boot_prefixes`: the directories searched, in order.
pub const PREFIXES: &[&str] = &["/", "/boot/"];
/// `boot_syslinux_conf`, under each prefix.
pub const EXTLINUX: &str = "extlinux/extlinux.conf";
/// `boot_scripts` (U-Boot's two, then parkboot's plain-text `boot.cmd`).
pub const SCRIPTS: &[&str] = &["boot.scr.uimg", "boot.scr", "boot.cmd"];

/// One partition as the scan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartFacts {
    /// U-Boot number (0: the whole disk, no table).
    pub index: u32,
    /// MBR active flag / GPT legacy-BIOS-bootable attribute.
    pub bootable: bool,
    /// An MBR extended container (never a filesystem).
    pub extended: bool,
}

/// The partitions `scan_dev_for_boot_part` visits: the bootable ones when any is
/// (`part list -bootable`), else every partition (U-Boot tries only partition 1; parkboot
/// tries them all, as its `bootscript` always did). Extended containers are skipped.
#[must_use]
pub fn partitions_to_scan(parts: &[PartFacts]) -> Vec<u32> {
    let usable = parts.iter().filter(|p| !p.extended);
    let bootable: Vec<u32> = usable
        .clone()
        .filter(|p| p.bootable)
        .map(|p| p.index)
        .collect();
    if bootable.is_empty() {
        usable.map(|p| p.index).collect()
    } else {
        bootable
    }
}

/// What a scan looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// `<prefix>extlinux/extlinux.conf`, booted with `sysboot`.
    Extlinux { prefix: &'static str, path: String },
    /// A boot script, run with `source`.
    Script { prefix: &'static str, path: String },
}

impl Candidate {
    #[must_use]
    pub fn path(&self) -> &str {
        match self {
            Self::Extlinux { path, .. } | Self::Script { path, .. } => path,
        }
    }

    #[must_use]
    pub const fn prefix(&self) -> &'static str {
        match self {
            Self::Extlinux { prefix, .. } | Self::Script { prefix, .. } => prefix,
        }
    }
}

/// The files `scan_dev_for_boot` looks for on one partition, in U-Boot's order: for each
/// prefix, extlinux.conf first, then the scripts.
#[must_use]
pub fn candidates() -> Vec<Candidate> {
    let mut v = Vec::new();
    for &prefix in PREFIXES {
        v.push(Candidate::Extlinux {
            prefix,
            path: format!("{prefix}{EXTLINUX}"),
        });
        for s in SCRIPTS {
            v.push(Candidate::Script {
                prefix,
                path: format!("{prefix}{s}"),
            });
        }
    }
    v
}

/// The variables set before a candidate is tried (`devtype`, `devnum`, `distro_bootpart`,
/// `bootpart` for older scripts, `prefix`, and `script` for a script).
#[must_use]
pub fn distro_vars(
    devtype: &str,
    dev: usize,
    part: u32,
    c: &Candidate,
) -> Vec<(&'static str, String)> {
    let mut v = alloc::vec![
        ("devtype", devtype.to_string()),
        ("devnum", format!("{dev:x}")),
        ("distro_bootpart", format!("{part:x}")),
        ("bootpart", format!("{part:x}")),
        ("prefix", c.prefix().to_string()),
    ];
    if let Candidate::Script { path, prefix } = c {
        v.push(("script", path[prefix.len()..].to_string()));
    }
    v
}

/// Expands `${name}` and `$name` in `s` from `get` (U-Boot's
/// `cli_simple_process_macros` on an extlinux `append`): unknown names
/// expand to nothing; `\$` is a literal `$`.
pub fn expand(s: &str, get: &dyn Fn(&str) -> Option<String>) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if b.get(i + 1) == Some(&b'$') => {
                out.push('$');
                i += 2;
            }
            b'$' if b.get(i + 1) == Some(&b'{') => match s[i + 2..].find('}') {
                Some(end) => {
                    out.push_str(&get(&s[i + 2..i + 2 + end]).unwrap_or_default());
                    i += end + 3;
                }
                None => {
                    out.push_str(&s[i..]);
                    break;
                }
            },
            b'$' => {
                let n = b[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                if n == 0 {
                    out.push('$');
                } else {
                    out.push_str(&get(&s[i + 1..i + 1 + n]).unwrap_or_default());
                }
                i += n + 1;
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// Where booting one label takes its files from and what it hands the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelBoot {
    /// The label's display name (for messages).
    pub name: String,
    /// The kernel (Image, Image.gz or uImage), loaded at `kernel_addr_r`.
    pub kernel: String,
    /// Initrds, loaded back to back from `ramdisk_addr_r`.
    pub initrds: Vec<String>,
    /// The DT file, loaded at `fdt_addr_r`, and whether the label fails without it (`fdt`:
    /// yes; `fdtdir`: no, the loader's own DT is used instead).
    pub fdt: Option<(String, bool)>,
    /// Overlays applied to the DT (`fdtoverlays`).
    pub overlays: Vec<String>,
    /// The kernel command line, `${var}` expanded (None: `bootargs` is left as it is).
    pub bootargs: Option<String>,
    /// `kaslrseed`: write a seed into /chosen.
    pub kaslrseed: bool,
}

/// The facts from the environment that decide a label's boot.
#[derive(Debug, Clone, Default)]
pub struct BootEnv {
    pub fdtfile: Option<String>,
    pub soc: Option<String>,
    pub board: Option<String>,
}

/// What booting `label` of a configuration in `bootdir` (the config file's directory, with
/// its trailing `/`) loads: paths resolved as `sysboot` does (absolute paths stand for
/// themselves when `allow_abs`), the DT file chosen as [`Label::fdt_file`] says.
///
/// # Errors
/// `localboot` (not supported), no kernel, or a path over 512 bytes.
pub fn label_boot(
    label: &Label,
    bootdir: &str,
    allow_abs: bool,
    env: &BootEnv,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<LabelBoot, String> {
    let name = label.display_name().to_string();
    if label.localboot.is_some() && label.kernel.is_none() {
        return Err(format!("{name}: localboot is not supported"));
    }
    let kernel = label
        .kernel
        .as_deref()
        .ok_or_else(|| format!("No kernel given, skipping {name}"))?;
    let res = |p: &str| bootconf::resolve(bootdir, p, allow_abs);
    let kernel = res(kernel)?;
    let initrds = label
        .initrd
        .iter()
        .map(|p| res(p))
        .collect::<Result<Vec<_>, _>>()?;
    let fdt = match label.fdt_file(
        env.fdtfile.as_deref(),
        env.soc.as_deref(),
        env.board.as_deref(),
    ) {
        Some((p, required)) => Some((res(&p)?, required)),
        None => None,
    };
    let overlays = label
        .fdtoverlays
        .iter()
        .map(|p| res(p))
        .collect::<Result<Vec<_>, _>>()?;
    let bootargs = label.bootargs(get).map(|a| expand(&a, get));
    Ok(LabelBoot {
        name,
        kernel,
        initrds,
        fdt,
        overlays,
        bootargs,
        kaslrseed: label.kaslrseed,
    })
}

/// The labels to try, in order, once the menu has chosen `chosen` (or none was shown):
/// the choice first, then every other label as [`BootMenu::boot_order`] lists them.
#[must_use]
pub fn try_order(menu: &BootMenu, chosen: Option<usize>) -> Vec<usize> {
    let mut v: Vec<usize> = chosen.into_iter().collect();
    v.extend(
        menu.boot_order(None)
            .into_iter()
            .filter(|i| Some(*i) != chosen),
    );
    v
}

/// What the menu's answer means: a number picks that label; an empty answer or a timeout
/// takes the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAnswer {
    Label(usize),
    Default,
    /// Not a label number: ask again.
    Invalid,
}

#[must_use]
pub fn menu_answer(menu: &BootMenu, typed: Option<&str>) -> MenuAnswer {
    match typed.map(str::trim) {
        None | Some("") => MenuAnswer::Default,
        Some(t) => menu
            .by_key(t)
            .map_or(MenuAnswer::Invalid, MenuAnswer::Label),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn no_include(_: &str) -> Result<Vec<u8>, String> {
        Err("no includes".into())
    }

    #[test]
    fn scan_order_is_u_boots() {
        let c = candidates();
        let paths: Vec<&str> = c.iter().map(Candidate::path).collect();
        assert_eq!(
            paths,
            vec![
                "/extlinux/extlinux.conf",
                "/boot.scr.uimg",
                "/boot.scr",
                "/boot.cmd",
                "/boot/extlinux/extlinux.conf",
                "/boot/boot.scr.uimg",
                "/boot/boot.scr",
                "/boot/boot.cmd",
            ]
        );
        let vars = distro_vars("virtio", 0, 1, &c[6]);
        assert!(vars.contains(&("prefix", "/boot/".into())));
        assert!(vars.contains(&("script", "boot.scr".into())));
        assert!(vars.contains(&("distro_bootpart", "1".into())));
        assert!(vars.contains(&("devnum", "0".into())));
        let vars = distro_vars("virtio", 10, 2, &c[0]);
        assert!(vars.contains(&("devnum", "a".into())));
        assert!(!vars.iter().any(|(k, _)| *k == "script"));
    }

    #[test]
    fn bootable_partitions_first() {
        let p = |index, bootable, extended| PartFacts {
            index,
            bootable,
            extended,
        };
        assert_eq!(
            partitions_to_scan(&[p(1, false, false), p(2, true, false), p(3, false, false)]),
            vec![2]
        );
        assert_eq!(
            partitions_to_scan(&[p(1, false, false), p(2, false, true), p(5, false, false)]),
            vec![1, 5]
        );
        assert_eq!(partitions_to_scan(&[p(0, false, false)]), vec![0]);
        assert!(partitions_to_scan(&[]).is_empty());
    }

    #[test]
    fn expands_like_u_boot() {
        let get = |n: &str| match n {
            "root" => Some("/dev/vda2".to_string()),
            "console" => Some("ttyAMA0".to_string()),
            _ => None,
        };
        assert_eq!(
            expand("root=${root} console=$console x=$nope. \\$y ${open", &get),
            "root=/dev/vda2 console=ttyAMA0 x=. $y ${open"
        );
        assert_eq!(expand("a $ b é", &get), "a $ b é");
    }

    const CONF: &str = "default l0\nmenu title U-Boot menu\nprompt 0\ntimeout 50\n\nlabel l0\n\tmenu label Debian GNU/Linux 12 (bookworm) 6.1.0-18-arm64\n\tlinux /boot/vmlinuz-6.1.0-18-arm64\n\tinitrd /boot/initrd.img-6.1.0-18-arm64\n\tfdtdir /usr/lib/linux-image-6.1.0-18-arm64/\n\tfdtoverlays /boot/dtbo/a.dtbo b.dtbo\n\tappend root=${rootdev} ro quiet\n\nlabel l0r\n\tmenu label rescue\n\tlinux vmlinuz\n\tfdt board.dtb\n\tappend single\nlabel net\n\tlocalboot 1\n";

    #[test]
    fn a_label_becomes_files_and_a_command_line() {
        let (m, _) = bootconf::parse("extlinux.conf", CONF.as_bytes(), &mut no_include).unwrap();
        let env = BootEnv {
            fdtfile: Some("qemu/virt.dtb".into()),
            ..BootEnv::default()
        };
        let get = |n: &str| (n == "rootdev").then(|| "/dev/vda2".to_string());
        let b = label_boot(&m.labels[0], "/boot/extlinux/", true, &env, &get).unwrap();
        assert_eq!(b.kernel, "/boot/vmlinuz-6.1.0-18-arm64");
        assert_eq!(b.initrds, vec!["/boot/initrd.img-6.1.0-18-arm64"]);
        assert_eq!(
            b.fdt,
            Some((
                "/usr/lib/linux-image-6.1.0-18-arm64/qemu/virt.dtb".into(),
                false
            ))
        );
        assert_eq!(
            b.overlays,
            vec!["/boot/dtbo/a.dtbo", "/boot/extlinux/b.dtbo"]
        );
        assert_eq!(b.bootargs.as_deref(), Some("root=/dev/vda2 ro quiet"));
        // Relative paths join the config's directory; `fdt` is required.
        let r = label_boot(&m.labels[1], "/boot/extlinux/", true, &env, &get).unwrap();
        assert_eq!(r.kernel, "/boot/extlinux/vmlinuz");
        assert_eq!(r.fdt, Some(("/boot/extlinux/board.dtb".into(), true)));
        // localboot cannot be done here.
        assert_eq!(
            label_boot(&m.labels[2], "/", true, &env, &get).unwrap_err(),
            "net: localboot is not supported"
        );
        assert_eq!(try_order(&m, Some(1)), vec![1, 0, 2]);
        assert_eq!(try_order(&m, None), vec![0, 1, 2]);
        assert_eq!(menu_answer(&m, Some("2\n")), MenuAnswer::Label(1));
        assert_eq!(menu_answer(&m, Some("")), MenuAnswer::Default);
        assert_eq!(menu_answer(&m, None), MenuAnswer::Default);
        assert_eq!(menu_answer(&m, Some("9")), MenuAnswer::Invalid);
    }
}
