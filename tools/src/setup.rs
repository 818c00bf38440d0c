//! The first minute: make this machine able to do what a `cargo xtask` command needs.
//!
//! `cargo xtask` itself is a host build, so it runs before the arm64 target exists. Before
//! `build`, `run`, `test`, `bench`, … it calls [`ensure`], which
//! 1. probes the machine (read-only, offline, ~0.1 s): the rustup targets and components that
//!    rust-toolchain.toml names (rustup 1.28+ no longer installs them for an installed
//!    toolchain), the Debian packages the command runs (dpkg's database), and whether dpkg knows
//!    the arm64 architecture (the test kernel is fetched from Debian's arm64 packages);
//! 2. plans what is missing ([`plan`], a pure function);
//! 3. installs it: `rustup target add` / `rustup component add` (per user, no root needed), and as
//!    root `dpkg --add-architecture arm64`, `apt-get update`, `apt-get install`; not as root it
//!    prints the one command to run and stops;
//! 4. probes again and stops if anything is still missing.
//!
//! Everything that touches the machine goes through [`Host`], so the logic is tested with a fake
//! machine (the unit tests below) and the real commands with fake programs on `PATH`
//! (tools/tests/setup.rs); nothing in the tests changes the real toolchain.
//! `cargo xtask setup [build|run|test|bench|lava|kernel|disk]` runs it alone.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// What the command about to run needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// loader.bin / payload.bin: the Rust target only.
    Build,
    /// Disk images.
    Disk,
    /// The test kernel and initramfs from Debian's arm64 packages.
    Kernel,
    /// `cargo xtask run`: build, demo disk (with the kernel), QEMU.
    Run,
    /// `cargo xtask test`: everything CI runs.
    Test,
    /// `cargo xtask bench`: both loaders on QEMU.
    Bench,
    /// `cargo xtask lava`: a real LAVA job (Debian's lava-dispatcher) on QEMU running parkboot.
    Lava,
}

impl Purpose {
    pub fn parse(s: &str) -> Option<Purpose> {
        Some(match s {
            "build" | "payload" => Purpose::Build,
            "disk" => Purpose::Disk,
            "kernel" => Purpose::Kernel,
            "run" => Purpose::Run,
            "test" => Purpose::Test,
            "bench" => Purpose::Bench,
            "lava" => Purpose::Lava,
            _ => return None,
        })
    }

    /// Whether the command fetches the test kernel (and so needs dpkg's arm64 architecture).
    fn fetches_kernel(self) -> bool {
        matches!(
            self,
            Purpose::Kernel | Purpose::Run | Purpose::Test | Purpose::Bench | Purpose::Lava
        )
    }
}

/// A Debian package a command runs a program of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AptNeed {
    pub package: &'static str,
    /// A program (or file) it provides: checked where there is no dpkg.
    pub provides: &'static str,
    pub why: &'static str,
    pub for_: &'static [Purpose],
}

use Purpose::{Bench, Disk, Kernel, Lava, Run, Test};

