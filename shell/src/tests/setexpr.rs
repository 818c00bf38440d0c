//! `setexpr` and the SLRE regex port. The expected outputs of
//! `u_boot_regex_answers` were taken from Debian's U-Boot 2023.01 in QEMU
//! (the same commands typed at its prompt).

use alloc::format;
use alloc::string::String;

use super::{poke, run, shell, MEM_BASE};
use crate::slre::{Regex, MAX_STEPS};

#[test]
fn u_boot_regex_answers() {
    let cases: &[(&str, &str)] = &[
        ("setexpr x sub 'a+' Z 'caaat'", "x=cZt\n"),
        ("setexpr x gsub 'a' Z 'banana'", "x=bZnZnZ\n"),
        ("setexpr x sub '^b' Z 'bab'", "x=Zab\n"),
        ("setexpr x gsub '^b' Z 'bbab'", "x=ZZab\n"),
        ("setexpr x sub 'n$' Z 'nan'", "x=Zan\n"),
        // No ranges in sets: [0-9] is '0', '-', '9'.
        ("setexpr x sub '[0-9]+' N 'v10-2'", "x=v1N2\n"),
        ("setexpr x sub '[a-c]+' N 'x-b-ya'", "x=xNb-ya\n"),
        ("setexpr x sub '(ab|cd)+' Q 'xxcdabcdy'", "x=xxQy\n"),
        ("setexpr x sub 'a.c' Q 'xabcx'", "x=xQx\n"),
        ("setexpr x sub 'a*?b' Q 'aaab'", "x=Q\n"),
        ("setexpr x sub 'x?y' Q 'ay'", "x=aQ\n"),
        // Backrefs stop at the first empty capture.
        ("setexpr x sub '(a)(b)?c' '<\\2\\1>' 'zacz'", "x=z<\\2a>z\n"),
        ("setexpr x sub '[^abc]' Q 'abcd'", "x=abcQ\n"),
        ("setexpr x sub 'a|b|c' Q 'zzc'", "x=zzQ\n"),
        // The first occurrence of the matched text is replaced.
        ("setexpr x sub 'b$' Z 'abab'", "x=aZab\n"),
        ("setexpr x sub 'ab*' Q 'xabbby'", "x=xQy\n"),
        ("setexpr x gsub '[.]' _ 'a.b.c'", "x=a_b_c\n"),
        ("setexpr x sub \\\\. _ 'a.b'", "x=a_b\n"),
        ("setexpr x sub \\\\d+ N 'ab123cd'", "x=abNcd\n"),
        ("setexpr x gsub \\\\s _ 'a b c'", "x=a_b_c\n"),
        ("setexpr x sub \\\\S+ W '  hello world'", "x=  W world\n"),
        ("setexpr x sub 'a{2}' Q 'aa{2}'", "x=aQ\n"),
        (
            "setexpr x sub '(' Q 'a'",
            "Error compiling regex: No closing bracket\n",
        ),
        (
            "setexpr x sub '[ab' Q 'a'",
            "Error compiling regex: No closing ']' bracket\n",
        ),
        // An empty string is never searched (unanchored).
        ("setexpr x sub 'a+' Q ''", ": No match\n"),
        (
            "setexpr x sub 'root=[^ ]*' 'root=/dev/sda2' 'console=ttyS0 root=/dev/mmcblk0p1 rw'",
            "x=console=ttyS0 root=/dev/sda2 rw\n",
        ),
        (
            "setexpr x gsub (\\\\d+)\\\\.(\\\\d+) \\\\2.\\\\1 'v1.2 and 3.4'",
            "x=v2.1 and 4.3\n",
        ),
        ("setexpr x sub '.*' 'all' 'abc'", "x=all\n"),
        ("setexpr x sub 'ab+?' Q 'abbb'", "x=Qb\n"),
        ("setexpr x sub '^$' Q ''", "x=Q\n"),
        (
            "setexpr x gsub 'is' 'IS' 'this is his list'",
            "x=thIS IS hIS lISt\n",
        ),
        // SLRE 1.0: \s in a set is not a class.
        ("setexpr x sub [\\\\s] Q 'a b'", "a b: No match\n"),
        ("setexpr x sub 'ab|' Q 'xyz'", "x=Qxyz\n"),
        ("setexpr x sub '|ab' Q 'xyz'", "x=Qxyz\n"),
        ("setexpr x sub 'c(d)?' [\\\\1] 'abcd'", "x=ab[d]\n"),
        ("setexpr x gsub 'o' '0' 'foo boo'", "x=f00 b00\n"),
        ("setexpr x sub '$' END 'abc'", "abc: No match\n"),
        ("setexpr x sub '^' BEG 'abc'", "x=BEGabc\n"),
        ("setexpr x sub 'b*' Q 'abc'", "x=Qabc\n"),
        ("setexpr x gsub 'b' '' 'abcb'", "x=ac\n"),
        // An empty result deletes the variable.
        ("setexpr x gsub 'b' '' 'bbb'", "x=\n"),
        // Inserting at every empty match fills U-Boot's 16 KiB buffer.
        (
            "setexpr x gsub 'x*' - 'abc'",
            "## error: substitution buffer overflow\n",
        ),
    ];
    for (cmd, want) in cases {
        let mut sh = shell();
        sh.env.set("x", "old").unwrap();
        let out = run(&mut sh, cmd);
        assert_eq!(out, *want, "{cmd}");
        let ok = want.starts_with("x=");
        assert_eq!(sh.last_status(), u8::from(!ok), "{cmd}");
        if ok {
            let v = want.trim_start_matches("x=").trim_end();
            assert_eq!(sh.env.get("x"), (!v.is_empty()).then_some(v), "{cmd}");
        } else {
            assert_eq!(sh.env.get("x"), Some("old"), "{cmd}");
        }
    }
}

