//! What every session shares: the loader copy, the disks, the U-Boot environment flash, the
//! in-memory chain's DTs, and the warm-up sessions that learn both loaders' versions.

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::cmd::output;
use xtask::disk::{self, DiskSpec, Source, Table};
use xtask::qemu::board_args;
use xtask::{kernel, root, virt_dt};

use super::options::Opts;
use super::session::{to_prompt, Session};
use super::{Loader, BOOTARGS, UBOOT_BIN};

/// U-Boot's qemu_arm64 environment: CONFIG_ENV_SIZE, at the start of the second flash bank.
pub(super) const UBOOT_ENV_SIZE: usize = 0x40000;

pub(super) const FLASH_BANK: u64 = 64 << 20;

pub(super) const MEMCHAIN_ROUNDS: u32 = 10;

pub(super) struct Ctx {
    pub(super) opts: Opts,
    pub(super) dir: PathBuf,
    pub(super) logs: PathBuf,
    pub(super) loader: PathBuf,
    pub(super) disk_typed: PathBuf,
    pub(super) disk_auto: PathBuf,
    pub(super) flash: PathBuf,
    pub(super) image_size: u64,
    pub(super) initrd_size: u64,
    pub(super) raw_blocks: u64,
    /// /Image + the test initramfs with /loader.bin appended (for the kexec chain).
    pub(super) disk_chain: PathBuf,
    /// Commands the loader's `help` lists.
    pub(super) commands: Vec<String>,
    /// The bare-metal test payload (for the in-memory chain).
    pub(super) payload: PathBuf,
    /// DTs for the in-memory chain, per `pen_gather` mode.
    pub(super) memchain_dtbs: Vec<(&'static str, PathBuf)>,
    /// The TFTP session's server directory: /Image only.
    pub(super) tftp_dir: PathBuf,
}

impl Ctx {
    /// The machine both loaders run on: virt at EL2, cortex-a57, 1 GiB, serial on stdio.
    pub(super) fn machine_args(&self, smp: u32) -> Vec<String> {
        self.machine_args_gic(smp, false)
    }

    /// The same with `gic-version=3` when `gic3`.
    pub(super) fn machine_args_gic(&self, smp: u32, gic3: bool) -> Vec<String> {
        let machine = if gic3 {
            "virt,virtualization=on,gic-version=3"
        } else {
            "virt,virtualization=on"
        };
        let mut a = board_args(machine, "cortex-a57", smp, "1G");
        a.extend(["-nic".to_string(), "none".to_string()]);
        if self.opts.prealloc {
            a.push("-mem-prealloc".into());
        }
        a
    }

