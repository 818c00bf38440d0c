//! U-Boot's own shell test cases, transcribed: test/py/tests
//! (`test_hush_if_test.py`, `test_shell_basics.py`, `test_env.py`, as in
//! v2023.01) and the C tests that replaced or extended them (test/hush/*.c,
//! test/cmd/test_echo.c, test/cmd/exit.c, test/cmd/setexpr.c). Where the
//! C tests expect different results from the old and the new parser, the
//! case says which one parkboot follows (docs/shell.md lists them).

use alloc::format;
use alloc::string::String;

use super::{peek, poke, run, run1, shell, MEM_BASE};

include!("uboot_if_table.rs");

/// exec_hush_if(): `if <expr>; then echo true; else echo false; fi`.
fn hush_if(sh: &mut crate::Shell<super::Fake>, expr: &str) -> String {
    run(
        sh,
        &format!("if {expr}; then echo true; else echo false; fi"),
    )
}

#[test]
fn test_hush_if_test_table() {
    let mut sh = shell();
    for (expr, result) in IF_TESTS {
        let want = if *result { "true\n" } else { "false\n" };
        assert_eq!(hush_if(&mut sh, expr), want, "if {expr}");
    }
}

#[test]
fn test_hush_z() {
    let mut sh = shell();
    run(&mut sh, "setenv ut_var_nonexistent");
    run(&mut sh, "setenv ut_var_exists 1");
    assert_eq!(
        hush_if(&mut sh, "test -z \"$ut_var_nonexistent\""),
        "true\n"
    );
    assert_eq!(hush_if(&mut sh, "test -z \"$ut_var_exists\""), "false\n");
    run(&mut sh, "setenv ut_var_exists");
}

/// test/hush/if.c: what the py table lacks (the zero- and one-argument
/// forms, U-Boot since 2026.07) and the `[` alias.
#[test]
fn hush_test_if_base_and_lbracket() {
    let f = "if %; then true; else false; fi";
    let cases: &[(&str, bool)] = &[
        ("test", false),
        ("test ''", false),
        ("test 'abc'", true),
        ("test '-n'", false),
        ("[ aaa = aaa ]", true),
        ("[ aaa = bbb ]", false),
        ("[ aaa != aaa -o bbb != bbb ]", false),
        ("[ aaa != aaa -o bbb = bbb ]", true),
        ("[ ! aaa != aaa -o ! bbb != bbb ]", true),
        ("[ ! aaa != aaa -o ! bbb = bbb ]", true),
        ("[ ]", false),
        ("[ '' ]", false),
        ("[ 'abc' ]", true),
        ("[ -n ]", false),
    ];
    for (expr, ok) in cases {
        let mut sh = shell();
        assert_eq!(run(&mut sh, &f.replace('%', expr)), "", "{expr}");
        assert_eq!(sh.last_status(), u8::from(!ok), "{expr}");
    }
    for expr in ["[ aaa = aaa", "[ aaa = bbb]", "[", "[ ''", "[ 'abc'"] {
        let mut sh = shell();
        assert_eq!(
            run(&mut sh, &f.replace('%', expr)),
            "[: missing terminating ]\n",
            "{expr}"
        );
        assert_eq!(sh.last_status(), 1);
    }
}

#[test]
fn test_shell_basics() {
    // test_shell_execute
    assert_eq!(run1("echo hello"), "hello\n");
    // test_shell_semicolon_two
    let out = run1("echo hello; echo world");
    assert!(out.find("hello").unwrap() < out.find("world").unwrap());
    // test_shell_semicolon_three
    let mut sh = shell();
    assert_eq!(
        run(
            &mut sh,
            "setenv list 1; setenv list ${list}2; setenv list ${list}3; echo ${list}"
        ),
        "123\n"
    );
    run(&mut sh, "setenv list");
    // test_shell_run
    run(&mut sh, "setenv foo 'setenv monty 1; setenv python 2'");
    run(&mut sh, "run foo");
    assert_eq!(run(&mut sh, "echo ${monty}"), "1\n");
    assert_eq!(run(&mut sh, "echo ${python}"), "2\n");
}