/// Every Debian package a `cargo xtask` command needs (beyond Debian's essential set: dpkg,
/// apt, tar).
pub const APT_NEEDS: &[AptNeed] = &[
    AptNeed {
        package: "qemu-system-arm",
        provides: "qemu-system-aarch64",
        why: "the board (QEMU virt)",
        for_: &[Run, Test, Bench, Lava],
    },
    AptNeed {
        package: "u-boot-qemu",
        provides: "/usr/lib/u-boot/qemu_arm64/u-boot.bin",
        why: "U-Boot for the relocation test and the benchmark",
        for_: &[Test, Bench],
    },
    AptNeed {
        package: "u-boot-tools",
        provides: "mkimage",
        why: "mkimage (boot.scr images, LAVA's ramdisk header), mkenvimage (bench)",
        for_: &[Test, Bench, Lava],
    },
    AptNeed {
        package: "device-tree-compiler",
        provides: "dtc",
        why: "dtc (edited DTBs: extra CPUs, spin-table, memreserve; QEMU's DTB for LAVA)",
        for_: &[Test, Bench, Lava],
    },
    AptNeed {
        package: "dosfstools",
        provides: "mkfs.fat",
        why: "mkfs.fat (FAT test disks), fsck.fat (drivers tests)",
        for_: &[Disk, Run, Test, Bench],
    },
    AptNeed {
        package: "mtools",
        provides: "mcopy",
        why: "mcopy/mmd (files into FAT images without loop devices)",
        for_: &[Disk, Run, Test, Bench],
    },
    AptNeed {
        package: "fdisk",
        provides: "sfdisk",
        why: "sfdisk (MBR/GPT test disks)",
        for_: &[Disk, Run, Test, Bench],
    },
    AptNeed {
        package: "gzip",
        provides: "gzip",
        why: "Image.gz and the test initramfs",
        for_: &[Kernel, Run, Test, Bench, Lava],
    },
    AptNeed {
        package: "python3-jinja2",
        provides: "/usr/lib/python3/dist-packages/jinja2",
        why: "rendering the LAVA device type with LAVA's templates (tools/lava/render.py)",
        for_: &[Test, Lava],
    },
    AptNeed {
        package: "python3-yaml",
        provides: "/usr/lib/python3/dist-packages/yaml",
        why: "reading the rendered LAVA device configuration (tools/lava/render.py)",
        for_: &[Test, Lava],
    },
    AptNeed {
        package: "lava-dispatcher",
        provides: "lava-run",
        why: "lava-run: LAVA's dispatcher running a job on the QEMU board",
        for_: &[Lava],
    },
    AptNeed {
        package: "tftpd-hpa",
        provides: "in.tftpd",
        why:
            "LAVA's tftp deploy checks for it and reads its TFTP_DIRECTORY (QEMU serves the files)",
        for_: &[Lava],
    },
];

/// The Debian packages `purpose` needs.
pub fn apt_needs(purpose: Purpose) -> Vec<&'static AptNeed> {
    APT_NEEDS
        .iter()
        .filter(|n| n.for_.contains(&purpose))
        .collect()
}

/// What rust-toolchain.toml asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toolchain {
    pub targets: Vec<String>,
    pub components: Vec<String>,
}

/// Reads `targets` and `components` of the `[toolchain]` table (string arrays, possibly over
/// several lines). The file is the project's own and small; a TOML crate would be the first
/// dependency of the host build that has to work before anything else.
pub fn parse_toolchain_file(text: &str) -> Result<Toolchain, String> {
    let mut tc = Toolchain::default();
    let mut table = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = strip_comment(line).trim();
        if let Some(t) = line.strip_prefix('[') {
            table = t.trim_end_matches(']').trim().to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if table != "toolchain" || (key != "targets" && key != "components") {
            continue;
        }
        let mut value = value.trim().to_string();
        if !value.starts_with('[') {
            return Err(format!("rust-toolchain.toml: `{key}` is not an array"));
        }
        while !value.contains(']') {
            let next = lines
                .next()
                .ok_or_else(|| format!("rust-toolchain.toml: `{key}` has no closing ]"))?;
            value.push_str(strip_comment(next));
        }
        let inner = &value[1..value.find(']').unwrap_or(value.len())];
        let items: Vec<String> = inner
            .split(',')
            .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if key == "targets" {
            tc.targets = items;
        } else {
            tc.components = items;
        }
    }
    Ok(tc)
}

fn strip_comment(line: &str) -> &str {
    // No '#' appears inside the file's strings.
    line.split('#').next().unwrap_or("")
}

/// What the machine has (the result of probing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Installed rustup targets; None: rustup is not there.
    pub targets: Option<BTreeSet<String>>,
    /// `rustup component list --installed` lines (e.g. "clippy-x86_64-unknown-linux-gnu").
    pub components: BTreeSet<String>,
    /// Targets the active rustc's sysroot has (where rustup is not there).
    pub sysroot_targets: BTreeSet<String>,
    /// Installed Debian packages; None: no dpkg (not Debian).
    pub packages: Option<BTreeSet<String>>,
    /// Programs found on PATH (checked where there is no dpkg).
    pub programs: BTreeSet<String>,
    /// dpkg's native or a foreign architecture is arm64.
    pub arm64: bool,
    pub root: bool,
    /// build/kernel holds a complete cached package set: the kernel fetch asks apt nothing.
    pub kernel_cached: bool,
}

/// A command that changes the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub program: &'static str,
    pub args: Vec<String>,
}