    pub(super) fn qemu_args_gic(
        &self,
        l: Loader,
        disk_img: &Path,
        flash: bool,
        smp: u32,
        gic3: bool,
    ) -> Vec<String> {
        let mut a = self.machine_args_gic(smp, gic3);
        match l {
            Loader::UBoot => {
                a.push("-bios".into());
                a.push(UBOOT_BIN.into());
            }
            Loader::Parkboot => {
                a.push("-kernel".into());
                a.push(self.loader.display().to_string());
            }
        }
        a.extend(disk::qemu_disk_args(disk_img, "disk0"));
        if flash {
            // The same env flash bank for both (parkboot ignores it): identical machines.
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,unit=1,format=raw,file={}",
                self.flash.display()
            ));
        }
        a
    }

    /// Both loaders as the machine's firmware from reset: U-Boot's `-bios` on the non-secure
    /// machine (as Debian's u-boot-qemu is meant to run), parkboot's `-bios` on the same
    /// machine with `secure=on` (it starts at EL3 and keeps the resident PSCI part,
    /// docs/psci.md). Same disk and env flash as the other sessions.
    pub(super) fn qemu_args_firmware(&self, l: Loader, disk_img: &Path) -> Vec<String> {
        let machine = match l {
            Loader::UBoot => "virt,virtualization=on",
            Loader::Parkboot => "virt,secure=on,virtualization=on",
        };
        let mut a = board_args(machine, "cortex-a57", 4, "1G");
        a.extend(["-nic".to_string(), "none".to_string()]);
        if self.opts.prealloc {
            a.push("-mem-prealloc".into());
        }
        a.push("-bios".into());
        a.push(match l {
            Loader::UBoot => UBOOT_BIN.into(),
            Loader::Parkboot => self.loader.display().to_string(),
        });
        a.extend(disk::qemu_disk_args(disk_img, "disk0"));
        a.push("-drive".into());
        a.push(format!(
            "if=pflash,unit=1,format=raw,file={}",
            self.flash.display()
        ));
        a
    }

    /// A session of [`Ctx::qemu_args_firmware`].
    pub(super) fn session_firmware(
        &self,
        l: Loader,
        run: usize,
        disk_img: &Path,
    ) -> Result<Session, String> {
        let name = format!("{} firmware run {run}", l.name());
        let log = self.logs.join(format!("firmware-{}-{run}.log", l.tag()));
        Session::spawn(
            &name,
            &self.qemu_args_firmware(l, disk_img),
            log,
            &self.dir.join("qmp.sock"),
        )
    }

    pub(super) fn session(
        &self,
        l: Loader,
        mode: &str,
        run: usize,
        disk_img: &Path,
        flash: bool,
    ) -> Result<Session, String> {
        self.session_smp(l, mode, run, disk_img, flash, 4)
    }

    pub(super) fn session_smp(
        &self,
        l: Loader,
        mode: &str,
        run: usize,
        disk_img: &Path,
        flash: bool,
        smp: u32,
    ) -> Result<Session, String> {
        self.session_machine(l, mode, run, disk_img, flash, smp, false)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn session_machine(
        &self,
        l: Loader,
        mode: &str,
        run: usize,
        disk_img: &Path,
        flash: bool,
        smp: u32,
        gic3: bool,
    ) -> Result<Session, String> {
        let name = format!("{} {mode} run {run}", l.name());
        let log = self.logs.join(format!("{mode}-{}-{run}.log", l.tag()));
        Session::spawn(
            &name,
            &self.qemu_args_gic(l, disk_img, flash, smp, gic3),
            log,
            &self.dir.join("qmp.sock"),
        )
    }
}

pub(super) fn check_tools() -> Result<(), String> {
    disk::find_tool("qemu-system-aarch64", "qemu-system-arm")?;
    disk::find_tool("mkimage", "u-boot-tools")?;
    disk::find_tool("mkenvimage", "u-boot-tools")?;
    if !Path::new(UBOOT_BIN).is_file() {
        return Err(format!(
            "{UBOOT_BIN} not found: install the apt package u-boot-qemu (apt-get install u-boot-qemu)"
        ));
    }
    Ok(())
}

/// The script both loaders run (U-Boot gets it as a mkimage script image).
pub(super) fn boot_script() -> String {
    format!(
        "load virtio 0 ${{kernel_addr_r}} /Image\n\
         load virtio 0 ${{ramdisk_addr_r}} /initramfs.cpio.gz\n\
         setenv bootargs '{BOOTARGS}'\n\
         booti ${{kernel_addr_r}} ${{ramdisk_addr_r}}:${{filesize}} ${{fdtcontroladdr}}\n"
    )
}

