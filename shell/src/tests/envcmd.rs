//! `env` subcommands, `env import` / `env export` byte formats (checked
//! against Debian's U-Boot 2023.01) and bad input.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{peek, poke, run, shell, Fake, MEM_BASE};
use crate::{Env, Shell};

fn env_of(sh: &Shell<Fake>) -> Vec<(String, String)> {
    sh.env.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

#[test]
fn export_text_format() {
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, &[0xee; 64]);
    run(&mut sh, "setenv x abab");
    sh.env.set("w", "this <\\a\\is> test").unwrap();
    assert_eq!(run(&mut sh, "env export -t 40000000 x w"), "");
    // As U-Boot 2023.01: sorted, `\` escaped, NUL-terminated, filesize in
    // upper-case hex counting the NUL.
    let want = b"w=this <\\\\a\\\\is> test\nx=abab\n\0";
    assert_eq!(
        peek(&sh, MEM_BASE, want.len() + 1),
        [&want[..], &[0xee]].concat()
    );
    assert_eq!(sh.env.get("filesize"), Some("1E"));
    // Newlines in values are escaped too; the default format is text.
    let mut sh = shell();
    sh.env.set("m", "a\nb").unwrap();
    run(&mut sh, "env export 40000000 m");
    assert_eq!(peek(&sh, MEM_BASE, 7), b"m=a\\\nb\n");
    // -s: the buffer is zero-padded and filesize is its size.
    poke(&mut sh, MEM_BASE, &[0xee; 0x20]);
    run(&mut sh, "env export -t -s 10 40000000 m");
    assert_eq!(
        peek(&sh, MEM_BASE, 0x11),
        b"m=a\\\nb\n\0\0\0\0\0\0\0\0\0\xee"
    );
    assert_eq!(sh.env.get("filesize"), Some("10"));
    // Too small: U-Boot's two lines, nothing written.
    poke(&mut sh, MEM_BASE, &[0xee; 0x20]);
    assert_eq!(
        run(&mut sh, "env export -t -s 4 40000000 m; echo $?"),
        "Env export buffer too small: 4, but need 8\n## Error: Cannot export environment: errno = 12\n1\n"
    );
    assert_eq!(peek(&sh, MEM_BASE, 4), [0xee; 4]);
    // Names that do not exist are skipped; none left: just the NUL.
    run(&mut sh, "env export -t -s 100 40000000 nothere");
    assert_eq!(sh.env.get("filesize"), Some("100"));
    assert_eq!(peek(&sh, MEM_BASE, 1), [0]);
}

#[test]
fn export_binary_and_checksum_formats() {
    let mut sh = shell();
    run(&mut sh, "setenv x abab; setenv w 'this is'");
    poke(&mut sh, MEM_BASE, &[0xee; 0x40000]);
    run(&mut sh, "env export -b 40000000 x w");
    // NUL-separated, no escaping, padded with zeros to the 0x3fffc data
    // bytes of U-Boot's 256 KiB block; filesize 40000 (U-Boot's value).
    let data = b"w=this is\0x=abab\0\0";
    assert_eq!(peek(&sh, MEM_BASE, data.len()), data);
    assert!(
        peek(&sh, MEM_BASE + data.len() as u64, 0x3fffc - data.len())
            .iter()
            .all(|&b| b == 0)
    );
    assert_eq!(peek(&sh, MEM_BASE + 0x3fffc, 1), [0xee]);
    assert_eq!(sh.env.get("filesize"), Some("40000"));

    poke(&mut sh, MEM_BASE, &[0xee; 0x40000]);
    run(&mut sh, "env export -c 40000000 x w");
    let mut block = alloc::vec![0u8; 0x3fffc];
    block[..data.len() - 1].copy_from_slice(&data[..data.len() - 1]);
    let crc = crc32fast::hash(&block);
    assert_eq!(peek(&sh, MEM_BASE, 4), crc.to_le_bytes());
    assert_eq!(peek(&sh, MEM_BASE + 4, 0x3fffc), block);
    assert_eq!(sh.env.get("filesize"), Some("40000"));
    // The same crc as U-Boot wrote for this pair (seen on 2023.01 with
    // the value 'this <\\a\\is> test' for w: 0x34e18507) is checked in the
    // QEMU comparison test; here the block must re-import.
    let before = env_of(&sh);
    run(&mut sh, "setenv x; setenv w");
    assert_eq!(run(&mut sh, "env import -c 40000000 40000"), "");
    assert_eq!(env_of(&sh), before);

    // -c with -s: a block of that size (crc over size - 4).
    poke(&mut sh, MEM_BASE, &[0xee; 0x200]);
    run(&mut sh, "env export -c -s 100 40000000 x");
    let mut small = alloc::vec![0u8; 0xfc];
    small[..7].copy_from_slice(b"x=abab\0");
    assert_eq!(
        peek(&sh, MEM_BASE, 4),
        crc32fast::hash(&small).to_le_bytes()
    );
    assert_eq!(peek(&sh, MEM_BASE + 0x100, 1), [0xee]);
    assert_eq!(sh.env.get("filesize"), Some("100"));
    // Formats exclude each other.
    assert_eq!(
        run(&mut sh, "env export -t -b 40000000"),
        "## Error: export: only one of \"-b\", \"-c\" or \"-t\" allowed\n"
    );
    assert_eq!(
        run(&mut sh, "env export -x 40000000"),
        format!("Usage: {}\n", sh.find_command("env").unwrap().usage)
    );
    assert_eq!(
        run(&mut sh, "env export 0"),
        "env export: 0x0..0x1f is not RAM\n"
    );
}