#[test]
fn test_env_py() {
    let mut sh = shell();
    // test_env_echo_exists / printenv of an existing variable
    run(&mut sh, "setenv test_env_0 foo");
    assert_eq!(run(&mut sh, "printenv test_env_0"), "test_env_0=foo\n");
    // test_env_echo_non_existent, test_env_printenv_non_existent
    assert_eq!(run(&mut sh, "echo ${test_env_1}"), "\n");
    assert_eq!(
        run(&mut sh, "printenv test_env_1"),
        "## Error: \"test_env_1\" not defined\n"
    );
    // test_env_unset_non_existent, set/unset existing
    assert_eq!(run(&mut sh, "setenv test_env_1"), "");
    run(&mut sh, "setenv test_env_0 \"bar\"");
    assert_eq!(run(&mut sh, "printenv test_env_0"), "test_env_0=bar\n");
    run(&mut sh, "setenv test_env_0");
    assert_eq!(run(&mut sh, "echo ${test_env_0}"), "\n");
    // test_env_expansion_spaces
    run(&mut sh, "setenv test_env_2 \" \"");
    run(
        &mut sh,
        "setenv test_env_3 \" 1${test_env_2}${test_env_2} 2 \"",
    );
    assert_eq!(run(&mut sh, "printenv test_env_3"), "test_env_3= 1   2 \n");
    // test_env_import_checksum_no_size (+ whitelist variant)
    assert_eq!(
        run(&mut sh, "env import -c 40000000 -"),
        "## Error: external checksum format must pass size\n"
    );
    assert_eq!(
        run(&mut sh, "env import -c 40000000 - foo1 foo2 foo4"),
        "## Error: external checksum format must pass size\n"
    );
}

#[test]
fn test_env_import_whitelist() {
    for delete in [false, true] {
        let mut sh = shell();
        run(
            &mut sh,
            "setenv foo1 bar1; setenv foo2 bar2; setenv foo3 bar3",
        );
        run(&mut sh, "env export 40000000");
        run(&mut sh, "setenv foo1; setenv foo2 test2; setenv foo4 bar4");
        let d = if delete { "-d " } else { "" };
        let out = run(&mut sh, &format!("env import {d}40000000 - foo1 foo2 foo4"));
        assert!(
            out.starts_with("## Warning: defaulting to text format\n"),
            "{out}"
        );
        assert_eq!(run(&mut sh, "printenv foo1"), "foo1=bar1\n");
        assert_eq!(run(&mut sh, "printenv foo2"), "foo2=bar2\n");
        assert_eq!(run(&mut sh, "printenv foo3"), "foo3=bar3\n");
        if delete {
            // test_env_import_whitelist_delete: foo4 is gone.
            assert!(out.ends_with("WARNING: 'foo4' not in imported env, deleting it!\n"));
            assert_eq!(run(&mut sh, "echo ${foo4}"), "\n");
        } else {
            assert_eq!(run(&mut sh, "printenv foo4"), "foo4=bar4\n");
        }
    }
}

/// test/hush/list.c. For `a && b || c` and `a || b && c`, parkboot gives
/// the new parser's (POSIX) answers; the old parser's differ (docs/shell.md).
#[test]
fn hush_test_lists() {
    let cases: &[(&str, u8)] = &[
        ("false; false", 1),
        ("false; true", 0),
        ("true; true", 0),
        ("true; false", 1),
        ("false && false", 1),
        ("false && true", 1),
        ("true && true", 0),
        ("true && false", 1),
        ("false || false", 1),
        ("false || true", 0),
        ("true || true", 0),
        ("true || false", 0),
        ("false && false || false", 1),
        ("false && false || true", 0),
        ("false && true || true", 0),
        ("false && true || false", 1),
        ("true && true || false", 0),
        ("true && false || false", 1),
        ("true && false || true", 0),
        ("true && true || true", 0),
        ("false || false && false", 1),
        ("false || false && true", 1),
        ("false || true && true", 0),
        ("false || true && false", 1),
        ("true || true && false", 1),
        ("true || false && false", 1),
        ("true || false && true", 0),
        ("true || true && true", 0),
    ];
    for (cmd, st) in cases {
        let mut sh = shell();
        run(&mut sh, cmd);
        assert_eq!(sh.last_status(), *st, "{cmd}");
    }
}