pub(super) fn prepare(opts: Opts) -> Result<Ctx, String> {
    check_tools()?;
    let dir = root().join("target/bench");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("mkdir {}: {e}", logs.display()))?;

    let built = if opts.build {
        xtask::build::loader()?
    } else {
        root().join("target/loader.bin")
    };
    if !built.is_file() {
        return Err(format!(
            "{} not found: run `cargo xtask build` first",
            built.display()
        ));
    }
    // A private copy: the numbers belong to one binary even if it is rebuilt meanwhile.
    let loader = dir.join("loader.bin");
    std::fs::copy(&built, &loader).map_err(|e| format!("copy {}: {e}", built.display()))?;

    let k = kernel::ensure_kernel()?;
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let image_size = size(&k.image)?;
    let initrd_size = size(&k.initramfs)?;

    let script = boot_script();
    let cmd_path = dir.join("boot.cmd");
    std::fs::write(&cmd_path, &script).map_err(|e| format!("{}: {e}", cmd_path.display()))?;
    let scr_path = dir.join("boot.scr");
    output(
        Command::new("mkimage")
            .args([
                "-A",
                "arm64",
                "-O",
                "linux",
                "-T",
                "script",
                "-C",
                "none",
                "-n",
                "parkboot bench",
                "-d",
            ])
            .arg(&cmd_path)
            .arg(&scr_path),
    )?;
    let gather_line = [
        ("pen_gather", &opts.pen_gather),
        ("cpu_method", &opts.cpu_method),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}\n")))
    .collect::<String>();
    let files = |env: bool| {
        let mut f = vec![
            ("/Image".to_string(), Source::Host(k.image.clone())),
            (
                "/initramfs.cpio.gz".to_string(),
                Source::Host(k.initramfs.clone()),
            ),
            ("/boot.cmd".to_string(), Source::Host(cmd_path.clone())),
            ("/boot.scr".to_string(), Source::Host(scr_path.clone())),
            ("/loader.bin".to_string(), Source::Host(loader.clone())),
        ];
        let text = format!("{}{gather_line}", if env { "bootdelay=0\n" } else { "" });
        if !text.is_empty() {
            f.push((
                "/parkboot.env".to_string(),
                Source::Bytes(text.into_bytes()),
            ));
        }
        f
    };
    let payload = image_size + initrd_size + 4 * 1024 * 1024;
    let size_mib = (payload / (1 << 20) + 24).div_ceil(16) * 16;
    let disk_typed = dir.join("disk.img");
    let disk_auto = dir.join("disk-autoboot.img");
    for (p, env) in [(&disk_typed, false), (&disk_auto, true)] {
        disk::make_fat_disk(
            p,
            &DiskSpec {
                table: Table::Mbr,
                fat: 32,
                size_mib: size_mib.max(64),
                files: files(env),
                label: Some("PARKBOOT".into()),
            },
        )?;
    }
    // The kexec chain: loader → Linux → `kexec -l /loader.bin` → loader; the initramfs carries
    // the very loader.bin under test.
    let chain_rd = dir.join("initramfs-chain.cpio.gz");
    let loader_bytes = std::fs::read(&loader).map_err(|e| format!("{}: {e}", loader.display()))?;
    kernel::initramfs_with(&[("/loader.bin", loader_bytes)], &chain_rd)?;
    let disk_chain = dir.join("disk-chain.img");
    disk::make_fat_disk(
        &disk_chain,
        &DiskSpec {
            table: Table::Mbr,
            fat: 32,
            size_mib: size_mib.max(64),
            files: vec![
                ("/Image".to_string(), Source::Host(k.image.clone())),
                ("/initramfs.cpio.gz".to_string(), Source::Host(chain_rd)),
            ],
            label: Some("PARKBOOT".into()),
        },
    )?;
    eprintln!(
        "xtask: bench: disks {} and {} ({} MiB, MBR, FAT32; Image {} bytes, initramfs {} bytes)",
        disk_typed.display(),
        disk_auto.display(),
        size_mib.max(64),
        image_size,
        initrd_size
    );

    // The in-memory payload chain (docs/chain.md): payload.bin and loader.bin in RAM, a DT whose
    // /config/environment drives the chain, one per pen_gather mode.
    let built_payload = xtask::build::payload()?;
    let payload = dir.join("payload.bin");
    std::fs::copy(&built_payload, &payload)
        .map_err(|e| format!("copy {}: {e}", built_payload.display()))?;
    let loader_len = size(&loader)?;
    let mut memchain_dtbs = Vec::new();
    for gather in ["start", "boot"] {
        let node = virt_dt::config_environment_node(&virt_dt::MEMORY_CHAIN.env(
            loader_len,
            gather,
            MEMCHAIN_ROUNDS,
        ));
        let dtb = virt_dt::edited_virt_dtb(
            &dir,
            &format!("memchain-{gather}"),
            "virt,virtualization=on",
            "cortex-a57",
            4,
            "1G",
            |dts| virt_dt::dts_add_root_child(&dts, &node),
        )?;
        memchain_dtbs.push((gather, dtb));
    }

    // The TFTP server's directory: the same Image as on the disks, nothing else.
    let tftp_dir = dir.join("tftp");
    std::fs::create_dir_all(&tftp_dir).map_err(|e| format!("{}: {e}", tftp_dir.display()))?;
    std::fs::copy(&k.image, tftp_dir.join("Image"))
        .map_err(|e| format!("{}: {e}", k.image.display()))?;

    Ok(Ctx {
        tftp_dir,
        payload,
        memchain_dtbs,
        raw_blocks: image_size.div_ceil(512),
        opts,
        flash: dir.join("uboot-env-flash.img"),
        dir,
        logs,
        loader,
        disk_typed,
        disk_auto,
        image_size,
        initrd_size,
        disk_chain,
        commands: Vec::new(),
    })
}