impl Step {
    fn new(program: &'static str, args: &[&str]) -> Step {
        Step {
            program,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn shell(&self) -> String {
        let mut s = self.program.to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// What to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// rustup steps (per user).
    pub rust: Vec<Step>,
    /// Steps that need root (dpkg/apt).
    pub system: Vec<Step>,
    /// Problems no step can fix here (e.g. no rustup and the target missing).
    pub blocked: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.rust.is_empty() && self.system.is_empty() && self.blocked.is_empty()
    }

    /// The one command a user without root runs for the system steps.
    pub fn sudo_command(&self) -> String {
        let joined: Vec<String> = self.system.iter().map(Step::shell).collect();
        format!("sudo sh -c '{}'", joined.join(" && "))
    }
}

/// Whether `rustup component list --installed` has `name`, alone (e.g. rust-src) or for one of
/// the installed targets (e.g. clippy-x86_64-unknown-linux-gnu).
fn component_installed(state: &State, name: &str) -> bool {
    let targets = state.targets.as_ref();
    state.components.iter().any(|line| {
        line == name
            || line
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|triple| targets.is_some_and(|t| t.contains(triple)))
    })
}

fn need_met(state: &State, need: &AptNeed) -> bool {
    match &state.packages {
        Some(p) => p.contains(need.package),
        None => state.programs.contains(need.provides),
    }
}

/// What `purpose` still needs on a machine in `state`.
pub fn plan(purpose: Purpose, tc: &Toolchain, state: &State) -> Plan {
    let mut p = Plan::default();
    match &state.targets {
        Some(installed) => {
            let missing: Vec<&str> = tc
                .targets
                .iter()
                .filter(|t| !installed.contains(*t))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                let mut args = vec!["target", "add"];
                args.extend(missing);
                p.rust.push(Step::new("rustup", &args));
            }
            let missing: Vec<&str> = tc
                .components
                .iter()
                .filter(|c| !component_installed(state, c))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                let mut args = vec!["component", "add"];
                args.extend(missing);
                p.rust.push(Step::new("rustup", &args));
            }
        }
        None => {
            for t in &tc.targets {
                if !state.sysroot_targets.contains(t) {
                    p.blocked.push(format!(
                        "the Rust target {t} is missing and there is no rustup to add it \
                         (install rustup: https://rustup.rs, then run this again)"
                    ));
                }
            }
        }
    }
    let missing: Vec<&str> = apt_needs(purpose)
        .into_iter()
        .filter(|n| !need_met(state, n))
        .map(|n| n.package)
        .collect();
    let add_arch = purpose.fetches_kernel() && !state.kernel_cached && !state.arm64;
    if state.packages.is_none() {
        if !missing.is_empty() {
            p.blocked.push(format!(
                "missing programs; on Debian they come from the packages {}",
                missing.join(" ")
            ));
        }
        return p;
    }
    if add_arch {
        p.system
            .push(Step::new("dpkg", &["--add-architecture", "arm64"]));
    }
    if add_arch || !missing.is_empty() {
        p.system.push(Step::new("apt-get", &["update", "-q"]));
    }
    if !missing.is_empty() {
        let mut args = vec!["install", "-y", "-q"];
        args.extend(missing);
        p.system.push(Step::new("apt-get", &args));
    }
    p
}

/// A probe's result: whether it exited 0, and its standard output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
}

/// The machine, as far as setup touches it.
pub trait Host {
    /// Runs a read-only probe; Err when the program cannot be started (not installed).
    fn probe(&mut self, program: &str, args: &[&str]) -> Result<Output, String>;
    /// Runs a step that changes the machine, its output going to the terminal.
    fn change(&mut self, step: &Step) -> Result<(), String>;
    /// Whether a file exists (absolute path) or a program is on PATH.
    fn has(&mut self, what: &str) -> bool;
    /// Whether build/kernel holds a complete cached package set.
    fn kernel_cached(&mut self) -> bool;
    /// A line for the user.
    fn say(&mut self, line: &str);
}