#[test]
fn sub_uses_the_variable_when_no_string_is_given() {
    let mut sh = shell();
    run(&mut sh, "setenv x 'v2.1 and 4.3'");
    assert_eq!(
        run(&mut sh, "setexpr x sub 'T' U"),
        "v2.1 and 4.3: No match\n"
    );
    assert_eq!(
        run(&mut sh, "setenv y; setexpr y sub a b"),
        "## Error: variable \"y\" not defined\n"
    );
    // Only the environment counts, not a local variable.
    assert_eq!(
        run(&mut sh, "z=abc; setexpr z sub a b"),
        "## Error: variable \"z\" not defined\n"
    );
    // Distribution-style use: strip a prefix from fdtfile.
    run(&mut sh, "setenv fdtfile ti/omap/am57xx-beagle-x15.dtb");
    run(&mut sh, "setexpr name_fit_config gsub / _ conf-${fdtfile}");
    assert_eq!(
        sh.env.get("name_fit_config"),
        Some("conf-ti_omap_am57xx-beagle-x15.dtb")
    );
}

#[test]
fn runaway_patterns_end_with_an_error() {
    // These hang U-Boot; here they stop with one line and change nothing.
    let long = "a".repeat(2000);
    let cases = [
        format!("setexpr x sub '(a*)*' Q {long}"),
        "setexpr x sub 'a**' Q 'b'".into(),
        "setexpr x sub '*' Q 'b'".into(),
        format!("setexpr x sub 'a*a*a*a*a*a*a*a*b' Q {long}"),
    ];
    for cmd in &cases {
        let mut sh = shell();
        sh.env.set("x", "old").unwrap();
        let t = std::time::Instant::now();
        let out = run(&mut sh, cmd);
        assert!(
            out == format!("setexpr: regex needs too much work (more than {MAX_STEPS} steps)\n")
                || out.starts_with("setexpr: regex too complex"),
            "{cmd}: {out}"
        );
        assert_eq!(sh.env.get("x"), Some("old"));
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "{cmd}");
    }
    // Empty match, empty replacement: U-Boot loops forever.
    let mut sh = shell();
    assert_eq!(
        run(&mut sh, "setexpr x gsub 'y*' '' abc"),
        "setexpr: the regex matches an empty string: gsub would never end\n"
    );
    // A stray `)` (U-Boot's compiler loops on it).
    assert_eq!(
        run(&mut sh, "setexpr x sub ')' Q abc"),
        "Error compiling regex: Unbalanced brackets\n"
    );
    // Deep brackets and long patterns hit SLRE's limits.
    let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
    assert!(run(&mut sh, &format!("setexpr x sub '{deep}' Q a"))
        .starts_with("Error compiling regex: RE is too long"));
    let wide = "a|".repeat(300);
    assert!(
        run(&mut sh, &format!("setexpr x sub '{wide}' Q a")).starts_with("Error compiling regex: ")
    );
}

