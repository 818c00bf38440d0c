//! Loops, local variables, `break` / `continue` / `exit`, and their bounds.

use alloc::format;
use alloc::string::String;

use super::{feed, run, run1, shell};
use crate::MAX_IF_DEPTH;

#[test]
fn for_loops() {
    assert_eq!(run1("for i in a b c; do echo $i; done"), "a\nb\nc\n");
    assert_eq!(
        run1("for i in a b\ndo\n  echo x$i\ndone\necho after"),
        "xa\nxb\nafter\n"
    );
    // The words are expanded and split like command arguments.
    let mut sh = shell();
    run(&mut sh, "setenv list 'p q  r'");
    assert_eq!(
        run(&mut sh, "for x in $list s; do echo -n $x.; done; echo"),
        "p.q.r.s.\n"
    );
    assert_eq!(
        run(&mut sh, "for x in \"$list\"; do echo \"[$x]\"; done"),
        "[p q  r]\n"
    );
    // No words: no iteration, status 0.
    assert_eq!(
        run(&mut sh, "false; for x in; do echo no; done; echo $?"),
        "0\n"
    );
    assert_eq!(run(&mut sh, "for x in $unset; do echo no; done"), "");
    // Status: that of the last body command.
    assert_eq!(
        run(&mut sh, "for x in 1 2; do test $x = 1; done; echo $?"),
        "1\n"
    );
    // The variable is a local one: not in the environment, left set.
    assert_eq!(sh.env.get("x"), None);
    assert_eq!(sh.local("x"), Some("2"));
    // Newlines between `for x` and `in`; `do` on the same line as `in`.
    assert_eq!(run1("for v\nin 1 2; do echo $v; done"), "1\n2\n");
    // Keywords as plain words in the list and the body.
    assert_eq!(
        run1("for w in do done in for; do echo $w; done"),
        "do\ndone\nin\nfor\n"
    );
    // Nested.
    assert_eq!(
        run1("for a in 1 2; do for b in x y; do echo -n $a$b' '; done; done; echo"),
        "1x 1y 2x 2y \n"
    );
    // As part of && / || and with if inside.
    assert_eq!(
        run1("true && for i in 1; do if test $i = 1; then echo one; fi; done && echo ok"),
        "one\nok\n"
    );
}

#[test]
fn while_and_until() {
    let mut sh = shell();
    run(&mut sh, "setenv n 0");
    let out = run(
        &mut sh,
        "while test $n -lt 3; do echo n=$n; setexpr n $n + 1; done; echo $?",
    );
    assert_eq!(out, "n=0\nn=1\nn=2\n0\n");
    run(&mut sh, "setenv n 0");
    assert_eq!(
        run(
            &mut sh,
            "until test $n -eq 2\ndo\nsetexpr n $n + 1\necho $n\ndone"
        ),
        "1\n2\n"
    );
    // The condition is a list; its last status decides.
    assert_eq!(
        run(&mut sh, "while echo c; false; do echo body; done"),
        "c\n"
    );
    // A loop whose body never runs has status 0; otherwise the body's.
    assert_eq!(run(&mut sh, "while false; do true; done; echo $?"), "0\n");
    run(&mut sh, "setenv k 1");
    assert_eq!(
        run(
            &mut sh,
            "while test -n \"$k\"; do setenv k; false; done; echo $?"
        ),
        "1\n"
    );
}

#[test]
fn break_and_continue() {
    assert_eq!(
        run1("for i in 1 2 3 4; do if test $i = 3; then break; fi; echo $i; done; echo end"),
        "1\n2\nend\n"
    );
    assert_eq!(
        run1("for i in 1 2 3; do if test $i = 2; then continue; fi; echo $i; done"),
        "1\n3\n"
    );
    // break n / continue n leave n loops.
    assert_eq!(
        run1("for a in 1 2; do for b in x y; do echo $a$b; break 2; done; done; echo out"),
        "1x\nout\n"
    );
    assert_eq!(
        run1("for a in 1 2; do for b in x y; do echo $a$b; continue 2; done; echo never; done"),
        "1x\n2x\n"
    );
    // n larger than the nesting: all loops.
    assert_eq!(run1("for a in 1 2; do break 9; done; echo $a"), "1\n");
    // A bad count is reported and leaves all loops (busybox hush).
    assert_eq!(
        run1("for a in 1 2; do for b in 3; do break x; done; echo no; done; echo $a$b"),
        "break: bad arguments\n13\n"
    );
    // `while true` with break.
    let mut sh = shell();
    run(&mut sh, "setenv n 0");
    assert_eq!(
        run(
            &mut sh,
            "while true; do setexpr n $n + 1; if test $n = 5; then break; fi; done; echo $n"
        ),
        "5\n"
    );
    // Outside a loop: a message, status 0, the script goes on.
    assert_eq!(
        run1("break; echo $?; continue"),
        "break: only meaningful in a loop\n0\ncontinue: only meaningful in a loop\n"
    );
    // A loop in the caller does not extend into a `run` script.
    let mut sh = shell();
    run(&mut sh, "setenv inner 'break; echo in'");
    assert_eq!(
        run(&mut sh, "for i in 1 2; do run inner; done"),
        "break: only meaningful in a loop\nin\nbreak: only meaningful in a loop\nin\n"
    );
}

