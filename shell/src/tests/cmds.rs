//! Generic command tests.

use alloc::string::String;
use alloc::vec::Vec;

use super::{feed, poke, run, shell, take, Fake, MEM_BASE};
use crate::Shell;

const PATTERN: &[u8] = &[
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x41, 0x42, 0x43, 0x44, 0x00, 0x7f, 0x20, 0x7e,
];

#[test]
fn md_formats() {
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, PATTERN);
    let ascii = ".\"3DUfw.ABCD.. ~";
    assert_eq!(
        run(&mut sh, "md.b 40000000 10"),
        format!("40000000: 11 22 33 44 55 66 77 88 41 42 43 44 00 7f 20 7e  {ascii}\n")
    );
    assert_eq!(
        run(&mut sh, "md.w 0x40000000 8"),
        format!("40000000: 2211 4433 6655 8877 4241 4443 7f00 7e20  {ascii}\n")
    );
    assert_eq!(
        run(&mut sh, "md.l 40000000 4"),
        format!("40000000: 44332211 88776655 44434241 7e207f00  {ascii}\n")
    );
    assert_eq!(
        run(&mut sh, "md 40000000 4"),
        format!("40000000: 44332211 88776655 44434241 7e207f00  {ascii}\n")
    );
    assert_eq!(
        run(&mut sh, "md.q 40000000 2"),
        format!("40000000: 8877665544332211 7e207f0044434241  {ascii}\n")
    );
    // Partial last line: padded so the ASCII column lines up.
    assert_eq!(
        run(&mut sh, "md.l 40000000 3"),
        format!(
            "40000000: 44332211 88776655 44434241{}  .\"3DUfw.ABCD\n",
            " ".repeat(9)
        )
    );
    assert_eq!(
        run(&mut sh, "md.b 40000000 12"),
        format!(
            "40000000: 11 22 33 44 55 66 77 88 41 42 43 44 00 7f 20 7e  {ascii}\n\
             40000010: 00 00{}  ..\n",
            " ".repeat(14 * 3)
        )
    );
    // Default count: 0x40 words = 16 lines.
    let out = run(&mut sh, "md 40000000");
    assert_eq!(out.lines().count(), 16);
    assert!(out
        .lines()
        .last()
        .unwrap()
        .starts_with("400000f0: 00000000"));
    assert_eq!(run(&mut sh, "md 40000000 0"), "");
}

#[test]
fn mw_then_md() {
    let mut sh = shell();
    assert_eq!(run(&mut sh, "mw 40000100 deadbeef 4"), "");
    assert_eq!(
        run(&mut sh, "md 40000100 4"),
        "40000100: deadbeef deadbeef deadbeef deadbeef  ................\n"
    );
    assert_eq!(
        run(&mut sh, "mw.b 40000200 41 3; md.b 40000200 4"),
        format!("40000200: 41 41 41 00{}  AAA.\n", " ".repeat(12 * 3))
    );
    run(
        &mut sh,
        "mw.q 40000300 1122334455667788; mw.w 40000308 0xabcd",
    );
    assert_eq!(
        sh.platform.mem[0x300..0x30a],
        [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0xcd, 0xab]
    );
    // Large fills go in chunks.
    run(&mut sh, "mw.l 40000000 01020304 10000");
    assert!(sh.platform.mem.chunks(4).all(|c| c == [4, 3, 2, 1]));
    assert_eq!(
        run(&mut sh, "mw.w 40000000 12345"),
        "mw: value 0x12345 does not fit in 2 byte(s)\n"
    );
    assert_eq!(
        run(&mut sh, "mw 40000000"),
        "Usage: mw[.b|.w|.l|.q] addr value [count]\n"
    );
    assert_eq!(
        run(&mut sh, "mw 40000000 1 2 3"),
        "Usage: mw[.b|.w|.l|.q] addr value [count]\n"
    );
}