#[test]
fn import_text() {
    let mut sh = shell();
    run(&mut sh, "setenv keep 1; setenv gone 2");
    let text = b"# armbianEnv.txt style\n  verbosity=1\n\noverlay_prefix=sun8i-h3\noverlays=usbhost2 usbhost3\nrootdev=UUID=1234-abcd\nmulti=a\\\nb\ngone\nempty=\nbs=a\\\\b\\q\n\0";
    poke(&mut sh, MEM_BASE, text);
    let out = run(&mut sh, "env import -t 40000000");
    assert_eq!(
        out,
        format!("## Info: input data size = {0} = 0x{0:X}\n", text.len())
    );
    assert_eq!(sh.env.get("verbosity"), Some("1"));
    assert_eq!(sh.env.get("overlays"), Some("usbhost2 usbhost3"));
    assert_eq!(sh.env.get("rootdev"), Some("UUID=1234-abcd"));
    assert_eq!(sh.env.get("multi"), Some("a\nb"));
    assert_eq!(sh.env.get("bs"), Some("a\\bq"));
    assert_eq!(sh.env.get("gone"), None);
    assert_eq!(sh.env.get("keep"), Some("1"));
    // With a size (Armbian: `env import -t ${load_addr} ${filesize}`),
    // a file without the final NUL.
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, b"a=1\nb=2\nXXXXX");
    run(&mut sh, "env import -t 40000000 8");
    assert_eq!(sh.env.get("a"), Some("1"));
    assert_eq!(sh.env.get("b"), Some("2"));
    assert_eq!(sh.env.len(), 2);
    // CRLF: kept without -r (as U-Boot), dropped with -r.
    poke(&mut sh, MEM_BASE, b"c=3\r\nd=4\r\n\0");
    run(&mut sh, "env import -t 40000000 -");
    assert_eq!(sh.env.get("c"), Some("3\r"));
    run(&mut sh, "env import -t -r 40000000 -");
    assert_eq!(sh.env.get("c"), Some("3"));
    assert_eq!(sh.env.get("d"), Some("4"));
    // -d: the imported data replaces the environment.
    poke(&mut sh, MEM_BASE, b"only=this\n\0");
    run(&mut sh, "env import -d -t 40000000");
    assert_eq!(env_of(&sh), [("only".into(), "this".into())]);
}

#[test]
fn import_binary() {
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, b"a=1\0b=x y\0\0");
    assert_eq!(
        run(&mut sh, "env import -b 40000000"),
        "## Info: input data size = 11 = 0xB\n"
    );
    assert_eq!(sh.env.get("a"), Some("1"));
    assert_eq!(sh.env.get("b"), Some("x y"));
    // Export -b / import -b round trip (U-Boot un-escapes `\` on import
    // even in binary data; a value without `\` survives).
    assert_eq!(
        run(
            &mut sh,
            "setenv c 'v=w'; env export -b -s 100 40001000 a b c; env delete a b c"
        ),
        ""
    );
    assert_eq!(sh.env.get("filesize"), Some("100"));
    assert_eq!(peek(&sh, MEM_BASE + 0x1000, 18), b"a=1\0b=x y\0c=v=w\0\0\0");
    run(&mut sh, "env import -b 40001000");
    assert_eq!(sh.env.get("c"), Some("v=w"));
    assert_eq!(sh.env.get("b"), Some("x y"));
}

