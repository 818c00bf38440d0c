//! Console input tests: dumb mode, line-editing mode, terminal probe.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{feed, shell, take, Fake};
use crate::input::{EscParser, Event};
use crate::{LineMode, ReadLine, Shell, MAX_LINE};

/// Feed `input`, run the prompt loop to end of input, return the output.
fn session(sh: &mut Shell<Fake>, input: &[u8]) -> String {
    feed(sh, input);
    sh.run_prompt_loop();
    take(sh)
}

/// Output with the prompt and echo removed: just what commands printed
/// (lines that follow a prompt line are command output).
fn outputs(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with("=> ") && !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn dumb_lines_and_echo() {
    let mut sh = shell();
    let out = session(&mut sh, b"echo a\necho b\r\necho c\r");
    assert_eq!(out, "=> echo a\na\n=> echo b\nb\n=> echo c\nc\n=> \n");
}

#[test]
fn dumb_crlf_is_one_line_end() {
    let mut sh = shell();
    let out = session(&mut sh, b"echo a\r\n\r\necho b\n\n");
    // Two blank lines (one CRLF, one LF) give two empty prompts.
    assert_eq!(out.matches("=> ").count(), 5, "{out:?}");
    assert_eq!(outputs(&out), ["a", "b"]);
}

#[test]
fn dumb_last_line_without_newline_runs() {
    let mut sh = shell();
    assert_eq!(outputs(&session(&mut sh, b"echo last")), ["last"]);
}

#[test]
fn dumb_backspace_and_delete() {
    let mut sh = shell();
    let out = session(&mut sh, b"ecx\x7fho hj\x08i\n\x7f\x7fecho ok\n");
    assert_eq!(outputs(&out), ["hi", "ok"]);
    assert!(out.contains("ecx\x08 \x08ho"));
}

#[test]
fn dumb_ctrl_c_cancels_line() {
    let mut sh = shell();
    let out = session(&mut sh, b"echo no\x03echo yes\n");
    assert_eq!(out, "=> echo no<INTERRUPT>\n=> echo yes\nyes\n=> \n");
}

#[test]
fn dumb_ignores_garbage_bytes() {
    let mut sh = shell();
    let out = session(
        &mut sh,
        b"ec\x01\x80\xff\x00ho \x1b[A\x1b[24;80R\x1bOBo\x1b[1;2;3;4Hk\x1bx\n",
    );
    // Escape sequences are dropped whole; ESC + x keeps the x.
    assert_eq!(outputs(&out), ["okx"]);
}

#[test]
fn dumb_line_too_long() {
    let mut sh = shell();
    let mut input = Vec::new();
    input.extend(core::iter::repeat_n(b'a', MAX_LINE + 50));
    input.extend(b"\necho ok\n");
    let out = session(&mut sh, &input);
    assert!(out.contains("line too long (max 1024)\n"), "{out}");
    assert_eq!(outputs(&out).last().map(String::as_str), Some("ok"));
    // Exactly MAX_LINE is accepted.
    let mut sh = shell();
    let mut input = b"echo ".to_vec();
    input.extend(core::iter::repeat_n(b'b', MAX_LINE - 5));
    input.push(b'\n');
    let out = session(&mut sh, &input);
    assert!(!out.contains("too long"));
    assert!(out.contains(&"b".repeat(MAX_LINE - 5)));
    // Backspacing back under the limit makes the line acceptable again.
    let mut sh = shell();
    let mut input = b"echo ".to_vec();
    input.extend(core::iter::repeat_n(b'c', MAX_LINE));
    input.extend(core::iter::repeat_n(0x7f, 10));
    input.push(b'\n');
    let out = session(&mut sh, &input);
    assert!(!out.contains("too long"));
}

#[test]
fn dumb_script_through_pipe_keeps_every_byte() {
    // A whole script arrives at once; commands poll the console (sleep,
    // md) in between, which must not lose the following lines.
    let mut sh = shell();
    let script = b"setenv x 1\nsleep 0.01\necho $x\nmd.b 40000000 1\nif test $x = 1\n";
    let out = session(&mut sh, script);
    let o = outputs(&out);
    assert_eq!(o[0], "1");
    assert!(o[1].starts_with("40000000: 00"));
    // An unfinished `if` asks for more with the secondary prompt; at the
    // end of input it is reported.
    assert!(
        out.ends_with("=> if test $x = 1\n> \nsyntax error: 'if' without 'then'\n"),
        "{out:?}"
    );
}

#[test]
fn read_line_api() {
    let mut sh = shell();
    feed(&mut sh, b"abc\n\x03x\n");
    assert_eq!(sh.read_line(), ReadLine::Line("abc".into()));
    assert_eq!(sh.read_line(), ReadLine::Cancelled);
    assert_eq!(sh.read_line(), ReadLine::Line("x".into()));
    assert_eq!(sh.read_line(), ReadLine::Eof);
    feed(&mut sh, b"k");
    assert_eq!(sh.poll_key(), Some(b'k'));
    feed(&mut sh, b"\x1b[A");
    assert_eq!(sh.poll_key(), Some(0x1b));
    assert_eq!(sh.poll_key(), None);
}

#[test]
fn probe_without_terminal_keeps_input() {
    let mut sh = shell();
    sh.platform.idle_budget = 1_000_000;
    feed(&mut sh, b"echo typed\n");
    let t0 = sh.platform.time.get();
    assert!(!sh.probe_terminal(100));
    let dt = sh.platform.time.get() - t0;
    assert!((100_000..200_000).contains(&dt), "{dt}");
    assert_eq!(sh.line_mode(), LineMode::Dumb);
    sh.platform.idle_budget = 0;
    let out = session(&mut sh, b"");
    assert_eq!(out, "\x1b[6n=> echo typed\ntyped\n=> \n");
}

#[test]
fn probe_with_terminal_selects_edit_mode() {
    let mut sh = shell();
    sh.platform.cpr_reply = Some(b"\x1b[24;80R".to_vec());
    feed(&mut sh, b"echo early\r");
    assert!(sh.probe_terminal(100));
    assert_eq!(sh.line_mode(), LineMode::Edit);
    let out = session(&mut sh, b"echo second\r");
    let o = outputs_edit(&out);
    assert!(o.iter().any(|l| l == "early"), "{out:?}");
    assert!(o.iter().any(|l| l == "second"), "{out:?}");
    assert_eq!(sh.line_mode(), LineMode::Edit);
}

/// A shell in edit mode with a terminal answering CPRs.
fn edit_shell(reply: &[u8]) -> Shell<Fake> {
    let mut sh = shell();
    sh.platform.cpr_reply = Some(reply.to_vec());
    sh.set_line_mode(LineMode::Edit);
    sh
}

/// Lines read in edit mode from `input`.
fn edit_lines(reply: &[u8], input: &[u8]) -> Vec<ReadLine> {
    let mut sh = edit_shell(reply);
    feed(&mut sh, input);
    let mut v = Vec::new();
    loop {
        let r = sh.read_line();
        if r == ReadLine::Eof {
            return v;
        }
        v.push(r);
    }
}

fn line(s: &str) -> ReadLine {
    ReadLine::Line(s.into())
}

#[test]
fn edit_mode_editing_keys() {
    let r = b"\x1b[24;80R";
    assert_eq!(edit_lines(r, b"echo abd\x7fc\r"), [line("echo abc")]);
    // Left arrow then insert; CSI and SS3 forms; Home/End variants.
    assert_eq!(edit_lines(r, b"echo ac\x1b[Db\r"), [line("echo abc")]);
    assert_eq!(edit_lines(r, b"echo ac\x1bODb\r"), [line("echo abc")]);
    assert_eq!(edit_lines(r, b"cho x\x1b[He\r"), [line("echo x")]);
    assert_eq!(edit_lines(r, b"cho x\x1b[1~e\x1b[4~y\r"), [line("echo xy")]);
    assert_eq!(edit_lines(r, b"cho x\x1b[7~e\x1b[8~y\r"), [line("echo xy")]);
    assert_eq!(edit_lines(r, b"xecho\x1b[H\x1b[3~\r"), [line("echo")]);
    assert_eq!(edit_lines(r, b"abc\x01X\x05Y\r"), [line("XabcY")]);
    // CRLF is one line end; LF alone works too.
    assert_eq!(
        edit_lines(r, b"a\r\nb\nc\r"),
        [line("a"), line("b"), line("c")]
    );
}

#[test]
fn edit_mode_history() {
    let mut sh = edit_shell(b"\x1b[24;80R");
    // Up twice: "echo one". Then history is one, two, one: up three times
    // and down once gives "echo two".
    let out = session(
        &mut sh,
        b"echo one\recho two\r\x1b[A\x1b[A\r\x1b[A\x1b[A\x1b[A\x1b[B\r",
    );
    assert_eq!(outputs_edit(&out), ["one", "two", "one", "two"]);
}

/// Command output lines in an edit-mode session: drop lines containing
/// the prompt or escape sequences.
fn outputs_edit(out: &str) -> Vec<String> {
    out.split(['\n', '\r'])
        .filter(|l| !l.is_empty() && !l.contains("=> ") && !l.contains('\x1b'))
        .map(String::from)
        .collect()
}

#[test]
fn edit_mode_ctrl_c_and_too_long() {
    let r = b"\x1b[24;80R";
    assert_eq!(
        edit_lines(r, b"echo no\x03echo yes\r"),
        [ReadLine::Cancelled, line("echo yes")]
    );
    let mut input = Vec::new();
    input.extend(core::iter::repeat_n(b'a', MAX_LINE + 100));
    input.extend(b"\rok\r");
    assert_eq!(edit_lines(r, &input), [ReadLine::TooLong, line("ok")]);
    let mut input = Vec::new();
    input.extend(core::iter::repeat_n(b'a', MAX_LINE));
    input.push(b'\r');
    assert_eq!(edit_lines(r, &input), [line(&"a".repeat(MAX_LINE))]);
}

#[test]
fn edit_mode_survives_hostile_terminal_replies() {
    let replies: [&[u8]; 8] = [
        b"\x1b[0;0R",
        b"\x1b[1;1R",
        b"\x1b[99999;99999R",
        b"\x1b[65535;65535R",
        b"\x1b[R",
        b"\x1b[5R",
        b"\x1b[?1;2R",
        b"garbage",
    ];
    for reply in replies {
        let mut sh = edit_shell(reply);
        sh.platform.idle_budget = 100_000;
        let r = {
            feed(&mut sh, b"echo ok\r");
            sh.read_line()
        };
        assert_eq!(r, line("echo ok"), "reply {reply:?}");
    }
}

#[test]
fn edit_mode_survives_hostile_input() {
    let input: &[u8] = b"\x1b[R\x1b[5R\x1b[0;0R\x1b[99999999999;1R\x1b[?25h\x1b[1;2;3H\
        \xff\xfe\xed\xa0\x80\xc0\x80\xf4\x90\x80\x80\x1b[200~\x1b[D\x1b[D\x1b[D\x1b[D\
        \x1b[C\x1b[999C\x0b\x0c\x0e\x10\x14\x15\x17\x00\x07\x09echo ok\r";
    let lines = edit_lines(b"\x1b[24;80R", input);
    assert_eq!(lines, [line("echo ok")]);
}

#[test]
fn edit_mode_falls_back_when_terminal_goes_away() {
    let mut sh = shell();
    sh.set_line_mode(LineMode::Edit);
    sh.platform.idle_budget = 1_000_000;
    feed(&mut sh, b"echo a\recho b\r");
    assert_eq!(sh.read_line(), line("echo a"));
    // The handshake timed out: the next lines are read in dumb mode.
    assert_eq!(sh.line_mode(), LineMode::Dumb);
    assert_eq!(sh.read_line(), line("echo b"));
}

#[test]
fn edit_mode_keeps_type_ahead_during_handshake() {
    // Lines arrive before the terminal's replies: they are held until the
    // handshake completes and then edited normally.
    let lines = edit_lines(b"\x1b[30;100R", b"echo 1\recho 2\recho 3\r");
    assert_eq!(lines, [line("echo 1"), line("echo 2"), line("echo 3")]);
}

#[test]
fn esc_parser_events() {
    let mut p = EscParser::new();
    let mut evs = Vec::new();
    for &b in b"a\x1b[12;34R\x1b[A\x1bOH\x1b[3~\x1b[?1h\x1b[1;2;3m\x1b[\x03\x80\x1b\x1bx" {
        evs.extend(p.feed(b));
    }
    assert_eq!(
        evs,
        [
            Event::Key(b'a'),
            Event::Csi {
                fin: b'R',
                n: 2,
                p: [12, 34]
            },
            Event::Csi {
                fin: b'A',
                n: 0,
                p: [0, 0]
            },
            Event::Ss3(b'H'),
            Event::Csi {
                fin: b'~',
                n: 1,
                p: [3, 0]
            },
            Event::Key(0x03),
            Event::Key(b'x'),
        ]
    );
    // Over-long sequences are dropped and parsing resumes.
    let mut p = EscParser::new();
    let mut evs = Vec::new();
    let mut long = b"\x1b[".to_vec();
    long.extend(core::iter::repeat_n(b'1', 100));
    long.extend(b"kz");
    for &b in &long {
        evs.extend(p.feed(b));
    }
    assert_eq!(evs, [Event::Key(b'z')]);
}

#[test]
fn default_write_bytes_replaces_invalid_utf8() {
    struct W(String);
    impl crate::Platform for W {
        fn write_str(&mut self, s: &str) {
            self.0.push_str(s);
        }
        fn read_byte(&mut self) -> Option<u8> {
            None
        }
        fn now_us(&self) -> u64 {
            0
        }
        fn mem_check(&self, _: u64, _: u64, _: bool) -> Result<(), String> {
            Err("no".into())
        }
        fn mem_read(&self, _: u64, _: &mut [u8]) {}
        fn mem_write(&mut self, _: u64, _: &[u8]) {}
        fn reset(&mut self) {}
        fn poweroff(&mut self) {}
        fn version(&self) -> String {
            String::new()
        }
    }
    let mut w = W(String::new());
    crate::Platform::write_bytes(&mut w, b"a\xffb\xe2\x82c\xe2\x82");
    assert_eq!(w.0, "a?b?c?");
}

#[test]
fn continuation_lines_at_the_prompt() {
    // An unfinished for/if/while reads more lines with U-Boot's "> ".
    let mut sh = shell();
    let out = session(&mut sh, b"for i in a b\ndo\necho $i\ndone\necho after\n");
    assert_eq!(
        out,
        "=> for i in a b\n> do\n> echo $i\n> done\na\nb\n=> echo after\nafter\n=> \n"
    );
    let cases: &[(&[u8], &[&str])] = &[
        (b"if true\nthen\n echo yes\nfi\n", &["yes"]),
        (b"while false\ndo echo no\ndone; echo w\n", &["w"]),
        (b"echo 'a\nb'\n", &["a", "b"]),
        (b"echo \"x\n\"y\n", &["x", "y"]),
        (b"echo a\\\nb\n", &["ab"]),
        (b"true &&\necho and\n", &["and"]),
        (b"false ||\n\necho or\n", &["or"]),
        (
            b"echo ${a\n}\n",
            &["syntax error: bad substitution '${a\\n}'"],
        ),
        // A complete line with a syntax error is not continued.
        (
            b"echo a |\necho b\n",
            &["syntax error: '|' (pipes) is not supported", "b"],
        ),
        (b"done\n", &["syntax error: unexpected 'done'"]),
    ];
    for (input, want) in cases {
        let mut sh = shell();
        let out = session(&mut sh, input);
        let got: Vec<String> = out
            .lines()
            .filter(|l| !l.starts_with("=> ") && !l.starts_with("> ") && !l.is_empty())
            .map(String::from)
            .collect();
        assert_eq!(
            got,
            *want,
            "{:?} -> {out:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn ctrl_c_at_a_continuation_prompt_drops_the_command() {
    let mut sh = shell();
    let out = session(&mut sh, b"for i in 1 2\ndo echo $i\x03echo ok\n");
    assert_eq!(
        out,
        "=> for i in 1 2\n> do echo $i<INTERRUPT>\n=> echo ok\nok\n=> \n"
    );
}

#[test]
fn continuation_is_bounded() {
    // An endless `if` typed line after line ends at MAX_COMMAND_TEXT.
    let mut sh = shell();
    let mut input = b"if true\n".to_vec();
    for _ in 0..(crate::MAX_COMMAND_TEXT / 20 + 2) {
        input.extend_from_slice(b"echo 12345678901234\n");
    }
    input.extend_from_slice(b"echo next\n");
    let out = session(&mut sh, &input);
    assert!(
        out.contains(&format!(
            "command too long (max {} bytes over all its lines)\n=> ",
            crate::MAX_COMMAND_TEXT
        )),
        "{}",
        &out[out.len().saturating_sub(400)..]
    );
    // Nothing of it ran; the shell goes on (the rest are new commands).
    assert!(!out.contains("\n12345678901234\n> "));
    assert!(out.ends_with("next\n=> \n"));
}

#[test]
fn continuation_in_edit_mode() {
    let mut sh = edit_shell(b"\x1b[24;80R");
    let out = session(&mut sh, b"for i in x y; do\recho -$i-\rdone\r");
    assert!(out.contains("> "), "{out:?}");
    assert_eq!(
        outputs_edit(&out)
            .iter()
            .filter(|l| l.starts_with('-'))
            .count(),
        2,
        "{out:?}"
    );
    assert!(out.contains("-x-") && out.contains("-y-"));
}