#[test]
fn cmp_reports_first_difference() {
    let mut sh = shell();
    run(&mut sh, "mw 40001000 12345678 10; mw 40002000 12345678 10");
    assert_eq!(
        run(&mut sh, "cmp 40001000 40002000 10"),
        "Total of 16 word(s) were the same\n"
    );
    run(&mut sh, "mw.b 40002005 ff");
    assert_eq!(
        run(&mut sh, "cmp 40001000 40002000 10; echo $?"),
        "word at 0x40001004 (0x12345678) != word at 0x40002004 (0x1234ff78)\n\
         Total of 1 word(s) were the same\n1\n"
    );
    assert_eq!(
        run(&mut sh, "cmp.b 40001000 40002000 40"),
        "byte at 0x40001005 (0x56) != byte at 0x40002005 (0xff)\n\
         Total of 5 byte(s) were the same\n"
    );
    assert_eq!(
        run(&mut sh, "cmp.w 40001000 40002000 40"),
        "halfword at 0x40001004 (0x5678) != halfword at 0x40002004 (0xff78)\n\
         Total of 2 halfword(s) were the same\n"
    );
    assert_eq!(
        run(&mut sh, "cmp.q 40001000 40002000 1"),
        "double word at 0x40001000 (0x1234ff7812345678) != double word at 0x40002000 (0x1234ff7812345678)\n\
         Total of 0 double word(s) were the same\n"
            .replace("0x40001000 (0x1234ff7812345678)", "0x40001000 (0x1234567812345678)")
    );
    // A zero value prints like C's "%#x": no 0x prefix.
    run(&mut sh, "mw.b 40004000 5");
    assert_eq!(
        run(&mut sh, "cmp.b 40003000 40004000 1"),
        "byte at 0x40003000 (0) != byte at 0x40004000 (0x5)\nTotal of 0 byte(s) were the same\n"
    );
    assert_eq!(
        run(&mut sh, "cmp 1 2"),
        "Usage: cmp[.b|.w|.l|.q] addr1 addr2 count\n"
    );
    assert_eq!(
        run(&mut sh, "cmp 40000000 0 1"),
        "cmp: 0x0..0x4 is not RAM\n"
    );
    // Equal ranges larger than one chunk.
    assert_eq!(
        run(&mut sh, "cmp.b 40000000 40000000 10000"),
        "Total of 65536 byte(s) were the same\n"
    );
}

#[test]
fn crc32_output() {
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, b"123456789");
    assert_eq!(
        run(&mut sh, "crc32 40000000 9"),
        "crc32 for 40000000 ... 40000008 ==> cbf43926\n"
    );
    assert_eq!(
        run(&mut sh, "crc32 0x40000000 0x9 sum; echo $sum"),
        "crc32 for 40000000 ... 40000008 ==> cbf43926\ncbf43926\n"
    );
    assert_eq!(
        run(&mut sh, "crc32 40000000 9 *40000100; md.b 40000100 4"),
        format!(
            "crc32 for 40000000 ... 40000008 ==> cbf43926\n40000100: cb f4 39 26{}  ..9&\n",
            " ".repeat(12 * 3)
        )
    );
    assert_eq!(
        run(&mut sh, "crc32 40000000 0"),
        "crc32 for 40000000 ... 3fffffff ==> 00000000\n"
    );
    // Whole fake RAM (several chunks) matches a direct computation.
    let expected = crc32fast::hash(&sh.platform.mem);
    assert_eq!(
        run(&mut sh, "crc32 40000000 40000"),
        format!("crc32 for 40000000 ... 4003ffff ==> {expected:08x}\n")
    );
    assert_eq!(
        run(&mut sh, "crc32 40000000 40001"),
        "crc32: 0x40000000..0x40040001 is not RAM\n"
    );
    assert_eq!(
        run(&mut sh, "crc32 40000000 9 *zz"),
        "crc32: invalid number 'zz'\n"
    );
    assert_eq!(
        run(&mut sh, "crc32 40000000 9 *0"),
        "crc32: 0x0..0x4 is not RAM\n"
    );
    assert_eq!(
        run(&mut sh, "crc32 40000000 9 'a b'"),
        "## Error: illegal character ' ' in variable name \"a b\"\n"
    );
    assert_eq!(
        run(&mut sh, "crc32 40000000"),
        "Usage: crc32 addr size [var|*addr]\n"
    );
}

#[test]
fn memory_commands_reject_bad_input() {
    let cases = [
        ("md 0 4", "md: 0x0..0x10 is not RAM\n"),
        ("mw 50000000 1", "mw: 0x50000000..0x50000004 is not RAM\n"),
        (
            "md ffffffffffffffff 4",
            "md: range 0xffffffffffffffff + 0x10 wraps around\n",
        ),
        (
            "md 10000000000000000",
            "md: invalid number '10000000000000000'\n",
        ),
        ("md 40000000 ffffffffffffffff", "md: count too large\n"),
        ("md.q 40000000 2000000000000000", "md: count too large\n"),
        ("md zz", "md: invalid number 'zz'\n"),
        ("md 0x", "md: invalid number '0x'\n"),
        ("md -1", "md: invalid number '-1'\n"),
        ("md.b 40000000 -1", "md: invalid number '-1'\n"),
        ("md", "Usage: md[.b|.w|.l|.q] addr [count]\n"),
        ("md 1 2 3", "Usage: md[.b|.w|.l|.q] addr [count]\n"),
        ("md.bb 40000000", "Usage: md[.b|.w|.l|.q] addr [count]\n"),
        ("mw.w 40000000 zz", "mw: invalid number 'zz'\n"),
        (
            "mw.l 4003fffc 1 2",
            "mw: 0x4003fffc..0x40040004 is not RAM\n",
        ),
    ];
    for (cmd, expected) in cases {
        let mut sh = shell();
        assert_eq!(run(&mut sh, cmd), expected, "{cmd}");
        assert_eq!(sh.last_status(), 1, "{cmd}");
        assert!(sh.platform.mem.iter().all(|&b| b == 0), "{cmd}");
    }
}