#[test]
fn exit_ends_the_script() {
    let mut sh = shell();
    run(
        &mut sh,
        "setenv s 'echo a; for i in 1 2; do if true; then exit 4; fi; done; echo never'",
    );
    assert_eq!(run(&mut sh, "run s; echo $?"), "a\n4\n");
    // Nested runs: only the innermost script ends.
    run(
        &mut sh,
        "setenv inner 'echo entry inner; exit; echo inner done'",
    );
    run(
        &mut sh,
        "setenv outer 'echo entry outer; run inner; echo outer done'",
    );
    assert_eq!(
        run(&mut sh, "run outer"),
        "entry outer\nentry inner\nouter done\n"
    );
    // A script given to run_script (bootcmd, boot.scr) ends too.
    assert!(sh.run_script("echo x; exit 2; echo y").is_err());
    assert_eq!(sh.last_status(), 2);
    assert_eq!(super::take(&mut sh), "x\n");
    // Usage.
    assert_eq!(run(&mut sh, "exit 1 2"), "Usage: exit [n]\n");
}

#[test]
fn exit_at_the_prompt_is_refused() {
    let mut sh = shell();
    feed(&mut sh, b"echo a; exit; echo b\necho next\n");
    sh.run_prompt_loop();
    let out = super::take(&mut sh);
    assert!(
        out.contains("a\nexit not allowed from main input shell.\n=> echo next\nnext\n"),
        "{out:?}"
    );
    assert!(!out.contains("\nb\n"));
}

#[test]
fn local_variables() {
    let mut sh = shell();
    assert_eq!(run(&mut sh, "x=5; echo $x ${x} \"$x\""), "5 5 5\n");
    // Not in the environment, not printed by printenv.
    assert_eq!(run(&mut sh, "printenv x"), "## Error: \"x\" not defined\n");
    assert_eq!(sh.env.get("x"), None);
    // An environment variable hides a local of the same name (U-Boot).
    assert_eq!(
        run(
            &mut sh,
            "setenv x 7; echo $x; x=8; echo $x; setenv x; echo $x"
        ),
        "7\n7\n8\n"
    );
    // showvar lists the locals in creation order.
    run(&mut sh, "b=2; a=1");
    // (U-Boot's old hush starts with a read-only HUSH_VERSION.)
    assert_eq!(
        run(&mut sh, "showvar"),
        "HUSH_VERSION=0.01\nx=8\nb=2\na=1\n"
    );
    assert_eq!(
        run(&mut sh, "HUSH_VERSION=1; echo $HUSH_VERSION"),
        "HUSH_VERSION: readonly variable\n0.01\n"
    );
    assert_eq!(run(&mut sh, "showvar a"), "a=1\n");
    assert_eq!(
        run(&mut sh, "showvar nope; echo $?"),
        "## Error: \"nope\" not defined\n1\n"
    );
    // `name=` deletes; values are expanded as one word.
    run(&mut sh, "b=");
    assert_eq!(sh.local("b"), None);
    run(&mut sh, "setenv sp 'p  q'; v=$sp; w=\"a b\"c");
    assert_eq!(sh.local("v"), Some("p  q"));
    assert_eq!(sh.local("w"), Some("a bc"));
    // Several assignments, and assignments before a command stay set.
    run(&mut sh, "m=1 n=2 echo; o=$m$n");
    assert_eq!(sh.local("o"), Some("12"));
    // Only `NAME=` written plainly at the start is an assignment.
    assert_eq!(
        run(&mut sh, "'q=1'"),
        "Unknown command 'q=1' - try 'help'\n"
    );
    assert_eq!(run(&mut sh, "echo q=1 9=1 _r=2"), "q=1 9=1 _r=2\n");
    assert_eq!(
        run(&mut sh, "1x=2"),
        "Unknown command '1x=2' - try 'help'\n"
    );
    // An assignment's status is 0.
    assert_eq!(run(&mut sh, "false; z=1; echo $?"), "0\n");
}

#[test]
fn parameter_operators() {
    let mut sh = shell();
    run(&mut sh, "setenv set yes; e=");
    assert_eq!(
        run(
            &mut sh,
            "echo ${set:-d} ${unset:-d} ${set:+alt} [${unset:+alt}]"
        ),
        "yes d alt []\n"
    );
    assert_eq!(run(&mut sh, "echo ${new:=val} $new"), "val val\n");
    assert_eq!(sh.local("new"), Some("val"));
    assert_eq!(sh.env.get("new"), None);
    assert_eq!(
        run(&mut sh, "echo ${x:?}"),
        "syntax error: bad substitution '${x:?}'\n"
    );
}

