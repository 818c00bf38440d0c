//! Environment store, setenv/printenv and the text form.

use super::{run, run1, shell};
use crate::{Env, EnvError};

#[test]
fn set_get_delete() {
    let mut e = Env::new();
    e.set("a", "1").unwrap();
    e.set("b_2.x-y", "two words").unwrap();
    assert_eq!(e.get("a"), Some("1"));
    assert_eq!(e.get("b_2.x-y"), Some("two words"));
    assert_eq!(e.len(), 2);
    e.set("a", "").unwrap();
    assert_eq!(e.get("a"), None);
    assert!(e.remove("b_2.x-y"));
    assert!(!e.remove("b_2.x-y"));
    assert!(e.is_empty());
}

#[test]
fn bad_names() {
    let mut e = Env::new();
    assert_eq!(e.set("", "x"), Err(EnvError::EmptyName));
    assert_eq!(
        e.set("a=b", "x"),
        Err(EnvError::BadName {
            name: "a=b".into(),
            ch: '='
        })
    );
    for bad in ["a b", "é", "a$", "a\n", "{x}", "a/b"] {
        assert!(e.set(bad, "x").is_err(), "{bad:?}");
    }
    assert!(e.is_empty());
}

#[test]
fn setenv_and_printenv() {
    let mut sh = shell();
    assert_eq!(run(&mut sh, "setenv b 2; setenv a  x   y z"), "");
    assert_eq!(sh.env.get("a"), Some("x y z"));
    assert_eq!(
        run(&mut sh, "printenv"),
        "a=x y z\nb=2\n\nEnvironment size: 13/262140 bytes\n"
    );
    assert_eq!(run(&mut sh, "printenv b"), "b=2\n");
    assert_eq!(
        run(&mut sh, "printenv b nope a; echo $?"),
        "b=2\n## Error: \"nope\" not defined\na=x y z\n1\n"
    );
    assert_eq!(
        run(&mut sh, "setenv b; printenv"),
        "a=x y z\n\nEnvironment size: 9/262140 bytes\n"
    );
    assert_eq!(run(&mut sh, "setenv not_there"), "");
    assert_eq!(
        run(&mut sh, "setenv 'a b' 1; echo $?"),
        "## Error: illegal character ' ' in variable name \"a b\"\n1\n"
    );
    assert_eq!(
        run(&mut sh, "setenv '' 1"),
        "## Error: empty variable name\n"
    );
    // An empty environment still reports its size (the final NUL), as
    // U-Boot does.
    assert_eq!(run1("printenv"), "\nEnvironment size: 1/262140 bytes\n");
}

#[test]
fn text_round_trip() {
    let mut e = Env::new();
    e.set("bootcmd", "if true; then\n  echo a\\b\r\nfi")
        .unwrap();
    e.set("x", "=y=").unwrap();
    e.set("spaces", "  a  ").unwrap();
    let text = e.to_text();
    assert_eq!(
        text,
        "bootcmd=if true; then\\n  echo a\\\\b\\r\\nfi\nspaces=  a  \nx==y=\n"
    );
    assert_eq!(Env::from_text(&text).unwrap(), e);
}

#[test]
fn text_parse_comments_blanks_and_errors() {
    let e =
        Env::from_text("# saved env\n\n  \na=1\r\n   # indented comment\nb=\nc=x=y\na=2").unwrap();
    assert_eq!(e.get("a"), Some("2"));
    assert_eq!(e.get("b"), None);
    assert_eq!(e.get("c"), Some("x=y"));

    let err = |t: &str| Env::from_text(t).unwrap_err();
    assert_eq!(
        err("a=1\nnoequals\n"),
        EnvError::Parse {
            line: 2,
            reason: "missing '='".into()
        }
    );
    assert_eq!(
        err("a=1\n\n=3").to_string(),
        "env: line 3: empty variable name"
    );
    assert_eq!(
        err("a b=1").to_string(),
        "env: line 1: invalid variable name \"a b\""
    );
    assert_eq!(err("x=a\\qb").to_string(), "env: line 1: bad escape '\\q'");
    assert_eq!(
        err("\n\nx=a\\").to_string(),
        "env: line 3: backslash at end of line"
    );
    assert_eq!(Env::from_text("").unwrap(), Env::new());
}

extern crate std;
use std::string::ToString;