#[test]
fn md_stops_on_ctrl_c_and_keeps_other_input() {
    let mut sh = shell();
    feed(&mut sh, b"xy\x03z");
    let args = ["md.b", "40000000", "100"].map(String::from);
    assert!(sh.run_command(&args).is_ok());
    let out = take(&mut sh);
    // One line printed before the poll saw the ctrl-C.
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(sh.interrupted());
    // A script does not even start its first command after a ctrl-C.
    feed(&mut sh, b"\x03");
    assert_eq!(run(&mut sh, "echo not-reached"), "");
    // The bytes typed before ctrl-C were kept, those after it not read yet.
    feed(&mut sh, b"\n");
    sh.set_line_mode(crate::LineMode::Dumb);
    assert_eq!(sh.read_line(), crate::ReadLine::Line("xyz".into()));
}

#[test]
fn help_and_version() {
    let mut sh = shell();
    let out = run(&mut sh, "help");
    assert!(out.contains("md        - memory display\n"), "{out}");
    assert!(out.contains("crc32     - checksum calculation\n"), "{out}");
    let names: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"poweroff") && names.contains(&"args"));
    assert_eq!(
        run(&mut sh, "help md"),
        "md - memory display\nUsage: md[.b|.w|.l|.q] addr [count]\n"
    );
    assert_eq!(
        run(&mut sh, "help md.b nope; echo $?"),
        "md - memory display\nUsage: md[.b|.w|.l|.q] addr [count]\n\
         Unknown command 'nope' - try 'help' without arguments for list of all known commands\n1\n"
    );
    assert_eq!(run(&mut sh, "version"), "parkboot test 0.1\n");
}

#[test]
fn registry_override_and_unregister() {
    fn my_echo(sh: &mut Shell<Fake>, _args: &[String]) -> crate::CmdResult {
        sh.print("mine\n");
        Ok(())
    }
    let mut sh = shell();
    sh.register(crate::Command {
        name: "echo",
        usage: "echo",
        help: "overridden",
        run: my_echo,
    });
    assert_eq!(run(&mut sh, "echo x"), "mine\n");
    assert!(sh.unregister("echo"));
    assert_eq!(
        run(&mut sh, "echo x"),
        "Unknown command 'echo' - try 'help'\n"
    );
    assert!(sh.find_command("md.q").is_some());
    assert!(sh.run_command(&["true".into()]).is_ok());
    assert!(sh.run_command(&["false".into()]).is_err());
    assert_eq!(sh.last_status(), 1);
    assert!(sh.run_command(&[]).is_ok());
}

#[test]
fn sleep_command() {
    let mut sh = shell();
    let t0 = sh.platform.time.get();
    assert_eq!(run(&mut sh, "sleep 0.5"), "");
    let dt = sh.platform.time.get() - t0;
    assert!((500_000..600_000).contains(&dt), "{dt}");
    let t0 = sh.platform.time.get();
    run(&mut sh, "sleep 1");
    assert!(sh.platform.time.get() - t0 >= 1_000_000);
    assert_eq!(run(&mut sh, "sleep .25 && sleep 0 && sleep 2."), "");
    assert_eq!(run(&mut sh, "sleep abc"), "sleep: invalid time 'abc'\n");
    assert_eq!(run(&mut sh, "sleep 1.2.3"), "sleep: invalid time '1.2.3'\n");
    assert_eq!(run(&mut sh, "sleep ."), "sleep: invalid time '.'\n");
    assert_eq!(
        run(&mut sh, "sleep 99999999999999999999"),
        "sleep: invalid time '99999999999999999999'\n"
    );
    assert_eq!(run(&mut sh, "sleep"), "Usage: sleep seconds\n");
    assert_eq!(run(&mut sh, "sleep 1 2"), "Usage: sleep seconds\n");
}

#[test]
fn ctrl_c_aborts_sleep_and_the_script() {
    let mut sh = shell();
    feed(&mut sh, b"\x03");
    let t0 = sh.platform.time.get();
    assert_eq!(run(&mut sh, "sleep 100; echo no"), "");
    assert!(sh.platform.time.get() - t0 < 1_000_000);
    assert_eq!(sh.last_status(), 1);
    // The next top-level script runs normally.
    assert_eq!(run(&mut sh, "echo yes"), "yes\n");
}

#[test]
fn reset_and_poweroff() {
    let mut sh = shell();
    assert_eq!(
        run(&mut sh, "reset"),
        "resetting ...\nreset: the platform did not reset\n"
    );
    assert_eq!(sh.platform.resets, 1);
    assert_eq!(
        run(&mut sh, "poweroff"),
        "powering off ...\npoweroff: the platform did not power off\n"
    );
    assert_eq!(sh.platform.poweroffs, 1);
}

use alloc::format;