/// test/hush/loop.c (new parser: a `while` loop's status is 0; locals can
/// be unset with `name=`).
#[test]
fn hush_test_loops() {
    let mut sh = shell();
    assert_eq!(
        run(
            &mut sh,
            "for loop_i in foo bar quux quux; do echo $loop_i; done"
        ),
        "foo\nbar\nquux\nquux\n"
    );
    assert_eq!(sh.last_status(), 0);
    run(&mut sh, "loop_i=");
    assert_eq!(sh.local("loop_i"), None);

    assert_eq!(
        run(
            &mut sh,
            "while test -z \"$loop_foo\"; do echo bar; loop_foo=quux; done"
        ),
        "bar\n"
    );
    assert_eq!(sh.last_status(), 0);
    run(&mut sh, "loop_foo=");

    sh.env.set("loop_bar", "bar").unwrap();
    assert_eq!(
        run(
            &mut sh,
            "until test -z \"$loop_bar\"; do echo quux; setenv loop_bar; done"
        ),
        "quux\n"
    );
    assert_eq!(sh.last_status(), 0);
}

/// test/hush/dollar.c, new-parser branches.
#[test]
fn hush_test_dollar() {
    let mut sh = shell();
    // hush_test_simple_dollar
    assert_eq!(run(&mut sh, "echo $dollar_foo"), "\n");
    assert_eq!(run(&mut sh, "echo ${dollar_foo}"), "\n");
    run(&mut sh, "dollar_foo=bar");
    assert_eq!(run(&mut sh, "echo $dollar_foo"), "bar\n");
    assert_eq!(run(&mut sh, "echo ${dollar_foo}"), "bar\n");
    run(&mut sh, "dollar_foo=\\$bar");
    assert_eq!(run(&mut sh, "echo $dollar_foo"), "$bar\n");
    run(&mut sh, "dollar_foo='$bar'");
    assert_eq!(run(&mut sh, "echo $dollar_foo"), "$bar\n");
    assert_eq!(
        run(&mut sh, "dollar_foo=bar quux"),
        "Unknown command 'quux' - try 'help'\n"
    );
    assert_eq!(sh.last_status(), 1);
    assert_eq!(
        run(&mut sh, "dollar_foo='bar quux"),
        "syntax error: unterminated quote\n"
    );
    assert_eq!(sh.last_status(), 1);
    assert_eq!(
        run(&mut sh, "dollar_foo=bar quux\""),
        "syntax error: unterminated quote\n"
    );
    assert_eq!(sh.last_status(), 1);
    run(&mut sh, "dollar_foo='bar \"quux'");
    assert_eq!(run(&mut sh, "echo $dollar_foo"), "bar \"quux\n");
    run(&mut sh, "dollar_foo=\"bar 'quux\"");
    assert_eq!(run(&mut sh, "echo $dollar_foo"), "bar 'quux\n");
    run(&mut sh, "dollar_foo='bar quux'");
    assert_eq!(run(&mut sh, "echo $dollar_foo"), "bar quux\n");
    run(&mut sh, "dollar_foo=");

    // hush_test_env_dollar: environment variables win over locals.
    sh.env.set("env_foo", "bar").unwrap();
    assert_eq!(run(&mut sh, "echo $env_foo"), "bar\n");
    assert_eq!(run(&mut sh, "echo ${env_foo}"), "bar\n");
    run(&mut sh, "env_foo=quux");
    assert_eq!(run(&mut sh, "echo ${env_foo}"), "bar\n");
    sh.env.remove("env_foo");
    assert_eq!(run(&mut sh, "echo ${env_foo}"), "quux\n");
    run(&mut sh, "env_foo=");

    // hush_test_command_dollar
    run(&mut sh, "dollar_bar=\"echo bar\"");
    assert_eq!(run(&mut sh, "$dollar_bar"), "bar\n");
    assert_eq!(run(&mut sh, "${dollar_bar}"), "bar\n");
    run(&mut sh, "dollar_bar=\"echo\nbar\"");
    assert_eq!(run(&mut sh, "$dollar_bar"), "bar\n");
    run(&mut sh, "dollar_bar='echo bar\n'");
    assert_eq!(run(&mut sh, "$dollar_bar"), "bar\n");
    run(&mut sh, "dollar_bar='echo bar\\n'");
    assert_eq!(run(&mut sh, "$dollar_bar"), "bar\\n\n");
    run(&mut sh, "dollar_bar='echo $bar'");
    assert_eq!(run(&mut sh, "$dollar_bar"), "$bar\n");
    run(&mut sh, "dollar_quux=quux");
    run(&mut sh, "dollar_bar=\"echo $dollar_quux\"");
    assert_eq!(run(&mut sh, "$dollar_bar"), "quux\n");
}