/// U-Boot's default environment with bootdelay=0, in a 64 MiB flash bank image; also a warm-up
/// session. Returns U-Boot's version line.
pub(super) fn make_uboot_env(ctx: &Ctx) -> Result<String, String> {
    // An erased (0xff) bank without a valid env: U-Boot uses its built-in default environment.
    let erased = vec![0xffu8; FLASH_BANK as usize];
    std::fs::write(&ctx.flash, &erased).map_err(|e| format!("{}: {e}", ctx.flash.display()))?;
    let mut s = ctx.session(Loader::UBoot, "setup", 0, &ctx.disk_typed, true)?;
    let (_, _, banner) = to_prompt(&mut s)?;
    let version = banner
        .lines()
        .find(|l| l.trim_start().starts_with("U-Boot 20"))
        .unwrap_or("U-Boot (version line not seen)")
        .trim()
        .to_string();
    let env = s.cmd("printenv")?;
    drop(s);
    let mut text = String::new();
    let mut seen_delay = false;
    for l in env.lines() {
        if l.starts_with("Environment size:") || l.trim().is_empty() {
            continue;
        }
        let Some((k, _)) = l.split_once('=') else {
            return Err(format!("U-Boot printenv: unexpected line {l:?}"));
        };
        match k {
            // Set by U-Boot at run time after the environment is loaded.
            "fdtcontroladdr" => continue,
            "bootdelay" => {
                text.push_str("bootdelay=0\n");
                seen_delay = true;
            }
            _ => {
                text.push_str(l);
                text.push('\n');
            }
        }
    }
    if !seen_delay || !text.contains("bootcmd=") {
        return Err(format!(
            "U-Boot printenv gave no bootdelay/bootcmd: {env:?}"
        ));
    }
    let txt = ctx.dir.join("uboot-env.txt");
    let bin = ctx.dir.join("uboot-env.bin");
    std::fs::write(&txt, &text).map_err(|e| format!("{}: {e}", txt.display()))?;
    output(
        Command::new("mkenvimage")
            .args(["-s", &format!("{UBOOT_ENV_SIZE:#x}"), "-o"])
            .arg(&bin)
            .arg(&txt),
    )?;
    let mut img = std::fs::read(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    if img.len() != UBOOT_ENV_SIZE {
        return Err(format!(
            "mkenvimage wrote {} bytes, expected {UBOOT_ENV_SIZE}",
            img.len()
        ));
    }
    img.resize(FLASH_BANK as usize, 0xff);
    std::fs::write(&ctx.flash, &img).map_err(|e| format!("{}: {e}", ctx.flash.display()))?;
    Ok(version)
}

/// parkboot warm-up session: version line and which commands exist.
pub(super) fn probe_parkboot(ctx: &mut Ctx) -> Result<String, String> {
    let mut s = ctx.session(Loader::Parkboot, "setup", 0, &ctx.disk_typed, false)?;
    let (_, _, banner) = to_prompt(&mut s)?;
    let help = s.cmd("help")?;
    let names: Vec<&str> = help
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ctx.commands = names.iter().map(|n| n.to_string()).collect();
    Ok(banner
        .lines()
        .find(|l| l.trim_start().starts_with("parkboot "))
        .unwrap_or("parkboot (version line not seen)")
        .trim()
        .to_string())
}
