//! Parser, expansion and executor tests.

use alloc::format;
use alloc::string::String;

use super::{run, run1, shell};
use crate::parse::{parse_script, Seg};
use crate::MAX_IF_DEPTH;

#[test]
fn simple_echo() {
    assert_eq!(run1("echo hello   world"), "hello world\n");
    assert_eq!(run1("echo"), "\n");
    assert_eq!(run1("echo -n abc"), "abc");
    assert_eq!(run1("echo a -n"), "a -n\n");
}

#[test]
fn quotes_and_escapes() {
    assert_eq!(run1(r#"args 'a  b' "c  d" e\ \ f"#), "[a  b][c  d][e  f]\n");
    assert_eq!(run1(r#"args '' "" x''y"#), "[][][xy]\n");
    assert_eq!(run1(r#"args \$a \"q\" \\"#), "[$a][\"q\"][\\]\n");
    assert_eq!(
        run1(r#"args "x\$y" "a\qb" "\"" "\\""#),
        "[x$y][a\\qb][\"][\\]\n"
    );
    assert_eq!(
        run1(r#"args 'it''s' "it's" 'say "hi"'"#),
        "[its][it's][say \"hi\"]\n"
    );
    // `\` + newline continues the line, outside and inside double quotes.
    assert_eq!(run1("args a\\\nb c"), "[ab][c]\n");
    assert_eq!(run1("args \"a\\\nb\""), "[ab]\n");
    assert_eq!(run1("args x \\\n y"), "[x][y]\n");
    // A trailing lone backslash is literal.
    assert_eq!(run1("args a\\"), "[a\\]\n");
}

#[test]
fn dollar_expansion() {
    let mut sh = shell();
    run(&mut sh, "setenv a 1; setenv b.c two");
    assert_eq!(
        run(&mut sh, r#"args $a ${a} "$a" '$a' x${a}y"#),
        "[1][1][1][$a][x1y]\n"
    );
    assert_eq!(run(&mut sh, "args ${b.c} $b.c"), "[two][.c]\n");
    // `$` not followed by a name is literal.
    assert_eq!(run(&mut sh, "args $ a$ $- \"$\""), "[$][a$][$-][$]\n");
    // Unset variables expand to nothing.
    assert_eq!(run(&mut sh, "args $nope \"$nope\" x$nope"), "[][x]\n");
}

#[test]
fn expansion_happens_at_execution_time() {
    assert_eq!(run1("setenv a 1; echo $a"), "1\n");
    assert_eq!(run1("setenv a 1; setenv a $a$a; echo $a"), "11\n");
    assert_eq!(
        run1("setenv a 1\nsetenv b $a\nsetenv a 2\necho $a $b"),
        "2 1\n"
    );
}

#[test]
fn field_splitting() {
    let mut sh = shell();
    run(
        &mut sh,
        "setenv x 'p  q'; setenv sp ' '; setenv lead ' r s '",
    );
    assert_eq!(run(&mut sh, r#"args $x "$x" a$x"#), "[p][q][p  q][ap][q]\n");
    assert_eq!(run(&mut sh, "args a${sp}b"), "[a][b]\n");
    assert_eq!(run(&mut sh, "args a${lead}b"), "[a][r][s][b]\n");
    assert_eq!(run(&mut sh, "args $sp"), "\n");
    assert_eq!(run(&mut sh, "args \"$sp\""), "[ ]\n");
    // Assigned values keep what the shell passed (joined words).
    run(&mut sh, "setenv y $x");
    assert_eq!(sh.env.get("y"), Some("p q"));
    run(&mut sh, "setenv y \"$x\"");
    assert_eq!(sh.env.get("y"), Some("p  q"));
}

#[test]
fn empty_expansion_makes_no_command() {
    assert_eq!(run1("$nothing"), "");
    let mut sh = shell();
    run(&mut sh, "setenv c echo");
    assert_eq!(run(&mut sh, "$c from var"), "from var\n");
}

#[test]
fn status_variable() {
    assert_eq!(run1("false; echo $?"), "1\n");
    assert_eq!(run1("true; echo $?"), "0\n");
    assert_eq!(
        run1("nosuch; echo ${?} \"$?\""),
        "Unknown command 'nosuch' - try 'help'\n1 1\n"
    );
    let mut sh = shell();
    run(&mut sh, "false");
    assert_eq!(sh.last_status(), 1);
    assert_eq!(run(&mut sh, "echo $?"), "1\n");
    assert_eq!(sh.last_status(), 0);
}

#[test]
fn and_or_lists() {
    assert_eq!(run1("true && echo a || echo b"), "a\n");
    assert_eq!(run1("false && echo a || echo b"), "b\n");
    assert_eq!(run1("false || false && echo x"), "");
    assert_eq!(run1("true || false && echo y"), "y\n");
    assert_eq!(run1("false || echo a && echo b"), "a\nb\n");
    assert_eq!(run1("true && false || echo c"), "c\n");
    assert_eq!(run1("true &&\n\n echo next-line"), "next-line\n");
    let mut sh = shell();
    assert!(sh.run_script("true && false").is_err());
    assert!(sh.run_script("false || true").is_ok());
}

#[test]
fn separators_and_comments() {
    assert_eq!(run1("echo a; echo b\necho c"), "a\nb\nc\n");
    assert_eq!(run1("echo a # comment; echo b"), "a\n");
    assert_eq!(run1("echo a#b '#c' \"#d\" \\#e"), "a#b #c #d #e\n");
    assert_eq!(run1("# only a comment"), "");
    assert_eq!(run1("# c1\necho x # c2\n  # c3\necho y"), "x\ny\n");
    // Empty commands are tolerated.
    assert_eq!(run1(";; echo a;;; ; echo b;"), "a\nb\n");
    assert_eq!(run1(""), "");
    assert_eq!(run1("\n\n  \t \n"), "");
    // CRLF scripts.
    assert_eq!(run1("echo a\r\necho b\r\n"), "a\nb\n");
}

#[test]
fn syntax_errors_execute_nothing() {
    let cases = [
        (
            "setenv z 1; echo 'abc",
            "syntax error: unterminated quote\n",
        ),
        (
            "setenv z 1; echo \"abc",
            "syntax error: unterminated quote\n",
        ),
        (
            "setenv z 1; echo ${abc",
            "syntax error: unterminated '${'\n",
        ),
        (
            "setenv z 1; echo ${}",
            "syntax error: bad substitution '${}'\n",
        ),
        (
            "setenv z 1; echo ${a b}",
            "syntax error: bad substitution '${a b}'\n",
        ),
        (
            "setenv z 1; echo a | b",
            "syntax error: '|' (pipes) is not supported\n",
        ),
        (
            "setenv z 1; echo a &",
            "syntax error: '&' (background jobs) is not supported\n",
        ),
        (
            "setenv z 1; if true; then echo",
            "syntax error: 'if' without 'fi'\n",
        ),
        ("setenv z 1; if true", "syntax error: 'if' without 'then'\n"),
        ("setenv z 1; fi", "syntax error: unexpected 'fi'\n"),
        ("setenv z 1; then echo", "syntax error: unexpected 'then'\n"),
        ("setenv z 1; else", "syntax error: unexpected 'else'\n"),
        (
            "setenv z 1; if ; then echo; fi",
            "syntax error: missing commands after 'if'\n",
        ),
        (
            "setenv z 1; if true; then echo; elif; then echo; fi",
            "syntax error: missing commands after 'elif'\n",
        ),
        (
            "setenv z 1; if true; then echo; fi echo",
            "syntax error: unexpected word after 'fi'\n",
        ),
        ("setenv z 1; && echo", "syntax error: unexpected '&&'\n"),
        (
            "setenv z 1; echo ||",
            "syntax error: unexpected end of input\n",
        ),
        (
            "setenv z 1; true && ; echo",
            "syntax error: unexpected ';'\n",
        ),
        (
            "setenv z 1\necho ok\n'",
            "syntax error: unterminated quote\n",
        ),
    ];
    for (script, expected) in cases {
        let mut sh = shell();
        assert_eq!(run(&mut sh, script), expected, "script: {script:?}");
        assert_eq!(sh.env.get("z"), None, "script: {script:?}");
        assert_eq!(sh.last_status(), 1);
    }
}

#[test]
fn if_then_else() {
    assert_eq!(run1("if true; then echo y; else echo n; fi"), "y\n");
    assert_eq!(run1("if false; then echo y; else echo n; fi"), "n\n");
    assert_eq!(run1("if false; then echo y; fi"), "");
    assert_eq!(
        run1("if false; then echo 1; elif false; then echo 2; elif true; then echo 3; else echo 4; fi"),
        "3\n"
    );
    assert_eq!(
        run1("if false; then echo 1; elif false; then echo 2; else echo 4; fi"),
        "4\n"
    );
    // Conditions are lists; the last status decides.
    assert_eq!(run1("if true; false; then echo y; else echo n; fi"), "n\n");
    assert_eq!(run1("if false || true; then echo y; fi"), "y\n");
    // Status of an if without a taken branch is 0.
    assert_eq!(run1("false; if false; then echo; fi; echo $?"), "0\n");
    assert_eq!(run1("if true; then false; fi; echo $?"), "1\n");
    // if as part of && / ||.
    assert_eq!(
        run1("if false; then true; else false; fi || echo failed"),
        "failed\n"
    );
    assert_eq!(
        run1("true && if true; then echo in; fi && echo after"),
        "in\nafter\n"
    );
    // Keywords are only keywords unquoted and in command position.
    assert_eq!(run1("echo if then else elif fi"), "if then else elif fi\n");
    assert_eq!(run1("'if' true"), "Unknown command 'if' - try 'help'\n");
    assert_eq!(run1("if true; then echo fi; fi"), "fi\n");
}

#[test]
fn empty_bodies_are_accepted() {
    // U-Boot's hush accepts empty branches (e.g. one holding only a
    // comment); an empty body has status 0.
    assert_eq!(run1("if true; then fi; echo $?"), "0\n");
    assert_eq!(run1("if false; then; else echo b; fi"), "b\n");
    assert_eq!(run1("if true; then echo a; else; fi"), "a\n");
    assert_eq!(run1("if true; then\n  # setenv x 1\nfi; echo $?"), "0\n");
    assert_eq!(run1("for i in a; do; done; echo $i"), "a\n");
    assert_eq!(run1("while false; do; done; echo $?"), "0\n");
}

#[test]
fn multi_line_if() {
    let script = "
setenv n 3
if test $n -eq 1
then
    echo one
elif test $n -eq 3
then
    echo three
    if test $n -gt 2; then
        echo big
    else
        echo small
    fi
else
    echo other
fi
echo done
";
    assert_eq!(run1(script), "three\nbig\ndone\n");
}

#[test]
fn nested_if_depth_limit() {
    let nest = |n: usize| {
        let mut s = String::new();
        for _ in 0..n {
            s.push_str("if true; then ");
        }
        s.push_str("echo deep");
        for _ in 0..n {
            s.push_str("; fi");
        }
        s
    };
    assert_eq!(run1(&nest(MAX_IF_DEPTH)), "deep\n");
    assert_eq!(
        run1(&nest(MAX_IF_DEPTH + 1)),
        format!("syntax error: 'if' nested too deep (max {MAX_IF_DEPTH})\n")
    );
    // Deep nesting in the condition position too.
    let mut s = String::new();
    for _ in 0..1000 {
        s.push_str("if ");
    }
    assert!(run1(&s).starts_with("syntax error"));
}

#[test]
fn run_command() {
    let mut sh = shell();
    run(&mut sh, "setenv s 'echo in s; echo $v'; setenv v 42");
    assert_eq!(run(&mut sh, "run s"), "in s\n42\n");
    run(&mut sh, "setenv t 'echo t'");
    assert_eq!(run(&mut sh, "run s t s"), "in s\n42\nt\nin s\n42\n");
    assert_eq!(
        run(&mut sh, "run nope; echo $?"),
        "## Error: \"nope\" not defined\n1\n"
    );
    // Stops at the first failing variable.
    run(&mut sh, "setenv f false");
    assert_eq!(run(&mut sh, "run t f t || echo failed"), "t\nfailed\n");
    assert_eq!(run(&mut sh, "run"), "Usage: run var [var...]\n");
    // Multi-line content with if.
    run(
        &mut sh,
        "setenv m 'if test $v = 42\nthen\n echo yes\nelse\n echo no\nfi'",
    );
    assert_eq!(run(&mut sh, "run m"), "yes\n");
    // A syntax error inside a variable only fails that run.
    run(&mut sh, "setenv bad 'echo \"x'");
    assert_eq!(
        run(&mut sh, "run bad || echo caught"),
        "syntax error: unterminated quote\ncaught\n"
    );
}

#[test]
fn run_recursion_limit() {
    let mut sh = shell();
    run(&mut sh, "setenv r 'run r'");
    assert_eq!(run(&mut sh, "run r; echo $?"), "run: nesting too deep\n1\n");
    // Mutual recursion and fan-out are bounded too.
    run(&mut sh, "setenv a 'run b'; setenv b 'run a'");
    assert_eq!(run(&mut sh, "run a"), "run: nesting too deep\n");
    // Exactly MAX_RUN_DEPTH levels work.
    let mut sh = shell();
    for i in 1..crate::MAX_RUN_DEPTH {
        sh.env
            .set(&format!("l{i}"), &format!("run l{}", i + 1))
            .unwrap();
    }
    sh.env
        .set(&format!("l{}", crate::MAX_RUN_DEPTH), "echo bottom")
        .unwrap();
    assert_eq!(run(&mut sh, "run l1"), "bottom\n");
}

#[test]
fn run_with_deep_ifs_is_bounded() {
    // Each level nests 15 ifs and runs the next level: the total execution
    // depth limit stops it cleanly.
    let mut body = String::new();
    for _ in 0..15 {
        body.push_str("if true; then ");
    }
    body.push_str("run d");
    for _ in 0..15 {
        body.push_str("; fi");
    }
    let mut sh = shell();
    sh.env.set("d", &body).unwrap();
    let out = run(&mut sh, "run d");
    assert!(out.contains("nesting too deep"), "{out}");
    assert_eq!(sh.last_status(), 1);
}

#[test]
fn unknown_command_and_usage() {
    assert_eq!(run1("foo bar"), "Unknown command 'foo' - try 'help'\n");
    assert_eq!(run1("setenv"), "Usage: setenv [-f] name [value...]\n");
    assert_eq!(run1("md.x 0"), "Usage: md[.b|.w|.l|.q] addr [count]\n");
    // Size suffix lookup falls back to the base command.
    assert_eq!(run1("echo.anything hi"), "hi\n");
}

#[test]
fn expansion_is_bounded() {
    let mut sh = shell();
    run(&mut sh, &format!("setenv a {}", "x".repeat(1000)));
    let mut out = String::new();
    for _ in 0..10 {
        out.push_str(&run(&mut sh, "setenv a $a$a$a$a"));
    }
    assert!(out.contains("expansion too long"), "{out}");
    assert!(sh.env.get("a").unwrap().len() <= crate::MAX_EXPANSION);
}

#[test]
fn parser_keeps_words_unexpanded() {
    let list = parse_script("echo \"a$b\"").unwrap();
    let crate::parse::Cmd::Simple(sc) = &list[0].first else {
        panic!("not simple")
    };
    assert_eq!(
        sc.words[1].segs,
        [
            Seg::Text("a".into()),
            Seg::Var {
                name: "b".into(),
                quoted: true
            }
        ]
    );
}

#[test]
fn commands_running_scripts_are_bounded() {
    // A loader command that runs a script which runs the command again.
    fn again(sh: &mut crate::Shell<super::Fake>, _args: &[String]) -> crate::CmdResult {
        sh.run_script("again")
    }
    let mut sh = shell();
    sh.register(crate::Command {
        name: "again",
        usage: "again",
        help: "recurse",
        run: again,
    });
    let out = run(&mut sh, "again; echo $?");
    assert_eq!(out, "nesting too deep (max 32)\n1\n");
}

#[test]
fn worst_case_nesting_fits_a_small_stack() {
    // The deepest the executor goes: nested loops and ifs in `run` scripts
    // up to the total depth limit, each level also running a regex match
    // at the matcher's own depth limit. Unoptimized code needs far more
    // stack than the release build on the target: 256 KiB here in debug;
    // `cargo test --release` checks the release build in 40 KiB (the
    // loader's stack is 256 KiB, and a command it runs needs up to ~44 KiB).
    let stack = if cfg!(debug_assertions) { 256 } else { 40 } * 1024;
    let child = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(|| {
            let half = crate::MAX_IF_DEPTH / 2;
            let mut body = String::new();
            for _ in 0..half {
                body.push_str("if true; then for i in 1; do ");
            }
            // 35 loops in a row and 30 nested optional groups: the matcher
            // recurses about that deep (its limit is 64).
            body.push_str(&format!(
                "setexpr x sub '{}' b aa; setexpr y sub '{}a{}' c aaa; run d",
                "a*".repeat(35),
                "(".repeat(30),
                ")?".repeat(30)
            ));
            for _ in 0..half {
                body.push_str("; done; fi");
            }
            let mut sh = shell();
            sh.env.set("d", &body).unwrap();
            run(&mut sh, "run d")
        })
        .unwrap();
    let out = child.join().unwrap();
    assert!(out.contains("nesting too deep"), "{out}");
    assert!(out.contains("x=b\ny=caa\n"), "{out}");
}

extern crate std;

/// Fuzz regression (run-fanout-hang): depth is bounded, and so is fan-out —
/// four `run a` per level would otherwise run 4^16 commands.
#[test]
fn run_fanout_is_bounded() {
    let script = include_str!("../../../tests/fuzz/regressions/shell_line/run-fanout-hang.txt");
    let mut sh = super::shell();
    let t = std::time::Instant::now();
    let out = super::run(&mut sh, script);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        out.contains("script stopped: more than 20000 commands"),
        "{}",
        &out[out.len().saturating_sub(300)..]
    );
    // The next line runs normally.
    assert_eq!(super::run(&mut sh, "echo ok"), "ok\n");
    // A lower budget (what the fuzzer sets) stops at its own count, and
    // every new top-level line starts with the full budget again.
    sh.max_commands = 50;
    let out = super::run(&mut sh, "run a");
    assert!(
        out.contains("script stopped: more than 50 commands"),
        "{out}"
    );
    let out = super::run(&mut sh, &"echo x; ".repeat(50));
    assert_eq!(out, "x\n".repeat(50));
    let out = super::run(&mut sh, &"echo x; ".repeat(51));
    assert!(
        out.ends_with("x\nscript stopped: more than 50 commands from one line\n"),
        "{out}"
    );
    assert_eq!(out.matches("x\n").count(), 50);
}