/// test/cmd/test_echo.c
#[test]
fn lib_test_hush_echo() {
    let cases = [
        ("echo 1 2 3", "1 2 3\n"),
        ("echo -n 1 2 3; echo a b c", "1 2 3a b c\n"),
        (
            "setenv jQx X; echo \"a)\" ${jQx} 'b)' '${jQx}' c) ${jQx}; setenv jQx",
            "a) X b) ${jQx} c) X\n",
        ),
        ("foo=bar echo baz", "baz\n"),
        (
            "setenv jQx; for jQx in 1 2 3; do echo -n \"${jQx}, \"; done; echo;",
            "1, 2, 3, \n",
        ),
    ];
    for (cmd, want) in cases {
        let mut sh = shell();
        assert_eq!(run(&mut sh, cmd), want, "{cmd}");
        assert_eq!(sh.last_status(), 0, "{cmd}");
    }
}

/// test/cmd/exit.c (U-Boot 2023.04+: `exit` ends the `run` script).
#[test]
fn cmd_exit_test() {
    for i in -3i32..=3 {
        let shown = if i > 0 { i } else { 0 };
        let mut sh = shell();
        let out = run(
            &mut sh,
            &format!("setenv foo 'echo bar ; exit {i} ; echo baz' ; run foo ; echo $?"),
        );
        assert_eq!(out, format!("bar\n{shown}\n"), "exit {i}");
        let out = run(
            &mut sh,
            &format!(
                "setenv foo 'echo bar ; exit {i} ; echo baz' ; run foo && echo quux ; echo $?"
            ),
        );
        let quux = if i <= 0 { "quux\n" } else { "" };
        assert_eq!(out, format!("bar\n{quux}{shown}\n"), "exit {i} &&");
        let out = run(
            &mut sh,
            &format!(
                "setenv foo 'echo bar ; exit {i} ; echo baz' ; run foo || echo quux ; echo $?"
            ),
        );
        let quux = if i > 0 { "quux\n" } else { "" };
        assert_eq!(out, format!("bar\n{quux}0\n"), "exit {i} ||");
    }
    let mut sh = shell();
    let cases = [
        (
            "setenv foo 'echo bar ; exit ; echo baz' ; run foo ; echo $?",
            "bar\n0\n",
        ),
        (
            "setenv foo 'echo bar ; exit ; echo baz' ; run foo && echo quux ; echo $?",
            "bar\nquux\n0\n",
        ),
        (
            "setenv foo 'echo bar ; exit ; echo baz' ; run foo || echo quux ; echo $?",
            "bar\n0\n",
        ),
        (
            "setenv foo 'echo bar ; true' ; run foo ; echo $?",
            "bar\n0\n",
        ),
        (
            "setenv foo 'echo bar ; true' ; run foo && echo quux ; echo $?",
            "bar\nquux\n0\n",
        ),
        (
            "setenv foo 'echo bar ; true' ; run foo || echo quux ; echo $?",
            "bar\n0\n",
        ),
        (
            "setenv foo 'echo bar ; false' ; run foo ; echo $?",
            "bar\n1\n",
        ),
        (
            "setenv foo 'echo bar ; false' ; run foo && echo quux ; echo $?",
            "bar\n1\n",
        ),
        (
            "setenv foo 'echo bar ; false' ; run foo || echo quux ; echo $?",
            "bar\nquux\n0\n",
        ),
    ];
    for (cmd, want) in cases {
        assert_eq!(run(&mut sh, cmd), want, "{cmd}");
    }
}