fn lines(out: &Output) -> BTreeSet<String> {
    out.stdout
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Reads the machine's state (nothing is changed).
pub fn probe(host: &mut dyn Host, tc: &Toolchain) -> State {
    let mut s = State::default();
    if let Ok(o) = host.probe("rustup", &["target", "list", "--installed"]) {
        if o.ok {
            s.targets = Some(lines(&o));
            if let Ok(c) = host.probe("rustup", &["component", "list", "--installed"]) {
                s.components = lines(&c);
            }
        }
    }
    if s.targets.is_none() {
        if let Ok(o) = host.probe("rustc", &["--print", "sysroot"]) {
            let sysroot = o.stdout.trim().to_string();
            for t in &tc.targets {
                if host.has(&format!("{sysroot}/lib/rustlib/{t}/lib")) {
                    s.sysroot_targets.insert(t.clone());
                }
            }
        }
    }
    let names: Vec<&str> = APT_NEEDS.iter().map(|n| n.package).collect();
    let mut args = vec!["-W", "-f", "${db:Status-Abbrev} ${Package}\\n"];
    args.extend(&names);
    // dpkg-query exits 1 when some package is unknown; the known ones are still listed.
    if let Ok(o) = host.probe("dpkg-query", &args) {
        s.packages = Some(
            o.stdout
                .lines()
                .filter_map(|l| l.strip_prefix("ii "))
                .map(|p| p.trim().to_string())
                .collect(),
        );
        let native = host
            .probe("dpkg", &["--print-architecture"])
            .map(|o| o.stdout)
            .unwrap_or_default();
        let foreign = host
            .probe("dpkg", &["--print-foreign-architectures"])
            .map(|o| o.stdout)
            .unwrap_or_default();
        s.arm64 = native.trim() == "arm64" || foreign.lines().any(|l| l.trim() == "arm64");
    } else {
        for n in APT_NEEDS {
            if host.has(n.provides) {
                s.programs.insert(n.provides.to_string());
            }
        }
    }
    s.root = host
        .probe("id", &["-u"])
        .is_ok_and(|o| o.ok && o.stdout.trim() == "0");
    s.kernel_cached = host.kernel_cached();
    s
}

/// Makes the machine ready for `purpose`: probe, plan, install (see the module docs).
pub fn ensure(host: &mut dyn Host, tc: &Toolchain, purpose: Purpose) -> Result<(), String> {
    let state = probe(host, tc);
    let p = plan(purpose, tc, &state);
    if p.is_empty() {
        return Ok(());
    }
    if let Some(why) = p.blocked.first() {
        return Err(format!("setup: {why}"));
    }
    for step in &p.rust {
        host.say(&format!("setup: {}", step.shell()));
        host.change(step)?;
    }
    if !p.system.is_empty() {
        if !state.root {
            return Err(format!(
                "setup: this needs system packages; run (as root):\n    {}\nthen run this again",
                p.sudo_command()
            ));
        }
        for step in &p.system {
            host.say(&format!("setup: {}", step.shell()));
            host.change(step)?;
        }
    }
    let after = plan(purpose, tc, &probe(host, tc));
    if !after.is_empty() {
        let left: Vec<String> = after
            .rust
            .iter()
            .chain(&after.system)
            .map(Step::shell)
            .chain(after.blocked)
            .collect();
        return Err(format!(
            "setup: still missing after installing: {}",
            left.join("; ")
        ));
    }
    host.say("setup: done");
    Ok(())
}

/// The real machine: programs by name from PATH.
pub struct RealHost {
    /// The kernel's packages are about to be fetched (`kernel --refresh`): the cached set does
    /// not count.
    pub fetching: bool,
}

impl Host for RealHost {
    fn probe(&mut self, program: &str, args: &[&str]) -> Result<Output, String> {
        let o = Command::new(program)
            .args(args)
            .current_dir(crate::root())
            .stderr(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        Ok(Output {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        })
    }

    fn change(&mut self, step: &Step) -> Result<(), String> {
        let st = Command::new(step.program)
            .args(&step.args)
            .current_dir(crate::root())
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("{}: {e}", step.program))?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("setup: `{}` failed: {st}", step.shell()))
        }
    }

    fn has(&mut self, what: &str) -> bool {
        if what.starts_with('/') {
            Path::new(what).exists()
        } else {
            crate::disk::find_tool(what, "").is_ok()
        }
    }

    fn kernel_cached(&mut self) -> bool {
        !self.fetching && crate::kernel::package_set_cached()
    }

    fn say(&mut self, line: &str) {
        eprintln!("xtask: {line}");
    }
}

/// rust-toolchain.toml of the workspace.
pub fn toolchain() -> Result<Toolchain, String> {
    let p = crate::root().join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    parse_toolchain_file(&text)
}

