//! The first minute, end to end: the real `xtask` binary's `setup` against a simulated fresh
//! machine. Fake `rustup`, `dpkg`, `dpkg-query`, `apt-get` and `id` programs, alone on PATH, keep
//! their state in a scratch directory and log every change; nothing here can touch the real
//! toolchain or packages (a program that is not faked cannot even be found).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FAKES: &[(&str, &str)] = &[
    (
        "rustup",
        r#"case "$1 $2" in
  "target list") cat "$S/targets" ;;
  "component list") cat "$S/components" ;;
  "target add") echo "rustup $*" >> "$S/log"; shift 2
                for t; do echo "$t" >> "$S/targets"; done ;;
  "component add") echo "rustup $*" >> "$S/log"; shift 2
                   for c; do echo "$c-x86_64-unknown-linux-gnu" >> "$S/components"; done ;;
  *) echo "fake rustup: $*" >&2; exit 1 ;;
esac"#,
    ),
    (
        "dpkg-query",
        r#"shift 3; rc=0
for p; do
  if grep -qx "$p" "$S/packages"; then echo "ii  $p"; else rc=1; fi
done
exit $rc"#,
    ),
    (
        "dpkg",
        r#"case "$1" in
  --print-architecture) echo amd64 ;;
  --print-foreign-architectures) cat "$S/archs" ;;
  --add-architecture) echo "dpkg $*" >> "$S/log"; echo "$2" >> "$S/archs" ;;
  *) exit 1 ;;
esac"#,
    ),
    (
        "apt-get",
        r#"echo "apt-get $*" >> "$S/log"
[ "$DEBIAN_FRONTEND" = noninteractive ] || { echo "apt-get: interactive" >&2; exit 1; }
case "$1" in
  update) ;;
  install) shift 3; for p; do echo "$p" >> "$S/packages"; done ;;
  *) exit 1 ;;
esac"#,
    ),
    ("id", r#"cat "$S/uid""#),
];

/// A scratch machine: fake programs in `dir/bin`, their state in `dir`.
struct Machine {
    dir: PathBuf,
}

impl Machine {
    /// A fresh Debian machine: rustup with the host toolchain only, gzip, no arm64.
    fn fresh(name: &str, uid: u32) -> Machine {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("setup-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, body) in FAKES {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\nPATH=/usr/bin:/bin\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let m = Machine { dir };
        m.set("targets", "x86_64-unknown-linux-gnu\n");
        m.set(
            "components",
            "cargo-x86_64-unknown-linux-gnu\nrustc-x86_64-unknown-linux-gnu\n",
        );
        m.set("packages", "dpkg\ngzip\n");
        m.set("archs", "");
        m.set("uid", &format!("{uid}\n"));
        m.set("log", "");
        m
    }

    fn set(&self, file: &str, text: &str) {
        std::fs::write(self.dir.join(file), text).unwrap();
    }

    fn get(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap()
    }

    /// `xtask setup <what>` with only the fakes on PATH.
    fn xtask_setup(&self, what: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["setup", what])
            .env_clear()
            .env("PATH", self.dir.join("bin"))
            .env("S", &self.dir)
            .output()
            .unwrap()
    }

    fn take_log(&self) -> Vec<String> {
        let log = self.get("log").lines().map(str::to_string).collect();
        self.set("log", "");
        log
    }
}

/// Whether the real build/ holds the kernel's package set (then arm64 is not needed).
fn kernel_cached() -> bool {
    xtask::kernel::package_set_cached()
}

#[test]
fn a_fresh_machine_as_root_is_set_up_and_then_left_alone() {
    let m = Machine::fresh("root", 0);
    let o = m.xtask_setup("test");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let mut want = vec![
        "rustup target add aarch64-unknown-none".to_string(),
        "rustup component add rustfmt clippy".to_string(),
    ];
    if !kernel_cached() {
        want.push("dpkg --add-architecture arm64".into());
    }
    want.push("apt-get update -q".into());
    want.push(
        "apt-get install -y -q qemu-system-arm u-boot-qemu u-boot-tools device-tree-compiler \
         dosfstools mtools fdisk python3-jinja2 python3-yaml"
            .into(),
    );
    assert_eq!(m.take_log(), want, "{err}");
    assert!(m.get("targets").contains("aarch64-unknown-none"));
    assert!(err.contains("xtask: setup: done"), "{err}");
    // Everything is there now: a second run only looks.
    let o = m.xtask_setup("test");
    assert!(o.status.success());
    assert_eq!(m.take_log(), Vec::<String>::new());
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
}

#[test]
fn a_fresh_machine_without_root_gets_rust_and_the_one_command() {
    let m = Machine::fresh("user", 1000);
    let o = m.xtask_setup("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        m.take_log(),
        [
            "rustup target add aarch64-unknown-none",
            "rustup component add rustfmt clippy"
        ]
    );
    let arch = if kernel_cached() {
        ""
    } else {
        "dpkg --add-architecture arm64 && "
    };
    let want = format!(
        "sudo sh -c '{arch}apt-get update -q && apt-get install -y -q qemu-system-arm \
         dosfstools mtools fdisk'"
    );
    assert!(err.contains(&want), "{err}");
    // A build needs no root: it may go on.
    let o = m.xtask_setup("build");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn an_unknown_command_is_refused() {
    let m = Machine::fresh("unknown", 0);
    let o = m.xtask_setup("deploy");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("setup: unknown command \"deploy\""));
    assert_eq!(m.take_log(), Vec::<String>::new());
}