/// test/cmd/setexpr.c (v2023.01), with the fake RAM at 0x40000000 in place
/// of U-Boot's address 0.
#[test]
fn setexpr_test_int() {
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, &[0xff; 0x100]);
    poke(&mut sh, MEM_BASE, &[0x12]);
    let cases: &[(&str, &[u8], &str)] = &[
        ("b", &[0x12], "12"),
        ("w", &0x2345u16.to_le_bytes(), "2345"),
        ("l", &0x3456789au32.to_le_bytes(), "3456789a"),
        (
            "q",
            &0x456789abcdef0123u64.to_le_bytes(),
            "456789abcdef0123",
        ),
    ];
    for (w, bytes, want) in cases {
        poke(&mut sh, MEM_BASE, bytes);
        run(&mut sh, &format!("setexpr.{w} fred 0"));
        assert_eq!(sh.env.get("fred"), Some("0"));
        run(&mut sh, &format!("setexpr.{w} fred *40000000"));
        assert_eq!(sh.env.get("fred"), Some(*want), "setexpr.{w}");
    }
    // default: 4 bytes
    run(&mut sh, "setexpr fred 0");
    assert_eq!(sh.env.get("fred"), Some("0"));
    run(&mut sh, "setexpr fred *40000000");
    assert_eq!(sh.env.get("fred"), Some("cdef0123"));
}

#[test]
fn setexpr_test_plus() {
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, &[0xff; 0x100]);
    let a = MEM_BASE;
    let b = MEM_BASE + 0x10;
    poke(&mut sh, a, &[0x12]);
    poke(&mut sh, b, &[0x34]);
    run(&mut sh, "setexpr.b fred *40000000 + *40000010");
    assert_eq!(sh.env.get("fred"), Some("46"));
    poke(&mut sh, a, &0x2345u16.to_le_bytes());
    poke(&mut sh, b, &0xf012u16.to_le_bytes());
    run(&mut sh, "setexpr.w fred *40000000 + *40000010");
    assert_eq!(sh.env.get("fred"), Some("11357"));
    poke(&mut sh, a, &0x3456789au32.to_le_bytes());
    poke(&mut sh, b, &0xc3384235u32.to_le_bytes());
    run(&mut sh, "setexpr.l fred *40000000 + *40000010");
    assert_eq!(sh.env.get("fred"), Some("f78ebacf"));
    poke(&mut sh, a, &0x456789abcdef0123u64.to_le_bytes());
    poke(&mut sh, b, &0x4987328372849283u64.to_le_bytes());
    run(&mut sh, "setexpr.q fred *40000000 + *40000010");
    assert_eq!(sh.env.get("fred"), Some("8eeebc2f407393a6"));
    run(&mut sh, "setexpr fred *40000000 + *40000010");
    assert_eq!(sh.env.get("fred"), Some("1407393a6"));
}

