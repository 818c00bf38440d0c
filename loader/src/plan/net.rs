//! The network commands (`dhcp`, `bootp`, `tftpboot`, `wget`, `pxe`) as
//! plans: their arguments in U-Boot's forms, where a download may go (the
//! free RAM from the load address up to the next claim, U-Boot's
//! `lmb_get_free_size`), and what booting a pxelinux.cfg label fetches and
//! types. The bin's `cmd_net.rs` gathers the facts (env, memory map) and
//! runs the transfers; nothing here touches the network or memory.

use super::ArgError;
use crate::bootconf::{self, Label};
use crate::memmap::MemMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use shell::parse_hex;

/// `<cmd> [addr] [[ip:]file]` (U-Boot's `netboot_common`), parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetbootArgs {
    /// Where the file goes: the address given, else `${loadaddr}`.
    pub addr: Option<u64>,
    /// The `[ip:]file` given (`None`: `${bootfile}`).
    pub file: Option<String>,
}

impl NetbootArgs {
    /// Parses `args` (`args[0]` is the command name). One argument is an
    /// address when it is all hex digits, else a file name (U-Boot's rule:
    /// a file name must not look like a number); two are address and file.
    /// `loadaddr` is the env's default address.
    ///
    /// # Errors
    /// [`ArgError::Usage`] for more than two arguments, a bad address.
    pub fn parse(args: &[String], loadaddr: Option<&str>) -> Result<Self, ArgError> {
        let default = loadaddr.and_then(parse_hex);
        match args {
            [_] => Ok(Self {
                addr: default,
                file: None,
            }),
            [_, one] => match parse_hex(one) {
                Some(a) => Ok(Self {
                    addr: Some(a),
                    file: None,
                }),
                None => Ok(Self {
                    addr: default,
                    file: Some(one.clone()),
                }),
            },
            [_, a, f] => {
                let addr =
                    parse_hex(a).ok_or_else(|| ArgError::Bad(format!("bad address '{a}'")))?;
                Ok(Self {
                    addr: Some(addr),
                    file: Some(f.clone()),
                })
            }
            _ => Err(ArgError::Usage),
        }
    }

    /// The load address, or why there is none.
    ///
    /// # Errors
    /// `<cmd>: no load address: give <addr> or set loadaddr`.
    pub fn load_addr(&self, cmd: &str) -> Result<u64, String> {
        self.addr
            .ok_or_else(|| format!("{cmd}: no load address: give <addr> or set loadaddr"))
    }
}

/// How many bytes a download at `addr` may take: the free RAM from `addr`
/// up to the next claim or the end of its bank (U-Boot's
/// `lmb_get_free_size`).
///
/// # Errors
/// One line naming why nothing may be written at `addr`: it is not RAM, or
/// a claim (named) covers it.
pub fn download_limit(map: &MemMap, addr: u64) -> Result<u64, String> {
    if let Some(c) = map.claim_at(addr) {
        return Err(format!("{addr:#x} is in use: {c}; nothing loaded"));
    }
    map.free_regions()
        .into_iter()
        .find(|r| r.base <= addr && addr < r.end())
        .map(|r| r.end() - addr)
        .ok_or_else(|| format!("{addr:#x} is not in RAM; nothing loaded"))
}

/// `pxe get` / `pxe boot [addr]`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PxeCmd {
    /// `pxe get`: fetch the configuration to `${pxefile_addr_r}`.
    Get,
    /// `pxe boot [addr]`: boot from the configuration at `addr` (default
    /// `${pxefile_addr_r}`).
    Boot(Option<u64>),
}

impl PxeCmd {
    /// Parses `args` (`args[0]` is `pxe`).
    ///
    /// # Errors
    /// [`ArgError::Usage`], or a bad address.
    pub fn parse(args: &[String]) -> Result<Self, ArgError> {
        match args {
            [_, sub] if sub == "get" => Ok(Self::Get),
            [_, sub] if sub == "boot" => Ok(Self::Boot(None)),
            [_, sub, a] if sub == "boot" => parse_hex(a)
                .map(|a| Self::Boot(Some(a)))
                .ok_or_else(|| ArgError::Bad(format!("bad address '{a}'"))),
            _ => Err(ArgError::Usage),
        }
    }
}

/// `${name}` as a hex address, or U-Boot's message when it is missing.
///
/// # Errors
/// `missing environment variable: <name>` or `<name> '<v>' is not an address`.
pub fn env_addr(name: &str, value: Option<&str>) -> Result<u64, String> {
    let v = value.ok_or_else(|| format!("missing environment variable: {name}"))?;
    parse_hex(v).ok_or_else(|| format!("{name} '{v}' is not an address"))
}

