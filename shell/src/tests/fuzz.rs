//! Deterministic pseudo-random robustness tests: nothing typed or scripted
//! may panic. (Debug builds check arithmetic overflow, so overflow bugs
//! show up here as panics too.)

use alloc::string::String;
use alloc::vec::Vec;

use super::{feed, shell};
use crate::LineMode;

use testkit::Rng;

/// Tokens biased towards the shell's syntax and commands. (`sleep` is left
/// out so that random durations cannot make the test slow.)
const TOKENS: &[&str] = &[
    "echo",
    "echo -n",
    "setenv",
    "printenv",
    "run",
    "test",
    "true",
    "false",
    "help",
    "version",
    "if",
    "then",
    "elif",
    "else",
    "fi",
    "md",
    "md.b",
    "md.q",
    "mw",
    "mw.w",
    "cmp",
    "cmp.b",
    "crc32",
    "a",
    "b",
    "x y",
    "$a",
    "${a}",
    "$b",
    "${b",
    "${}",
    "$?",
    "${?}",
    "$",
    "\"",
    "'",
    "\\",
    ";",
    ";;",
    "&&",
    "||",
    "&",
    "|",
    "\n",
    "\r\n",
    "#",
    "{",
    "}",
    "(",
    ")",
    "<",
    ">",
    "=",
    "!=",
    "-eq",
    "-lt",
    "-n",
    "-z",
    "-a",
    "-o",
    "!",
    "40000000",
    "4000fff0",
    "0x40000010",
    "ffffffffffffffff",
    "10000000000000000",
    "10",
    "100",
    "0",
    "-1",
    "*40000000",
    "*0",
    "r",
    "run r",
    "setenv r 'run r'",
    "if true; then",
    "fi;",
    "for",
    "in",
    "do",
    "done",
    "while",
    "until",
    "for i in a b; do",
    "while true; do",
    "done;",
    "break",
    "continue 2",
    "exit",
    "exit 3",
    "x=1",
    "a=$a$a",
    "${a:-b}",
    "${a:=x}",
    "${a:+y}",
    "showvar",
    "env import -t 40000000",
    "env import -b 40000000 10",
    "env import -c 40000000 100",
    "env export -t 40000000",
    "env export -c -s 100 40000000",
    "env default -a",
    "env delete",
    "setexpr x 1 + 2",
    "setexpr.s x *40000000",
    "setexpr x gsub a bb",
    "setexpr x sub (a*)* y",
    "itest.s",
    "itest 1 -lt 2",
    "test -e virtio 0:1 /x",
    "=~",
    "[",
    "]",
    "é",
    "\t",
    "  ",
];

fn random_line(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.index(12) {
        match rng.index(10) {
            0 => {
                // A random printable or control character.
                let c = char::from(rng.index(128) as u8);
                s.push(c);
            }
            1 => s.push(char::from_u32(rng.next() as u32 % 0x3000).unwrap_or('?')),
            _ => s.push_str(TOKENS[rng.index(TOKENS.len())]),
        }
        if rng.index(3) != 0 {
            s.push(' ');
        }
    }
    s
}

#[test]
fn random_scripts_do_not_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut sh = shell();
    for i in 0..20_000 {
        if i % 200 == 0 {
            sh = shell();
        }
        let line = random_line(&mut rng);
        let _ = sh.run_script(&line);
        sh.platform.out.clear();
        // Occasionally run a variable holding random text.
        if i % 7 == 0 {
            let _ = sh.env.set("v", &random_line(&mut rng));
            let _ = sh.run_script("run v");
            sh.platform.out.clear();
        }
    }
}