/// [`ensure`] on the real machine with the workspace's toolchain file.
pub fn ensure_real(purpose: Purpose) -> Result<(), String> {
    ensure(&mut RealHost { fetching: false }, &toolchain()?, purpose)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "[toolchain]\nchannel = \"stable\"\ntargets = [\"aarch64-unknown-none\"]\n\
                        components = [\"rustfmt\", \"clippy\"]\nprofile = \"minimal\"\n";

    fn tc() -> Toolchain {
        parse_toolchain_file(FILE).unwrap()
    }

    #[test]
    fn toolchain_file_is_read() {
        assert_eq!(
            tc(),
            Toolchain {
                targets: vec!["aarch64-unknown-none".into()],
                components: vec!["rustfmt".into(), "clippy".into()],
            }
        );
        let multi = "# x\n[toolchain]\ntargets = [\n  \"a-b-c\", # first\n  'd-e-f',\n]\n\
                     [other]\ncomponents = [\"x\"]\n";
        let t = parse_toolchain_file(multi).unwrap();
        assert_eq!(t.targets, ["a-b-c", "d-e-f"]);
        assert!(t.components.is_empty(), "components of another table");
        assert!(parse_toolchain_file("[toolchain]\ntargets = \"x\"").is_err());
        assert!(parse_toolchain_file("[toolchain]\ntargets = [\"x\",").is_err());
    }

    #[test]
    fn the_workspace_toolchain_file_names_the_target() {
        let t = toolchain().unwrap();
        assert!(t.targets.contains(&"aarch64-unknown-none".to_string()));
        assert!(t.components.contains(&"clippy".to_string()));
    }

    /// A machine with everything `Test` needs.
    fn ready() -> State {
        State {
            targets: Some(
                ["x86_64-unknown-linux-gnu", "aarch64-unknown-none"]
                    .map(String::from)
                    .into(),
            ),
            components: [
                "cargo-x86_64-unknown-linux-gnu",
                "clippy-x86_64-unknown-linux-gnu",
                "rustfmt-x86_64-unknown-linux-gnu",
                "rust-std-aarch64-unknown-none",
            ]
            .map(String::from)
            .into(),
            packages: Some(APT_NEEDS.iter().map(|n| n.package.to_string()).collect()),
            arm64: true,
            root: true,
            ..State::default()
        }
    }

    #[test]
    fn nothing_to_do_on_a_ready_machine() {
        for p in [
            Purpose::Build,
            Purpose::Run,
            Purpose::Test,
            Purpose::Bench,
            Purpose::Lava,
        ] {
            assert_eq!(plan(p, &tc(), &ready()), Plan::default(), "{p:?}");
        }
    }

    #[test]
    fn missing_target_and_component_are_added_with_rustup() {
        let mut s = ready();
        s.targets.as_mut().unwrap().remove("aarch64-unknown-none");
        s.components.remove("clippy-x86_64-unknown-linux-gnu");
        let p = plan(Purpose::Build, &tc(), &s);
        let cmds: Vec<String> = p.rust.iter().map(Step::shell).collect();
        assert_eq!(
            cmds,
            [
                "rustup target add aarch64-unknown-none",
                "rustup component add clippy"
            ]
        );
        assert!(p.system.is_empty() && p.blocked.is_empty());
    }

    #[test]
    fn component_names_match_whole_names_only() {
        let mut s = ready();
        s.components = ["rustfmt-preview", "clippy-driver-x86_64-unknown-linux-gnu"]
            .map(String::from)
            .into();
        let p = plan(Purpose::Build, &tc(), &s);
        assert_eq!(p.rust[0].shell(), "rustup component add rustfmt clippy");
    }

    #[test]
    fn each_purpose_asks_only_for_its_packages() {
        let mut s = ready();
        s.packages = Some(BTreeSet::new());
        let pkgs = |p: Purpose| -> String {
            plan(p, &tc(), &s)
                .system
                .iter()
                .find(|st| st.args.first().map(String::as_str) == Some("install"))
                .map(|st| st.args[3..].join(" "))
                .unwrap_or_default()
        };
        assert_eq!(pkgs(Purpose::Build), "");
        assert_eq!(pkgs(Purpose::Disk), "dosfstools mtools fdisk");
        assert_eq!(
            pkgs(Purpose::Run),
            "qemu-system-arm dosfstools mtools fdisk gzip"
        );
        assert_eq!(
            pkgs(Purpose::Test),
            "qemu-system-arm u-boot-qemu u-boot-tools device-tree-compiler dosfstools mtools fdisk gzip \
             python3-jinja2 python3-yaml"
        );
        assert_eq!(
            pkgs(Purpose::Lava),
            "qemu-system-arm u-boot-tools device-tree-compiler gzip python3-jinja2 python3-yaml \
             lava-dispatcher tftpd-hpa"
        );
    }

    #[test]
    fn arm64_is_added_only_when_the_kernel_must_be_fetched() {
        let mut s = ready();
        s.arm64 = false;
        let p = plan(Purpose::Test, &tc(), &s);
        let cmds: Vec<String> = p.system.iter().map(Step::shell).collect();
        assert_eq!(cmds, ["dpkg --add-architecture arm64", "apt-get update -q"]);
        assert!(plan(Purpose::Build, &tc(), &s).is_empty());
        s.kernel_cached = true;
        assert!(plan(Purpose::Test, &tc(), &s).is_empty());
    }

    #[test]
    fn without_root_the_one_command_is_printed() {
        let mut s = ready();
        s.arm64 = false;
        s.packages.as_mut().unwrap().remove("mtools");
        s.packages.as_mut().unwrap().remove("gzip");
        let p = plan(Purpose::Run, &tc(), &s);
        assert_eq!(
            p.sudo_command(),
            "sudo sh -c 'dpkg --add-architecture arm64 && apt-get update -q && \
             apt-get install -y -q mtools gzip'"
        );
    }

    #[test]
    fn without_rustup_a_missing_target_is_blocked() {
        let mut s = ready();
        s.targets = None;
        let p = plan(Purpose::Build, &tc(), &s);
        assert!(p.blocked[0].contains("aarch64-unknown-none"), "{p:?}");
        s.sysroot_targets.insert("aarch64-unknown-none".into());
        assert!(plan(Purpose::Build, &tc(), &s).is_empty());
    }

    #[test]
    fn without_dpkg_programs_are_checked_by_name() {
        let mut s = ready();
        s.packages = None;
        s.programs = APT_NEEDS.iter().map(|n| n.provides.to_string()).collect();
        assert!(plan(Purpose::Test, &tc(), &s).is_empty());
        s.programs.remove("dtc");
        let p = plan(Purpose::Test, &tc(), &s);
        assert!(p.blocked[0].ends_with("device-tree-compiler"), "{p:?}");
        assert!(p.system.is_empty());
    }

    /// A simulated machine: answers the probes from its state and applies the steps to it.
    struct Fake {
        state: State,
        log: Vec<String>,
        /// apt-get install "succeeds" without installing these.
        broken: BTreeSet<String>,
        /// A step starting with this fails.
        fail: Option<String>,
    }

    impl Fake {
        fn new(state: State) -> Fake {
            Fake {
                state,
                log: Vec::new(),
                broken: BTreeSet::new(),
                fail: None,
            }
        }
    }

    fn out(ok: bool, lines: impl IntoIterator<Item = String>) -> Result<Output, String> {
        let mut stdout = String::new();
        for l in lines {
            stdout.push_str(&l);
            stdout.push('\n');
        }
        Ok(Output { ok, stdout })
    }

    impl Host for Fake {
        fn probe(&mut self, program: &str, args: &[&str]) -> Result<Output, String> {
            let s = &self.state;
            match (program, args) {
                ("rustup", ["target", "list", "--installed"]) => match &s.targets {
                    Some(t) => out(true, t.iter().cloned()),
                    None => Err("rustup: not found".into()),
                },
                ("rustup", ["component", "list", "--installed"]) => {
                    out(true, s.components.iter().cloned())
                }
                ("dpkg-query", [_, _, _, names @ ..]) => match &s.packages {
                    Some(p) => {
                        let known: Vec<String> = names
                            .iter()
                            .filter(|n| p.contains(**n))
                            .map(|n| format!("ii  {n}"))
                            .collect();
                        out(known.len() == names.len(), known)
                    }
                    None => Err("dpkg-query: not found".into()),
                },
                ("dpkg", ["--print-architecture"]) => out(true, ["amd64".to_string()]),
                ("dpkg", ["--print-foreign-architectures"]) => {
                    out(true, s.arm64.then(|| "arm64".to_string()))
                }
                ("id", ["-u"]) => out(true, [if s.root { "0" } else { "1000" }.to_string()]),
                ("rustc", ["--print", "sysroot"]) => out(true, ["/sysroot".to_string()]),
                _ => Err(format!("unexpected probe {program} {args:?}")),
            }
        }

        fn change(&mut self, step: &Step) -> Result<(), String> {
            self.log.push(step.shell());
            if self
                .fail
                .as_ref()
                .is_some_and(|f| step.shell().starts_with(f))
            {
                return Err(format!(
                    "setup: `{}` failed: exit status: 100",
                    step.shell()
                ));
            }
            let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
            let s = &mut self.state;
            match (step.program, args.as_slice()) {
                ("rustup", ["target", "add", ts @ ..]) => {
                    let installed = s.targets.as_mut().ok_or("no rustup")?;
                    installed.extend(ts.iter().map(|t| t.to_string()));
                }
                ("rustup", ["component", "add", cs @ ..]) => {
                    s.components
                        .extend(cs.iter().map(|c| format!("{c}-x86_64-unknown-linux-gnu")));
                }
                ("dpkg", ["--add-architecture", "arm64"]) => s.arm64 = true,
                ("apt-get", ["update", "-q"]) => {}
                ("apt-get", ["install", "-y", "-q", ps @ ..]) => {
                    let installed = s.packages.as_mut().ok_or("no apt")?;
                    for p in ps {
                        if !self.broken.contains(*p) {
                            installed.insert(p.to_string());
                        }
                    }
                }
                _ => return Err(format!("unexpected step {}", step.shell())),
            }
            Ok(())
        }

        fn has(&mut self, what: &str) -> bool {
            what.starts_with("/sysroot/lib/rustlib/")
                && what.ends_with("/lib")
                && self.state.sysroot_targets.iter().any(|t| what.contains(t))
        }

        fn kernel_cached(&mut self) -> bool {
            self.state.kernel_cached
        }

        fn say(&mut self, _line: &str) {}
    }

    /// A fresh Debian machine: rustup with the host toolchain only, no project packages, no arm64.
    fn fresh(root: bool) -> State {
        State {
            targets: Some(["x86_64-unknown-linux-gnu".to_string()].into()),
            components: ["cargo-x86_64-unknown-linux-gnu".to_string()].into(),
            packages: Some(["dpkg".to_string(), "gzip".to_string()].into()),
            root,
            ..State::default()
        }
    }

    #[test]
    fn a_fresh_machine_is_set_up_for_the_tests() {
        let mut m = Fake::new(fresh(true));
        ensure(&mut m, &tc(), Purpose::Test).unwrap();
        assert_eq!(
            m.log,
            [
                "rustup target add aarch64-unknown-none",
                "rustup component add rustfmt clippy",
                "dpkg --add-architecture arm64",
                "apt-get update -q",
                "apt-get install -y -q qemu-system-arm u-boot-qemu u-boot-tools \
                 device-tree-compiler dosfstools mtools fdisk",
            ]
        );
        // The second time there is nothing to do.
        m.log.clear();
        ensure(&mut m, &tc(), Purpose::Test).unwrap();
        assert!(m.log.is_empty(), "{:?}", m.log);
    }

    #[test]
    fn a_fresh_machine_without_root_gets_rust_and_one_command() {
        let mut m = Fake::new(fresh(false));
        let e = ensure(&mut m, &tc(), Purpose::Run).unwrap_err();
        assert_eq!(
            m.log,
            [
                "rustup target add aarch64-unknown-none",
                "rustup component add rustfmt clippy"
            ]
        );
        assert!(
            e.contains(
                "sudo sh -c 'dpkg --add-architecture arm64 && apt-get update -q && \
                 apt-get install -y -q qemu-system-arm dosfstools mtools fdisk'"
            ),
            "{e}"
        );
        // Rust needs no root: a build proceeds.
        ensure(&mut m, &tc(), Purpose::Build).unwrap();
    }

    #[test]
    fn an_install_that_does_not_deliver_is_reported() {
        let mut m = Fake::new(fresh(true));
        m.broken.insert("mtools".into());
        let e = ensure(&mut m, &tc(), Purpose::Disk).unwrap_err();
        assert!(e.contains("still missing") && e.contains("mtools"), "{e}");
    }

    #[test]
    fn a_failing_step_stops_setup() {
        let mut m = Fake::new(fresh(true));
        m.fail = Some("apt-get install".into());
        let e = ensure(&mut m, &tc(), Purpose::Disk).unwrap_err();
        assert!(e.contains("apt-get install -y -q dosfstools"), "{e}");
    }
}
