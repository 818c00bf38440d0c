//! Foundation: loader.bin boots under QEMU (EL2 and EL1, from two different
//! addresses), reads the DT, keeps a memory map, and its shell behaves like
//! U-Boot's — including every bad-input path answering with one line and the
//! prompt.
use qemu_harness::{crc32, hex, loader_exception_bin, scratch, Opts, Qemu};
use std::time::Duration;
use xtask::qemu::board_args;

fn boot(name: &str, opts: &Opts) -> Qemu {
    Qemu::boot_to_prompt(name, opts)
}

#[test]
fn el2_boot_reports_state_and_timing() {
    let mut q = boot("el2", &Opts::default());
    let t = q.transcript();
    assert!(t.contains("EL2"), "banner must name the entry EL:\n{t}");
    let bd = q.cmd("bdinfo");
    for want in [
        "current eL  = 2",
        "loader      = 0x0000000040200000",
        "fdt_blob    = 0x0000000048000000",
        "DRAM bank",
        "kernel_addr_r",
        "boot time",
    ] {
        assert!(bd.contains(want), "bdinfo lacks {want:?}:\n{bd}");
    }
    // Entry→prompt time is reported in microseconds; the goal is < 50 ms.
    let line = bd.lines().find(|l| l.contains("boot time")).unwrap();
    eprintln!("{line}");
}

#[test]
fn el1_boot() {
    let mut q = boot(
        "el1",
        &Opts {
            el2: false,
            smp: 1,
            ..Opts::default()
        },
    );
    let bd = q.cmd("bdinfo");
    assert!(bd.contains("current eL  = 1"), "{bd}");
    assert!(q.cmd("echo hi").contains("hi"));
}

#[test]
fn runs_from_another_base_under_uboot_booti() {
    // U-Boot (Debian's u-boot-qemu) loads nothing itself: QEMU's generic
    // loader puts loader.bin at 0x50000000 and U-Boot's booti starts it there.
    let uboot = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
    assert!(
        std::path::Path::new(uboot).exists(),
        "{uboot} missing: apt-get install u-boot-qemu"
    );
    let loader = qemu_harness::loader_bin();
    let opts = Opts {
        kernel: None,
        extra: vec![
            "-device".into(),
            format!(
                "loader,file={},addr=0x50000000,force-raw=on",
                loader.display()
            ),
        ],
        ..Opts::default()
    };
    let mut cmd = opts.command();
    // Replace -kernel with -bios u-boot.bin.
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut fixed = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "-kernel" {
            fixed.push("-bios".to_string());
            fixed.push(uboot.to_string());
            i += 2;
            continue;
        }
        fixed.push(args[i].clone());
        i += 1;
    }
    let _ = &mut cmd;
    let mut q = Qemu::start_args("uboot-booti", &fixed);
    q.expect_within("Hit any key to stop autoboot", Duration::from_secs(30));
    q.send("");
    q.expect("=> ");
    q.send("booti 0x50000000 - ${fdtcontroladdr}");
    q.expect("parkboot");
    q.expect("autoboot");
    q.send_raw(b" ");
    q.expect("=> ");
    let bd = q.cmd("bdinfo");
    assert!(bd.contains("loader      = 0x0000000050000000"), "{bd}");
    // And it works there: memory commands and the CRC agree with the host.
    let data: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
    let addr = hex(&q.env("kernel_addr_r"));
    for (i, w) in data.chunks(4).enumerate() {
        let v = u32::from_le_bytes(w.try_into().unwrap());
        q.cmd(&format!("mw.l {:x} {v:08x}", addr + i as u64 * 4));
    }
    let out = q.cmd(&format!("crc32 {addr:x} 100"));
    assert!(out.contains(&format!("{:08x}", crc32(&data))), "{out}");
}

#[test]
fn shell_language() {
    let mut q = boot(
        "shell-lang",
        &Opts {
            smp: 1,
            ..Opts::default()
        },
    );
    assert_eq!(q.cmd("echo a; echo b"), "a\nb");
    assert_eq!(
        q.cmd("setenv foo bar baz; echo ${foo}-$foo"),
        "bar baz-bar baz"
    );
    assert_eq!(
        q.cmd("echo 'single ${foo}' \"double ${foo}\""),
        "single ${foo} double bar baz"
    );
    assert_eq!(q.cmd("true && echo yes || echo no"), "yes");
    assert_eq!(q.cmd("false && echo yes || echo no"), "no");
    assert_eq!(q.cmd("echo visible # echo hidden"), "visible");
    assert_eq!(
        q.cmd("if test \"${foo}\" = 'bar baz'; then echo eq; else echo ne; fi"),
        "eq"
    );
    assert_eq!(q.cmd("if test 0x10 -gt 9; then echo big; fi"), "big");
    assert_eq!(
        q.cmd("setenv s 'echo from-run; echo again'; run s"),
        "from-run\nagain"
    );
    q.cmd("setenv foo");
    let out = q.cmd("printenv foo");
    assert!(out.contains("not defined"), "{out}");
    let v = q.cmd("version");
    assert!(v.contains("parkboot"), "{v}");
    let h = q.cmd("help");
    for c in [
        "bdinfo", "md", "mw", "cmp", "crc32", "setenv", "printenv", "run", "test", "sleep",
        "reset", "poweroff",
    ] {
        assert!(h.contains(c), "help lacks {c}:\n{h}");
    }
}