extern crate std;

#[test]
fn slre_compile_and_match() {
    let m = |re: &str, s: &str| Regex::compile(re).unwrap().is_match(s.as_bytes()).unwrap();
    assert!(m("^abc$", "abc"));
    assert!(!m("^abc$", "abcd"));
    assert!(m("a\\d+b", "xa12b"));
    assert!(m("[abc]x", "cx"));
    assert!(m("\\ttab", "a\ttab"));
    assert!(m("x|y", "y"));
    assert!(!m("x+", ""));
    assert!(m("^$", ""));
    assert_eq!(Regex::compile("[").unwrap_err(), "No closing ']' bracket");
    assert_eq!(Regex::compile("(a").unwrap_err(), "No closing bracket");
    // A NUL ends the pattern, as in C.
    assert!(m("ab\0zzz", "xab"));
}

#[test]
fn setexpr_arithmetic_and_errors() {
    let mut sh = shell();
    let cases = [
        ("setexpr y 5 / 0", "0"),
        ("setexpr y 5 % 0", "5"),
        ("setexpr y 10 - 20", "fffffffffffffff0"),
        ("setexpr.b y 1ff", "1ff"),
        ("setexpr y 0x10 + 0x10", "20"),
        ("setexpr y zz + 1", "1"),
        ("setexpr y 12g", "12"),
        ("setexpr y ffffffffffffffff * 2", "fffffffffffffffe"),
        ("setexpr y 1 \"&\" 3", "1"),
        ("setexpr y 6 ^ 3", "5"),
    ];
    for (cmd, want) in cases {
        assert_eq!(run(&mut sh, cmd), "", "{cmd}");
        assert_eq!(sh.env.get("y"), Some(want), "{cmd}");
    }
    let usage = "Usage: setexpr[.b|.w|.l|.q|.s] name [*]value1 <op> [*]value2 | \
                 setexpr[.b|.w|.l|.q|.s] name [*]value | setexpr name gsub|sub r s [t]\n";
    for cmd in [
        "setexpr",
        "setexpr y",
        "setexpr y 1 +",
        "setexpr y 1 ++ 2",
        "setexpr y 1 + 2 3",
        "setexpr y 1 2 3 4 5 6",
    ] {
        sh.env.set("y", "keep").unwrap();
        assert_eq!(run(&mut sh, cmd), usage, "{cmd}");
        assert_eq!(sh.env.get("y"), Some("keep"), "{cmd}");
    }
    assert_eq!(run(&mut sh, "setexpr y 1 x 2"), "invalid op\n");
    assert_eq!(
        run(&mut sh, "setexpr y *0"),
        "setexpr: 0x0..0x4 is not RAM\n"
    );
    assert_eq!(
        run(&mut sh, "setexpr.q y 1 + *3fffffff"),
        "setexpr: 0x3fffffff..0x40000007 is not RAM\n"
    );
    assert_eq!(
        run(&mut sh, "setexpr 'a b' 1"),
        "## Error: illegal character ' ' in variable name \"a b\"\n"
    );
    assert_eq!(sh.env.get("y"), Some("keep"));
    // An unknown suffix reads 8 bytes, like U-Boot's `ulong`.
    poke(&mut sh, MEM_BASE, &0x1122334455667788u64.to_le_bytes());
    run(&mut sh, "setexpr.z y *40000000");
    assert_eq!(sh.env.get("y"), Some("1122334455667788"));
    // `.s` strings: unterminated at the end of RAM is an error.
    let end = MEM_BASE + super::MEM_SIZE as u64 - 2;
    poke(&mut sh, end, b"zz");
    assert_eq!(
        run(&mut sh, &format!("setexpr.s y *{end:x}")),
        "setexpr: 0x40040000..0x40041000 is not RAM\n"
    );
    // A value too long for U-Boot's buffer.
    let big: String = "b".repeat(16384);
    sh.env.set("big", &big).unwrap();
    assert_eq!(
        run(&mut sh, "setexpr big sub b c"),
        "## error: subst buffer overflow: have 16384, need 16385\n"
    );
    let pat: String = "p".repeat(4095);
    assert_eq!(
        run(&mut sh, &format!("setexpr y sub k {pat} k")),
        "## error: pattern buffer overflow: have 4096, need 4096\n"
    );
}