/// Garbage of every kind: one line, and the environment exactly as it was.
#[test]
fn import_garbage_changes_nothing() {
    let cases: &[(&[u8], &str, &str)] = &[
        (
            b"ok=1\n\xff\xfe\x00\x01\x02=3\n\0",
            "-t 40000000",
            "## Error: Environment import failed: line 2: variable name is not text; nothing imported\n",
        ),
        (
            b"ok=1\nbad name=2\n\0",
            "-t 40000000",
            "## Error: Environment import failed: line 2: invalid variable name \"bad name\"; nothing imported\n",
        ),
        (
            b"ok=1\n=novalue\n\0",
            "-t 40000000",
            "## Error: Environment import failed: line 2: empty variable name; nothing imported\n",
        ),
        (
            b"ok=1\nv=\x01\x02\n\0",
            "-t 40000000",
            "## Error: Environment import failed: line 2: value of \"v\" is not text (control character 0x01); nothing imported\n",
        ),
        (
            b"ok=1\nv=\xc3\x28\n\0",
            "-t 40000000",
            "## Error: Environment import failed: line 2: value of \"v\" is not text (not UTF-8); nothing imported\n",
        ),
        (
            b"\x7fELF\x02\x01\x01\0\0\0",
            "-t 40000000 10",
            "## Error: Environment import failed: line 1: invalid variable name \"\\u{7f}ELF\\u{2}\\u{1}\\u{1}\"; nothing imported\n",
        ),
        (
            b"ok=1\0x y=2\0\0",
            "-b 40000000",
            "## Error: Environment import failed: entry 2: invalid variable name \"x y\"; nothing imported\n",
        ),
    ];
    for (data, args, want) in cases {
        let mut sh = shell();
        run(
            &mut sh,
            "setenv bootcmd 'run x'; setenv ok 0; setenv v keep",
        );
        let before = env_of(&sh);
        poke(&mut sh, MEM_BASE, data);
        let out = run(&mut sh, &format!("env import -d {args}"));
        let out = out
            .lines()
            .filter(|l| !l.starts_with("## Info"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(format!("{out}\n"), *want, "{args} {data:?}");
        assert_eq!(sh.last_status(), 1);
        assert_eq!(env_of(&sh), before, "{args} {data:?}");
    }
    // Checksums, sizes and unreadable memory.
    let mut sh = shell();
    run(&mut sh, "setenv keep 1");
    let before = env_of(&sh);
    poke(&mut sh, MEM_BASE, b"\0\0\0\0a=1\0\0");
    let errors = [
        (
            "env import -c 40000000 10",
            "## Error: bad CRC, import failed\n",
        ),
        ("env import -c 40000000 4", "## Error: Invalid size 0x4\n"),
        ("env import -t 0 10", "env import: 0x0..0x10 is not RAM\n"),
        (
            "env import -t 40000000 200000",
            "## Error: Environment import failed: size 0x200000 is too big (max 0x100000)\n",
        ),
        (
            "env import -b -t 40000000",
            "## import: only one of \"-b\", \"-c\" or \"-t\" allowed\n",
        ),
        (
            "env import -t",
            &format!("Usage: {}\n", sh.find_command("env").unwrap().usage),
        ),
    ];
    for (cmd, want) in errors {
        assert_eq!(run(&mut sh, cmd), want, "{cmd}");
        assert_eq!(sh.last_status(), 1);
        assert_eq!(env_of(&sh), before, "{cmd}");
    }
    // No terminator before the end of RAM: refused.
    let mut sh = shell();
    poke(&mut sh, MEM_BASE + 0x3f000, &[b'x'; 0x1000]);
    assert_eq!(
        run(&mut sh, "env import -t 4003f000"),
        "## Error: env import: no end of data (separator + NUL) before unreadable memory at 0x40040000; give the size\n"
    );
}

#[test]
fn import_size_scan_matches_u_boot() {
    // All zeros: no "\n\0" in 1 MiB. U-Boot warns, and imports nothing.
    // (The fake RAM is 256 KiB, so use a bigger platform view: the text
    // scan stops at unreadable memory instead.)
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, b"a=1\nb=2\n\0");
    assert_eq!(
        run(&mut sh, "env import 40000000 -"),
        "## Warning: defaulting to text format\n## Info: input data size = 9 = 0x9\n"
    );
    assert_eq!(sh.env.get("b"), Some("2"));
}

#[test]
fn import_var_list() {
    let mut sh = shell();
    poke(&mut sh, MEM_BASE, b"a=1\nb=2\nc=3\na=9\n\0");
    run(&mut sh, "setenv d 4");
    run(&mut sh, "env import -t 40000000 - a c");
    // Only the listed names, each from its first entry.
    assert_eq!(sh.env.get("a"), Some("1"));
    assert_eq!(sh.env.get("b"), None);
    assert_eq!(sh.env.get("c"), Some("3"));
    assert_eq!(sh.env.get("d"), Some("4"));
    // -d with names: a listed name missing from the data is deleted.
    let out = run(&mut sh, "env import -d -t 40000000 - d zz");
    assert_eq!(
        out,
        "## Info: input data size = 17 = 0x11\nWARNING: 'd' not in imported env, deleting it!\nWARNING: 'zz' neither in running nor in imported env!\n"
    );
    assert_eq!(sh.env.get("d"), None);
    assert_eq!(sh.env.get("a"), Some("1"));
}

#[test]
fn env_subcommands() {
    let mut sh = shell();
    assert_eq!(run(&mut sh, "env set a 1 2; env print a"), "a=1 2\n");
    assert_eq!(run(&mut sh, "env set -f b x; printenv b"), "b=x\n");
    assert_eq!(run(&mut sh, "env exists a; echo $?"), "0\n");
    assert_eq!(run(&mut sh, "env exists nope; echo $?"), "1\n");
    assert_eq!(run(&mut sh, "env delete a; echo $?"), "0\n");
    assert_eq!(run(&mut sh, "env delete a; echo $?"), "1\n");
    assert_eq!(run(&mut sh, "env delete -f b nope; echo $?"), "1\n");
    assert_eq!(sh.env.get("b"), None);
    // Unique prefixes, as U-Boot's find_cmd_tbl.
    assert_eq!(
        run(&mut sh, "env se c 3; env pr c; env exi c; echo $?"),
        "c=3\n0\n"
    );
    let usage = format!("Usage: {}\n", sh.find_command("env").unwrap().usage);
    assert_eq!(run(&mut sh, "env d c"), usage);
    assert_eq!(run(&mut sh, "env"), usage);
    assert_eq!(run(&mut sh, "env frob"), usage);
    assert_eq!(run(&mut sh, "env exists"), usage);
    // env run
    run(&mut sh, "setenv s 'echo ran'");
    assert_eq!(run(&mut sh, "env run s"), "ran\n");
    // env save without a saveenv command.
    assert_eq!(
        run(&mut sh, "env save"),
        "env save: this platform has no saveenv\n"
    );
    // printenv -a shows names starting with '.', plain printenv does not.
    sh.env.clear();
    run(&mut sh, "setenv .hidden 1; setenv v 2");
    assert_eq!(
        run(&mut sh, "printenv"),
        "v=2\n\nEnvironment size: 5/262140 bytes\n"
    );
    assert_eq!(
        run(&mut sh, "printenv -a"),
        ".hidden=1\nv=2\n\nEnvironment size: 15/262140 bytes\n"
    );
    assert_eq!(run(&mut sh, "printenv .hidden"), ".hidden=1\n");
    // Values with newlines and backslashes are escaped by printenv (all),
    // printed raw by printenv name.
    sh.env.clear();
    sh.env.set("m", "a\nb\\").unwrap();
    assert_eq!(
        run(&mut sh, "printenv"),
        "m=a\\\nb\\\\\n\nEnvironment size: 10/262140 bytes\n"
    );
    assert_eq!(run(&mut sh, "printenv m"), "m=a\nb\\\n");
}

#[test]
fn env_default() {
    let mut sh = shell();
    sh.default_env = Env::from_text("bootdelay=2\nbootcmd=bootscript\n").unwrap();
    run(
        &mut sh,
        "setenv bootdelay 0; setenv mine 1; setenv bootcmd; setenv other 2",
    );
    run(&mut sh, "env default bootcmd mine nope");
    assert_eq!(sh.env.get("bootcmd"), Some("bootscript"));
    assert_eq!(sh.env.get("bootdelay"), Some("0"));
    assert_eq!(sh.env.get("mine"), None);
    assert_eq!(sh.env.get("other"), Some("2"));
    assert_eq!(
        run(&mut sh, "env default -f -a"),
        "## Resetting to default environment\n"
    );
    assert_eq!(sh.env, sh.default_env);
    let usage = format!("Usage: {}\n", sh.find_command("env").unwrap().usage);
    assert_eq!(run(&mut sh, "env default"), usage);
    assert_eq!(run(&mut sh, "env default -a x"), usage);
    assert_eq!(run(&mut sh, "env default -q x"), usage);
}

#[test]
fn env_default_messages() {
    let mut sh = shell();
    run(&mut sh, "setenv mine 1");
    assert_eq!(
        run(&mut sh, "env default mine nope"),
        "WARNING: 'mine' not in imported env, deleting it!\nWARNING: 'nope' neither in running nor in imported env!\n"
    );
}