#[test]
fn memory_commands_match_host() {
    let mut q = boot(
        "memcmds",
        &Opts {
            smp: 1,
            ..Opts::default()
        },
    );
    let a = hex(&q.env("kernel_addr_r"));
    let b = a + 0x1000;
    q.cmd(&format!("mw.l {a:x} 12345678 40"));
    q.cmd(&format!("mw.l {b:x} 12345678 40"));
    let out = q.cmd(&format!("cmp.l {a:x} {b:x} 40"));
    assert!(out.contains("Total of 64 word(s) were the same"), "{out}");
    q.cmd(&format!("mw.b {:x} ff", b + 0x10));
    let out = q.cmd(&format!("cmp.l {a:x} {b:x} 40"));
    assert!(
        out.contains(&format!(
            "word at {:#010x} (0x12345678) != word at {:#010x} (0x123456ff)",
            a + 0x10,
            b + 0x10
        )),
        "{out}"
    );
    let out = q.cmd(&format!("md.l {a:x} 4"));
    assert!(out.contains("12345678 12345678 12345678 12345678"), "{out}");
    let data: Vec<u8> = std::iter::repeat_n([0x78u8, 0x56, 0x34, 0x12], 0x40)
        .flatten()
        .collect();
    let out = q.cmd(&format!("crc32 {a:x} 100"));
    assert!(out.contains(&format!("==> {:08x}", crc32(&data))), "{out}");
}

#[test]
fn bad_input_gets_one_line_and_prompt() {
    let mut q = boot(
        "bad-input",
        &Opts {
            smp: 1,
            ..Opts::default()
        },
    );
    // Each answers with its own one line, and nothing changed: claims,
    // environment, and the memory each could have touched.
    let k = hex(&q.env("kernel_addr_r"));
    q.cmd(&format!("mw.l {k:x} 5a5aa5a5 4000"));
    let around = [(k, 0x1_0000)];
    let cases: Vec<(String, String)> = vec![
        (
            "nosuchcmd".into(),
            "Unknown command 'nosuchcmd' - try 'help'".into(),
        ),
        ("md".into(), "Usage: md[.b|.w|.l|.q] addr [count]".into()),
        (
            "mw.l".into(),
            "Usage: mw[.b|.w|.l|.q] addr value [count]".into(),
        ),
        (
            "md 0x7ffffffff000 10".into(),
            "md: 0x7ffffffff000..0x7ffffffff040 is not RAM or a device named in the DT".into(),
        ),
        (
            "md ffffffffffffffff 10".into(),
            "md: range 0xffffffffffffffff + 0x40 wraps around".into(),
        ),
        (
            "crc32 0 ffffffffffffffff".into(),
            "crc32: 0x0..0xffffffffffffffff is not RAM or a device named in the DT".into(),
        ),
        ("mw.l zzz 1".into(), "mw: invalid number 'zzz'".into()),
        (
            format!("mw.l {k:x} 1 ffffffffffffffff"),
            "mw: count too large".into(),
        ),
        (
            "run nosuchvar".into(),
            "## Error: \"nosuchvar\" not defined".into(),
        ),
        (
            "setenv 'bad name' x".into(),
            "## Error: illegal character ' ' in variable name \"bad name\"".into(),
        ),
        ("sleep xyz".into(), "sleep: invalid time 'xyz'".into()),
        (
            "\x01\x02\x7f\u{1b}[A garbage".into(),
            "Unknown command 'garbage' - try 'help'".into(),
        ),
    ];
    for (line, want) in cases {
        q.refused(&line, &want, &around);
    }
    // An unfinished command continues on the next line with U-Boot's "> "
    // prompt; ctrl-C there drops it.
    for line in ["echo 'unterminated", "if true; then echo x"] {
        q.send(line);
        q.expect("\n> ");
        q.send_raw(b"\x03");
        q.expect("<INTERRUPT>");
        q.expect("=> ");
    }
    // The loader's own image is claimed: mw onto it is refused, naming it.
    let (lo, hi) = q.claim("loader image");
    q.refused(
        &format!("mw.l {lo:x} 0"),
        &format!(
            "mw: refused: {lo:#x}..{:#x} (write) overlaps {lo:#x}..{hi:#x} (loader image)",
            lo + 4
        ),
        &[(lo, 0x1000)],
    );
    // An overlong line is refused and the next line still works.
    let long = "echo ".to_string() + &"x".repeat(5000);
    let out = q.cmd(&long);
    assert_eq!(out.lines().count(), 1, "{}", &out[..out.len().min(200)]);
    assert!(
        out.ends_with("line too long (max 1024)"),
        "{}",
        &out[..out.len().min(200)]
    );
    assert_eq!(q.cmd("echo still-here"), "still-here");
}