#[test]
fn random_multiline_scripts_do_not_panic() {
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        let mut sh = shell();
        let mut script = String::new();
        for _ in 0..rng.index(8) {
            script.push_str(&random_line(&mut rng));
            script.push('\n');
        }
        let _ = sh.run_script(&script);
    }
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| match rng.index(6) {
            0 => rng.next() as u8,
            1 => [0x1b, b'[', b';', b'R', b'\r', b'\n', 0x7f, 0x08, 0x03][rng.index(9)],
            2 => b"0123456789"[rng.index(10)],
            _ => {
                let t = b"echo setenv a 1;$?'\" && || if then fi test md 40000000";
                t[rng.index(t.len())]
            }
        })
        .collect()
}

#[test]
fn random_console_bytes_dumb_mode() {
    let mut rng = Rng(7);
    for _ in 0..300 {
        let mut sh = shell();
        let bytes = random_bytes(&mut rng, 2000);
        feed(&mut sh, &bytes);
        sh.run_prompt_loop();
        assert!(sh.platform.input.is_empty());
    }
}

#[test]
fn random_console_bytes_edit_mode() {
    let mut rng = Rng(99);
    let replies: [&[u8]; 4] = [
        b"\x1b[24;80R",
        b"\x1b[2;20R",
        b"\x1b[0;0R",
        b"\x1b[500;9999R",
    ];
    for i in 0..150 {
        let mut sh = shell();
        sh.platform.cpr_reply = Some(replies[i % replies.len()].to_vec());
        sh.set_line_mode(LineMode::Edit);
        let bytes = random_bytes(&mut rng, 1500);
        feed(&mut sh, &bytes);
        sh.run_prompt_loop();
    }
}

#[test]
fn random_bytes_through_the_probe() {
    let mut rng = Rng(2024);
    for _ in 0..200 {
        let mut sh = shell();
        sh.platform.idle_budget = 50;
        if rng.index(2) == 0 {
            sh.platform.cpr_reply = Some(random_bytes(&mut rng, 8));
        }
        let bytes = random_bytes(&mut rng, 300);
        feed(&mut sh, &bytes);
        let _ = sh.probe_terminal(5);
        sh.run_prompt_loop();
    }
}

/// Line-editing keys, control characters and long runs that wrap lines on
/// tiny terminals: exercises noline's cursor arithmetic (overflow-checked
/// in this debug build).
#[test]
fn random_editing_on_small_terminals() {
    const KEYS: &[&[u8]] = &[
        b"\x1b[A",
        b"\x1b[B",
        b"\x1b[C",
        b"\x1b[D",
        b"\x1b[H",
        b"\x1b[F",
        b"\x1b[3~",
        b"\x1b[1~",
        b"\x1b[4~",
        b"\x1bOA",
        b"\x1bOD",
        b"\x01",
        b"\x02",
        b"\x04",
        b"\x05",
        b"\x06",
        b"\x08",
        b"\x0b",
        b"\x0c",
        b"\x0e",
        b"\x10",
        b"\x14",
        b"\x15",
        b"\x17",
        b"\x7f",
        b"\t",
        b"\x1b",
        b"\x1b[6n",
        b"\x1b[2;2R",
        b"echo",
        b" ",
        b"ab",
        b"\xc3\xa9",
    ];
    let sizes: [&[u8]; 5] = [
        b"\x1b[2;20R",
        b"\x1b[3;21R",
        b"\x1b[1;1R",
        b"\x1b[24;80R",
        b"\x1b[9999;9999R",
    ];
    let mut rng = Rng(0xfeed);
    for i in 0..200 {
        let mut sh = shell();
        sh.platform.cpr_reply = Some(sizes[i % sizes.len()].to_vec());
        sh.set_line_mode(LineMode::Edit);
        let mut input = Vec::new();
        for _ in 0..400 {
            match rng.index(20) {
                0 => input.push(b'\r'),
                1 => input.extend(core::iter::repeat_n(b'x', rng.index(300))),
                _ => input.extend_from_slice(KEYS[rng.index(KEYS.len())]),
            }
        }
        input.push(b'\r');
        feed(&mut sh, &input);
        sh.run_prompt_loop();
        assert!(sh.platform.input.is_empty());
    }
}