/// One file a label needs, fetched by TFTP to the address in an env
/// variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The path on the server (already joined to the `bootfile` directory).
    pub path: String,
    /// The env variable holding the load address.
    pub addr_var: &'static str,
}

/// What booting one label does (U-Boot's `label_boot`, boot/pxe_utils.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelPlan {
    /// `localboot`: run `${localcmd}` (with `append` as `bootargs`), or do
    /// nothing when its value is negative.
    Local {
        /// `append` to set as `bootargs` first.
        bootargs: Option<String>,
        /// Whether to run `localcmd` (value >= 0).
        run: bool,
    },
    /// Fetch and boot.
    Boot(BootSteps),
}

/// The fetches and the boot of a kernel label, in U-Boot's order: initrd,
/// kernel, then the device tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSteps {
    pub initrd: Option<Fetch>,
    pub kernel: Fetch,
    /// The device tree and whether failing to fetch it skips the label.
    pub fdt: Option<(Fetch, bool)>,
    /// `bootargs` to set (already expanded), if the label has any.
    pub bootargs: Option<String>,
}

/// Plans `label`: the files to fetch (paths joined to `bootdir`, the
/// directory of `bootfile`) and the command line. `get` reads the env.
///
/// # Errors
/// U-Boot's one line: `No kernel given, skipping <label>`, or a path that is
/// too long.
pub fn plan_label(
    label: &Label,
    bootdir: &str,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<LabelPlan, String> {
    let bootargs = label.bootargs(get).map(|s| expand_vars(&s, get));
    if let Some(v) = label.localboot {
        return Ok(LabelPlan::Local {
            bootargs,
            run: v >= 0,
        });
    }
    let kernel = label
        .kernel
        .as_deref()
        .ok_or_else(|| format!("No kernel given, skipping {}", label.name))?;
    let fetch = |path: &str, addr_var| -> Result<Fetch, String> {
        Ok(Fetch {
            path: bootconf::resolve(bootdir, path, false)?,
            addr_var,
        })
    };
    let initrd = match label.initrd.first() {
        Some(i) => Some(fetch(i, "ramdisk_addr_r")?),
        None => None,
    };
    let fdt = if get("fdt_addr_r").is_some() {
        let fdtfile = get("fdtfile");
        let soc = get("soc");
        let board = get("board");
        match label.fdt_file(fdtfile.as_deref(), soc.as_deref(), board.as_deref()) {
            Some((path, required)) => Some((fetch(&path, "fdt_addr_r")?, required)),
            None => None,
        }
    } else {
        None
    };
    Ok(LabelPlan::Boot(BootSteps {
        initrd,
        kernel: fetch(kernel, "kernel_addr_r")?,
        fdt,
        bootargs,
    }))
}

/// booti's arguments after the fetches: `kernel_addr_r`, the initrd as
/// `ramdisk_addr_r:size` (or `-`), and the device tree — the one fetched,
/// else `${fdt_addr}`, else `${fdtcontroladdr}` (U-Boot's scenarios 1-3;
/// parkboot sets `fdtcontroladdr` to the DT it was given).
pub fn booti_args(
    kernel_addr: &str,
    initrd: Option<(&str, u64)>,
    fdt: Option<&str>,
) -> Vec<String> {
    let mut v = Vec::from(["booti".to_string(), kernel_addr.to_string()]);
    match (initrd, fdt) {
        (Some((a, n)), _) => v.push(format!("{a}:{n:x}")),
        (None, Some(_)) => v.push("-".into()),
        (None, None) => {}
    }
    if let Some(f) = fdt {
        v.push(f.to_string());
    }
    v
}

/// Whether a `fdt_high` / `initrd_high` value says "leave it in place": all ones, as
/// LAVA sets them (`0xffffffff`; a 64-bit U-Boot compares with `~0UL`, so both widths count).
pub fn in_place(high: Option<&str>) -> bool {
    matches!(high.and_then(parse_hex), Some(0xffff_ffff | u64::MAX))
}

/// Where booti writes the DT it hands on: where it was given (`booti … <fdt>`) when
/// `fdt_high` says in place, else `${fdt_addr_r}`. parkboot never moves the initrd, so
/// `initrd_high` needs nothing.
pub fn fdt_target(
    fdt_high: Option<&str>,
    given: Option<u64>,
    fdt_addr_r: Option<&str>,
) -> Option<String> {
    match given {
        Some(a) if in_place(fdt_high) => Some(format!("{a:#x}")),
        _ => fdt_addr_r.map(String::from),
    }
}

/// U-Boot's `cli_simple_process_macros` on a label's command line:
/// `${name}` and `$(name)` are replaced by the env value (empty when unset);
/// anything else is kept as it is.
pub fn expand_vars(s: &str, get: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let close = match after.as_bytes().first() {
            Some(b'{') => Some('}'),
            Some(b'(') => Some(')'),
            _ => None,
        };
        match close.and_then(|c| after[1..].find(c).map(|j| (c, j))) {
            Some((_, j)) => {
                let name = &after[1..=j];
                out.push_str(&get(name).unwrap_or_default());
                rest = &after[j + 2..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::Region;
    use crate::memmap::Owner;
    use alloc::vec;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(ToString::to_string).collect()
    }

    #[test]
    fn netboot_args_in_u_boots_forms() {
        let p = |s: &str| NetbootArgs::parse(&args(s), Some("0x40200000"));
        assert_eq!(
            p("tftpboot"),
            Ok(NetbootArgs {
                addr: Some(0x4020_0000),
                file: None
            })
        );
        assert_eq!(
            p("tftpboot 0x41000000"),
            Ok(NetbootArgs {
                addr: Some(0x4100_0000),
                file: None
            })
        );
        // A name that is not all hex digits is a file name ...
        assert_eq!(
            p("tftpboot Image"),
            Ok(NetbootArgs {
                addr: Some(0x4020_0000),
                file: Some("Image".into())
            })
        );
        // ... and one that is, an address (U-Boot's rule).
        assert_eq!(p("tftpboot beef").unwrap().addr, Some(0xbeef));
        assert_eq!(
            p("tftp 41000000 10.0.2.2:boot/Image"),
            Ok(NetbootArgs {
                addr: Some(0x4100_0000),
                file: Some("10.0.2.2:boot/Image".into())
            })
        );
        assert_eq!(
            p("tftp zz Image"),
            Err(ArgError::Bad("bad address 'zz'".into()))
        );
        assert_eq!(p("tftp 1 2 3"), Err(ArgError::Usage));
        let none = NetbootArgs::parse(&args("wget /x"), None).unwrap();
        assert_eq!(
            none.load_addr("wget"),
            Err("wget: no load address: give <addr> or set loadaddr".into())
        );
    }

    #[test]
    fn download_limit_is_the_free_ram_up_to_the_next_claim() {
        let mut map = MemMap::new(&[Region::new(0x4000_0000, 0x1000_0000)]);
        map.claim(0x4800_0000, 0x10_0000, Owner::Pen).unwrap();
        assert_eq!(download_limit(&map, 0x4000_0000), Ok(0x800_0000));
        assert_eq!(download_limit(&map, 0x47ff_fff0), Ok(0x10));
        assert_eq!(download_limit(&map, 0x4810_0000), Ok(0x7f0_0000));
        assert_eq!(
            download_limit(&map, 0x4800_1000),
            Err("0x48001000 is in use: 0x48000000..0x48100000 (pen); nothing loaded".into())
        );
        assert_eq!(
            download_limit(&map, 0x1000),
            Err("0x1000 is not in RAM; nothing loaded".into())
        );
        assert_eq!(
            download_limit(&map, 0x5000_0000),
            Err("0x50000000 is not in RAM; nothing loaded".into())
        );
    }

    #[test]
    fn pxe_subcommands() {
        assert_eq!(PxeCmd::parse(&args("pxe get")), Ok(PxeCmd::Get));
        assert_eq!(PxeCmd::parse(&args("pxe boot")), Ok(PxeCmd::Boot(None)));
        assert_eq!(
            PxeCmd::parse(&args("pxe boot 4e000000")),
            Ok(PxeCmd::Boot(Some(0x4e00_0000)))
        );
        assert_eq!(PxeCmd::parse(&args("pxe")), Err(ArgError::Usage));
        assert_eq!(PxeCmd::parse(&args("pxe get 1")), Err(ArgError::Usage));
        assert_eq!(
            PxeCmd::parse(&args("pxe boot q")),
            Err(ArgError::Bad("bad address 'q'".into()))
        );
        assert_eq!(
            env_addr("pxefile_addr_r", None),
            Err("missing environment variable: pxefile_addr_r".into())
        );
        assert_eq!(env_addr("x", Some("0x10")), Ok(0x10));
    }

    fn menu(text: &str) -> bootconf::BootMenu {
        let mut none = |_: &str| -> Result<Vec<u8>, String> { Err("no".into()) };
        bootconf::parse("default", text.as_bytes(), &mut none)
            .unwrap()
            .0
    }

    #[test]
    fn a_label_fetches_initrd_kernel_fdt_and_expands_append() {
        let m = menu(
            "default l\nlabel l\n kernel Image\n initrd uInitrd\n fdt virt.dtb\n append console=${con} root=/dev/ram0\n ipappend 1\n",
        );
        let env = |n: &str| -> Option<String> {
            match n {
                "con" => Some("ttyAMA0".into()),
                "ipaddr" => Some("10.0.2.15".into()),
                "serverip" => Some("10.0.2.2".into()),
                "fdt_addr_r" => Some("0x40000000".into()),
                _ => None,
            }
        };
        let plan = plan_label(&m.labels[0], "boot/", &env).unwrap();
        assert_eq!(
            plan,
            LabelPlan::Boot(BootSteps {
                initrd: Some(Fetch {
                    path: "boot/uInitrd".into(),
                    addr_var: "ramdisk_addr_r"
                }),
                kernel: Fetch {
                    path: "boot/Image".into(),
                    addr_var: "kernel_addr_r"
                },
                fdt: Some((
                    Fetch {
                        path: "boot/virt.dtb".into(),
                        addr_var: "fdt_addr_r"
                    },
                    true
                )),
                bootargs: Some("console=ttyAMA0 root=/dev/ram0 ip=10.0.2.15:10.0.2.2::".into()),
            })
        );
        // Without fdt_addr_r no device tree is fetched; an absolute path is joined (pxe).
        let m = menu("label a\n kernel /vmlinuz\n fdtdir /dtbs\n");
        let plan = plan_label(&m.labels[0], "", &|_| None).unwrap();
        let LabelPlan::Boot(s) = plan else {
            panic!("{plan:?}")
        };
        assert_eq!(s.kernel.path, "/vmlinuz");
        assert_eq!(s.fdt, None);
        assert_eq!(s.initrd, None);
        assert_eq!(s.bootargs, None);
        let m = menu("label nok\n append x\n");
        assert_eq!(
            plan_label(&m.labels[0], "", &|_| None),
            Err("No kernel given, skipping nok".into())
        );
        let m = menu("label lb\n localboot -1\n");
        assert_eq!(
            plan_label(&m.labels[0], "", &|_| None),
            Ok(LabelPlan::Local {
                bootargs: None,
                run: false
            })
        );
    }

    #[test]
    fn booti_arguments_for_each_scenario() {
        assert_eq!(
            booti_args(
                "0x40400000",
                Some(("0x44000000", 0x1234)),
                Some("0x40000000")
            ),
            args("booti 0x40400000 0x44000000:1234 0x40000000")
        );
        assert_eq!(booti_args("k", None, Some("f")), args("booti k - f"));
        assert_eq!(booti_args("k", Some(("r", 1)), None), args("booti k r:1"));
        assert_eq!(booti_args("k", None, None), args("booti k"));
    }

    #[test]
    fn high_limits_of_all_ones_leave_the_dt_where_it_is() {
        assert!(in_place(Some("0xffffffff")));
        assert!(in_place(Some("ffffffffffffffff")));
        assert!(!in_place(Some("0x80000000")));
        assert!(!in_place(None));
        assert!(!in_place(Some("no")));
        assert_eq!(
            fdt_target(Some("0xffffffff"), Some(0x4c20_0000), Some("0x4a000000")),
            Some("0x4c200000".into())
        );
        assert_eq!(
            fdt_target(None, Some(0x4c20_0000), Some("0x4a000000")),
            Some("0x4a000000".into())
        );
        assert_eq!(
            fdt_target(Some("0xffffffff"), None, Some("0x4a000000")),
            Some("0x4a000000".into())
        );
    }

    #[test]
    fn macros_expand_like_u_boots() {
        let env = |n: &str| (n == "a").then(|| "A".to_string());
        assert_eq!(expand_vars("x=${a} y=$(a) z=${b}.", &env), "x=A y=A z=.");
        assert_eq!(
            expand_vars("cost $5 ${unclosed", &env),
            "cost $5 ${unclosed"
        );
        assert_eq!(expand_vars("$", &env), "$");
        assert_eq!(expand_vars("", &env), "");
        assert_eq!(vec![expand_vars("é${a}é", &env)], vec!["éAé"]);
    }
}
