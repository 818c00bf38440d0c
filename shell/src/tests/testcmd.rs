//! `test` (U-Boot's evaluation order and number parsing), `itest`, and
//! the `test -e` platform hook.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{poke, run, run1, shell, MEM_BASE};
use crate::cmds::{eval_test, TestEnv};
use crate::{Platform, Shell};

struct NoFiles;

impl TestEnv for NoFiles {
    fn file_exists(&mut self, _: &str, _: &str, _: &str) -> bool {
        false
    }
    fn say(&mut self, _: &str) {}
}

fn t(args: &[&str]) -> bool {
    let v: Vec<String> = args.iter().map(|s| String::from(*s)).collect();
    eval_test(&v, &mut NoFiles)
}

#[test]
fn test_truth_table() {
    let cases: &[(&[&str], bool)] = &[
        (&[], false),
        (&["x"], true),
        (&[""], false),
        (&["-n"], false),
        (&["-z"], true),
        (&["!"], true),
        (&["-n", "x"], true),
        (&["-n", ""], false),
        (&["-z", ""], true),
        (&["-z", "x"], false),
        (&["a", "=", "a"], true),
        (&["a", "==", "a"], true),
        (&["a", "==", "b"], false),
        (&["a", "=", "b"], false),
        (&["a", "!=", "b"], true),
        (&["a", "!=", "a"], false),
        (&["a", "<", "b"], true),
        (&["b", ">", "a"], true),
        (&["=", "=", "="], true),
        (&["1", "-eq", "1"], true),
        (&["1", "-eq", "01"], true),
        (&["0x10", "-eq", "16"], true),
        (&["0X1f", "-eq", "31"], true),
        (&["-1", "-lt", "0"], true),
        (&["-5", "-lt", "3"], true),
        (&["3", "-le", "3"], true),
        (&["3", "-ge", "3"], true),
        // strtol: stops at the first non-digit; nothing read is 0.
        (&["abc", "-eq", "0"], true),
        (&["12abc", "-eq", "12"], true),
        (&["09", "-eq", "0"], true),
        (&["0x", "-eq", "0"], true),
        // 64-bit wrap-around, as C.
        (&["0xffffffffffffffff", "-eq", "-1"], true),
        (&["0xffffffffffffffff", "-lt", "0"], true),
        (&["!", "x"], true),
        (&["!", "!", "x"], true),
        (&["!", "a", "=", "b"], true),
        (&["!", "-z", "x"], true),
        (&["x", "-a", "y"], true),
        (&["-n", "x", "-a", "-n", ""], false),
        (&["-n", "", "-o", "-n", "y"], true),
        // No precedence: strictly left to right.
        (&["-n", "x", "-o", "-n", "", "-a", "-n", ""], false),
        (&["-n", "", "-a", "-n", "", "-o", "-n", "x"], true),
        (&["1", "-eq", "1", "-a", "2", "-gt", "1"], true),
        (&["!", "1", "-eq", "1", "-o", "a", "=", "a"], true),
        // What U-Boot cannot read counts as true.
        (&["a", "b"], true),
        (&["aaa", "bbb", "ccc"], true),
        (&["a", "-a"], true),
        (&["-eq", "1"], true),
        (&["=", "yes"], true),
        (&["-e", "a", "b"], true),
        // Regex (U-Boot 2024.10+).
        (&["abc", "=~", "^a.c$"], true),
        (&["abc", "=~", "b$"], false),
    ];
    for (args, expected) in cases {
        assert_eq!(t(args), *expected, "test {args:?}");
    }
    // Very long `!` chains do not recurse.
    let mut long: Vec<&str> = core::iter::repeat_n("!", 100_001).collect();
    long.extend(["-n", "x"]);
    assert!(!t(&long));
}

#[test]
fn test_through_the_shell() {
    assert_eq!(run1("test 5 -gt 3 && echo yes"), "yes\n");
    assert_eq!(
        run1("setenv v 7; if test $v -ge 0x7; then echo ok; fi"),
        "ok\n"
    );
    assert_eq!(run1("test -n \"$unset\" || echo empty"), "empty\n");
    // `test -n $unset` (unquoted) stays false, `test -z $unset` is true.
    assert_eq!(run1("test -n $unset || echo empty"), "empty\n");
    assert_eq!(run1("test -z $unset && echo empty"), "empty\n");
    assert_eq!(
        run1("test a =~ '(' ; echo $?"),
        "Error compiling regex: No closing bracket\n1\n"
    );
}

#[test]
fn test_e_uses_the_platform() {
    let mut sh = shell();
    sh.platform.files.push("virtio 0:1 /boot.scr".into());
    assert_eq!(
        run(
            &mut sh,
            "if test -e virtio 0:1 /boot.scr; then echo yes; fi"
        ),
        "yes\n"
    );
    assert_eq!(run(&mut sh, "test -e virtio 0:1 /nope || echo no"), "no\n");
    // An error is printed and the file counts as missing.
    assert_eq!(
        run(&mut sh, "test -e mmc 0 /boot.scr || echo no"),
        "** Bad device specification mmc 0 **\nno\n"
    );
    assert_eq!(
        run(&mut sh, "test ! -e virtio 0:1 /nope && echo absent"),
        "absent\n"
    );
}