#[test]
fn poweroff_ends_qemu() {
    let mut q = boot(
        "poweroff",
        &Opts {
            smp: 1,
            ..Opts::default()
        },
    );
    q.send("poweroff");
    assert!(
        q.wait_exit(Duration::from_secs(10)),
        "QEMU still running after poweroff"
    );
}

#[test]
fn no_dtb_still_gives_a_shell() {
    // Start the CPU directly at loader.bin with x0 = 0 (no DTB): the loader
    // says so on the board's default UART and the shell still comes up.
    let loader = qemu_harness::loader_bin();
    let dir = scratch("no-dtb");
    let _ = dir;
    let mut args = board_args("virt,virtualization=on", "cortex-a57", 1, "1G");
    args.push("-device".into());
    args.push(format!(
        "loader,file={},addr=0x40200000,cpu-num=0,force-raw=on",
        loader.display()
    ));
    let mut q = Qemu::start_args("no-dtb", &args);
    q.expect("no valid device tree");
    q.expect("autoboot");
    q.send_raw(b" ");
    q.expect("=> ");
    assert_eq!(q.cmd("echo alive"), "alive");
}

#[test]
fn line_editing_with_history_when_a_terminal_answers() {
    // The harness answers ESC[6n like a terminal: the shell switches to
    // noline editing; up-arrow recalls the previous line.
    let mut q = Qemu::boot_to_prompt(
        "noline",
        &Opts {
            smp: 1,
            terminal: true,
            ..Opts::default()
        },
    );
    q.send("echo first-line");
    q.expect("first-line");
    q.expect("=> ");
    q.send_raw(b"\x1b[A");
    q.send_raw(b"\r");
    q.expect("first-line");
    q.expect("=> ");
    // Editing: type, move left, insert in the middle, backspace.
    q.send_raw(b"echo abdx\x7f\x1b[Dc\r");
    q.expect("abcd");
    q.expect("=> ");
}

/// The panic policy and the exception report (docs/robustness.md, guarantee
/// 1): nothing typed at loader.bin can panic, so the test build's
/// `exception` command (U-Boot's CONFIG_CMD_EXCEPTION) raises each on
/// purpose. Every report names what happened with the registers, then the CPU
/// stops for good: no prompt, no reset, nothing more on the console, input
/// ignored.
#[test]
fn panic_and_exceptions_are_reported_then_the_cpu_halts() {
    let image_len = std::fs::metadata(loader_exception_bin()).unwrap().len();
    let cases: [(&str, bool, &[&str]); 4] = [
        (
            "panic",
            true,
            &[
                "*** parkboot: PANIC: exception command: deliberate panic",
                "    at loader/src/cmd_exception.rs:",
                " x28 ",
            ],
        ),
        (
            "undefined",
            true,
            &[
                "unexpected exception: Synchronous (current EL, SPx) at EL2",
                "(EC 0x00: unknown reason)",
                " x30 ",
            ],
        ),
        ("breakpoint", true, &["at EL2", "(EC 0x3c: BRK)", " x30 "]),
        (
            "abort",
            false,
            &[
                "unexpected exception: Synchronous (current EL, SPx) at EL1",
                "(EC 0x25: data abort)",
                "FAR 0x0000dead00000000",
                " x30 ",
            ],
        ),
    ];
    for (what, el2, want) in cases {
        let opts = Opts {
            el2,
            kernel: Some(loader_exception_bin()),
            ..Opts::default()
        };
        let mut q = boot(&format!("exception_{what}"), &opts);
        q.send(&format!("exception {what}"));
        q.expect(&format!("exception: raising '{what}'"));
        for w in want {
            q.expect(w);
        }
        // Where it stopped and its callers, as link addresses inside the
        // image (for addr2line).
        q.expect("backtrace (link addresses): ");
        // (With the line's end: it may arrive a moment after the text, and must not count
        // as output after the halt below.)
        let report = q.expect("CPU halted (reset the board).\r\n");
        let frames: Vec<u64> = report
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(hex)
            .collect();
        if frames.len() < 2 || frames.iter().any(|&a| a == 0 || a >= image_len) {
            q.fail(&format!(
                "backtrace {frames:x?} not inside the {image_len}-byte image"
            ));
        }
        // Halted: typed input gets no echo and no prompt, the board does not
        // reset (QEMU runs with -no-reboot, so a reset would end it) or
        // start again, and nothing else is printed.
        let before = q.transcript().len();
        q.send("version");
        if q.wait_exit(Duration::from_millis(1500)) {
            q.fail("QEMU exited after the report: the loader reset or powered off");
        }
        let after = q.transcript();
        if after.len() != before {
            q.fail(&format!("output after the halt: {:?}", &after[before..]));
        }
    }
}