#[test]
fn loop_syntax_errors() {
    let cases = [
        (
            "for; do echo; done",
            "syntax error: 'for' without variable\n",
        ),
        (
            "for 1x in a; do echo; done",
            "syntax error: bad 'for' variable (a name like x or my_var)\n",
        ),
        (
            "for x y; do echo; done",
            "syntax error: 'for' without 'in' (only 'for NAME in WORDS' is supported)\n",
        ),
        (
            "for x in a; echo; done",
            "syntax error: expected 'do', found word\n",
        ),
        (
            "for x in a; do echo; done echo",
            "syntax error: unexpected word after 'done'\n",
        ),
        (
            "while; do echo; done",
            "syntax error: missing commands after 'while'\n",
        ),
        (
            "until true; echo; done",
            "syntax error: unexpected 'done'\n",
        ),
        ("done", "syntax error: unexpected 'done'\n"),
        ("do echo", "syntax error: unexpected 'do'\n"),
        ("in", "syntax error: unexpected 'in'\n"),
        ("for x in a b", "syntax error: 'for' without 'do'\n"),
        (
            "for x in a; do echo",
            "syntax error: 'for' without 'done'\n",
        ),
        (
            "while true; do echo",
            "syntax error: 'while' without 'done'\n",
        ),
        ("until true", "syntax error: 'until' without 'do'\n"),
    ];
    for (script, want) in cases {
        let mut sh = shell();
        assert_eq!(
            run(&mut sh, &format!("setenv z 1; {script}")),
            want,
            "{script}"
        );
        assert_eq!(sh.env.get("z"), None, "{script}");
    }
}

#[test]
fn infinite_loops_end_at_the_command_budget() {
    let mut sh = shell();
    sh.max_commands = 1000;
    for script in [
        "while true; do true; done",
        "while true; do x=1; done",
        "until false; do $nothing; done",
        "while true; do for i in 1 2 3; do continue; done; done",
    ] {
        let out = run(&mut sh, script);
        assert_eq!(
            out, "script stopped: more than 1000 commands from one line\n",
            "{script}"
        );
        assert_eq!(sh.last_status(), 1);
        // The next line runs normally.
        assert_eq!(run(&mut sh, "echo ok"), "ok\n");
    }
    // The product budget too (20 000), quickly.
    let mut sh = shell();
    let t = std::time::Instant::now();
    let out = run(&mut sh, "while true; do echo -n; done");
    assert!(out.contains("more than 20000 commands"), "{out}");
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}

extern crate std;

#[test]
fn ctrl_c_stops_a_loop() {
    let mut sh = shell();
    // ctrl-C is seen between iterations.
    feed(&mut sh, b"\x03");
    assert_eq!(run(&mut sh, "while true; do echo -n; done; echo never"), "");
    assert!(sh.interrupted());
    // The next top-level script starts afresh.
    assert_eq!(run(&mut sh, "echo again"), "again\n");
}

#[test]
fn nested_compound_commands_are_bounded() {
    let nest = |n: usize| {
        let mut s = String::new();
        for i in 0..n {
            if i % 2 == 0 {
                s.push_str("for i in 1; do ");
            } else {
                s.push_str("while true; do ");
            }
        }
        s.push_str("echo deep; break 99");
        for _ in 0..n {
            s.push_str("; done");
        }
        s
    };
    assert_eq!(run1(&nest(MAX_IF_DEPTH)), "deep\n");
    assert_eq!(
        run1(&nest(MAX_IF_DEPTH + 1)),
        format!("syntax error: 'for' nested too deep (max {MAX_IF_DEPTH})\n")
    );
    // Loops inside `run` inside loops: the total execution depth is bounded.
    let mut body = String::new();
    for _ in 0..15 {
        body.push_str("for i in 1; do ");
    }
    body.push_str("run d");
    for _ in 0..15 {
        body.push_str("; done");
    }
    let mut sh = shell();
    sh.env.set("d", &body).unwrap();
    let out = run(&mut sh, "run d");
    assert!(out.contains("nesting too deep"), "{out}");
}

#[test]
fn loops_in_variables_and_comments() {
    let mut sh = shell();
    run(
        &mut sh,
        "setenv overlays 'a b c'; setenv ov_loop 'for o in ${overlays}; do # each one\n  echo applying $o # comment\ndone'",
    );
    assert_eq!(
        run(&mut sh, "run ov_loop"),
        "applying a\napplying b\napplying c\n"
    );
    // Backslash-newline continuation inside a loop.
    assert_eq!(run1("for i in 1 \\\n 2; do \\\necho $i; done"), "1\n2\n");
}