#[test]
fn setexpr_test_oper() {
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, &[0xff; 0x100]);
    poke(&mut sh, MEM_BASE, &0x1234u32.to_le_bytes());
    poke(&mut sh, MEM_BASE + 0x10, &0x560000u32.to_le_bytes());
    run(&mut sh, "setexpr fred *40000000 \"|\" *40000010");
    assert_eq!(sh.env.get("fred"), Some("561234"));
    poke(&mut sh, MEM_BASE, &0x561200u32.to_le_bytes());
    poke(&mut sh, MEM_BASE + 0x10, &0x1234u32.to_le_bytes());
    let cases = [
        ("\"&\"", "1200"),
        ("^", "560034"),
        ("-", "55ffcc"),
        ("*", "61ebfa800"),
        ("/", "4ba"),
        ("%", "838"),
    ];
    for (op, want) in cases {
        run(&mut sh, &format!("setexpr.l fred *40000000 {op} *40000010"));
        assert_eq!(sh.env.get("fred"), Some(want), "op {op}");
    }
}

#[test]
fn setexpr_test_regex() {
    let mut sh = shell();
    run(&mut sh, "setenv fred 'this is a test'");
    assert_eq!(
        run(&mut sh, "setexpr fred sub is us"),
        "fred=thus is a test\n"
    );
    assert_eq!(sh.env.get("fred"), Some("thus is a test"));
    run(&mut sh, "setenv fred 'this is a test'");
    run(&mut sh, "setexpr fred gsub is us");
    assert_eq!(sh.env.get("fred"), Some("thus us a test"));
    run(&mut sh, "setenv fred 'this is a test'");
    run(&mut sh, "setenv mary 'this is a test'");
    run(&mut sh, "setexpr fred gsub is us \"${mary}\"");
    assert_eq!(sh.env.get("fred"), Some("thus us a test"));
    assert_eq!(sh.env.get("mary"), Some("this is a test"));
    // setexpr_test_regex_inc
    run(&mut sh, "setenv fred 'this is a test'");
    run(&mut sh, "setexpr fred gsub is much_longer_string");
    assert_eq!(
        sh.env.get("fred"),
        Some("thmuch_longer_string much_longer_string a test")
    );
}

/// setexpr_test_sub and setexpr_test_backref call setexpr_regex_sub()
/// directly; here its port.
#[test]
fn setexpr_test_sub_and_backref() {
    use crate::cmds::regex_sub;
    use crate::slre::Regex;
    let re = Regex::compile("is").unwrap();
    let out = regex_sub(&re, b"this is a test", b"us it is longer", true).unwrap();
    assert_eq!(out, b"thus it is longer us it is longer a test");
    let re = Regex::compile("(this) (is) (surely|indeed)").unwrap();
    let out = regex_sub(
        &re,
        b"this is surely a test is it? yes this is indeed a test",
        b"us \\1 \\2 \\3!",
        true,
    )
    .unwrap();
    assert_eq!(
        out,
        b"us this is surely! a test is it? yes us this is indeed! a test"
    );
}

#[test]
fn setexpr_test_str() {
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, &[0xff; 0x100]);
    poke(&mut sh, MEM_BASE, b"hello\0");
    sh.env.set("fred", "x").unwrap();
    // 2023.01: a literal with .s is refused (status 1, no message).
    assert_eq!(run(&mut sh, "setexpr.s fred 0"), "");
    assert_eq!(sh.last_status(), 1);
    assert_eq!(sh.env.get("fred"), Some("x"));
    run(&mut sh, "setexpr.s fred *40000000");
    assert_eq!(sh.env.get("fred"), Some("hello"));
    // setexpr_test_str_oper
    poke(&mut sh, MEM_BASE + 0x10, b" there\0");
    assert_eq!(
        run(&mut sh, "setexpr.s fred *40000000 * *40000010"),
        "invalid op\n"
    );
    assert_eq!(sh.last_status(), 1);
    run(&mut sh, "setexpr.s fred *40000000 + *40000010");
    assert_eq!(sh.env.get("fred"), Some("hello there"));
    // setexpr_test_str_long: strings stop at 64 KiB.
    let size = 128 << 10;
    poke(&mut sh, MEM_BASE, &alloc::vec![b'a'; size]);
    run(&mut sh, "setexpr.s fred *40000000");
    assert_eq!(sh.env.get("fred").map(str::len), Some(64 << 10));
    assert_eq!(peek(&sh, MEM_BASE, 1), b"a");
}