/// A platform that keeps the trait's default `file_exists`.
struct Bare;

impl Platform for Bare {
    fn write_str(&mut self, _: &str) {}
    fn read_byte(&mut self) -> Option<u8> {
        None
    }
    fn now_us(&self) -> u64 {
        0
    }
    fn mem_check(&self, _: u64, _: u64, _: bool) -> Result<(), String> {
        Err("no RAM".into())
    }
    fn mem_read(&self, _: u64, _: &mut [u8]) {}
    fn mem_write(&mut self, _: u64, _: &[u8]) {}
    fn reset(&mut self) {}
    fn poweroff(&mut self) {}
    fn version(&self) -> String {
        String::new()
    }
}

#[test]
fn test_e_default_is_not_supported() {
    let mut p = Bare;
    assert_eq!(
        p.file_exists("virtio", "0:1", "/x"),
        Err("test -e: file tests are not supported on this platform (interface 'virtio')".into())
    );
    let mut sh = Shell::new(Bare);
    assert!(sh.run_script("test -e virtio 0 /x").is_err());
}

#[test]
fn itest_integers() {
    let mut sh = shell();
    let cases = [
        ("itest 1 == 1", 0),
        ("itest 1 -eq 2", 1),
        ("itest a -gt 9", 0), // hex
        ("itest 0xffffffff -gt 0", 0),
        // Cut to the width: 0x100 as a byte is 0.
        ("itest.b 100 == 0", 0),
        ("itest.w 12345 == 2345", 0),
        ("itest 1ffffffff == ffffffff", 0),
        // .q compares signed 64-bit values.
        ("itest.q 0xffffffffffffffff -gt 0", 1),
        ("itest.q ffffffffffffffff -lt 0", 0),
        ("itest 3 < 4", 0),
        ("itest 3 <= 3", 0),
        ("itest 3 >= 4", 1),
        ("itest 3 <> 4", 0),
        ("itest 3 != 3", 1),
        ("itest 5 -le 4", 1),
        ("itest 5 -ge 4", 0),
        ("itest 5 -ne 4", 0),
        ("itest 5 -lt 4", 1),
    ];
    for (cmd, st) in cases {
        assert_eq!(run(&mut sh, cmd), "", "{cmd}");
        assert_eq!(sh.last_status(), st, "{cmd}");
    }
    // From memory.
    poke(&mut sh, MEM_BASE, &0x1234_5678u32.to_le_bytes());
    run(&mut sh, "itest *40000000 == 12345678");
    assert_eq!(sh.last_status(), 0);
    run(&mut sh, "itest.b *40000001 == 56");
    assert_eq!(sh.last_status(), 0);
    run(&mut sh, "itest.w *40000000 == 5678");
    assert_eq!(sh.last_status(), 0);
    // Errors.
    assert_eq!(
        run(&mut sh, "itest.x 1 == 1; echo $?"),
        "Invalid data width specifier\n1\n"
    );
    assert_eq!(run(&mut sh, "itest 1 =! 1"), "Unknown operator '=!'\n");
    assert_eq!(
        run(&mut sh, "itest 1 =="),
        "Usage: itest[.b|.w|.l|.q|.s] [*]value1 <op> [*]value2\n"
    );
    assert_eq!(
        run(&mut sh, "itest *0 == 1"),
        "itest: 0x0..0x4 is not RAM\n"
    );
}

#[test]
fn itest_strings() {
    let mut sh = shell();
    let cases = [
        ("itest.s abc == abc", 0),
        ("itest.s abc <> abd", 0),
        ("itest.s abc < abd", 0),
        ("itest.s b > abc", 0),
        ("itest.s abc == abd", 1),
    ];
    for (cmd, st) in cases {
        run(&mut sh, cmd);
        assert_eq!(sh.last_status(), st, "{cmd}");
    }
    // `${name}` left for itest reads the environment; `*addr` memory.
    run(&mut sh, "setenv v hello");
    run(&mut sh, "itest.s '${v}' == hello");
    assert_eq!(sh.last_status(), 0);
    run(&mut sh, "itest.s '${unset}' == ''");
    assert_eq!(sh.last_status(), 0);
    poke(&mut sh, MEM_BASE, b"hello\0");
    run(&mut sh, "itest.s *40000000 == hello");
    assert_eq!(sh.last_status(), 0);
    // A string that runs off the end of RAM is an error, not a crash.
    let end = MEM_BASE + super::MEM_SIZE as u64 - 3;
    poke(&mut sh, end, b"abc");
    assert_eq!(
        run(&mut sh, &format!("itest.s *{end:x} == abc")),
        "itest: 0x40040000..0x40041000 is not RAM\n"
    );
}
