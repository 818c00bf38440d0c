//! `cargo xtask bench` options.

#[derive(Debug)]
pub(super) struct Opts {
    pub(super) runs: usize,
    pub(super) build: bool,
    pub(super) prealloc: bool,
    /// `pen_gather` written to parkboot's /parkboot.env (None: the loader's default).
    pub(super) pen_gather: Option<String>,
    /// `cpu_method` written to parkboot's /parkboot.env (None: the loader's default).
    pub(super) cpu_method: Option<String>,
    /// Only these sessions (None: all).
    pub(super) only: Option<Vec<String>>,
}

/// The sessions `--only` can name.
pub(super) const SESSIONS: &[&str] = &[
    "typed",
    "autoboot",
    "raw",
    "raw-smp1",
    "autoboot-smp1",
    "firmware",
    "tftp",
    "idle",
    "memchain",
    "chain",
];

impl Opts {
    /// Whether the session `name` runs.
    pub(super) fn runs(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == name))
    }
}

pub(super) fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let usage =
        "usage: cargo xtask bench [--runs N] [--no-build] [--no-prealloc] [--pen-gather start|boot] [--cpu-method spin-table|psci] [--only SESSION,...]";
    let mut o = Opts {
        runs: 5,
        build: true,
        prealloc: true,
        pen_gather: None,
        cpu_method: None,
        only: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" | "-n" => {
                let v = it.next().ok_or(format!("--runs needs a number; {usage}"))?;
                o.runs = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or(format!("--runs {v:?}: want 1..100; {usage}"))?;
            }
            "--no-build" => o.build = false,
            "--no-prealloc" => o.prealloc = false,
            "--pen-gather" => {
                let v = it
                    .next()
                    .ok_or(format!("--pen-gather needs start or boot; {usage}"))?;
                if v != "start" && v != "boot" {
                    return Err(format!("--pen-gather {v:?}: want start or boot; {usage}"));
                }
                o.pen_gather = Some(v.clone());
            }
            "--cpu-method" => {
                let v = it
                    .next()
                    .ok_or(format!("--cpu-method needs spin-table or psci; {usage}"))?;
                if v != "spin-table" && v != "psci" {
                    return Err(format!(
                        "--cpu-method {v:?}: want spin-table or psci; {usage}"
                    ));
                }
                o.cpu_method = Some(v.clone());
            }
            "--only" => {
                let v = it.next().ok_or(format!(
                    "--only needs sessions ({}); {usage}",
                    SESSIONS.join(",")
                ))?;
                let names: Vec<String> = v.split(',').map(String::from).collect();
                if let Some(bad) = names.iter().find(|n| !SESSIONS.contains(&n.as_str())) {
                    return Err(format!(
                        "--only {bad:?}: want some of {}; {usage}",
                        SESSIONS.join(",")
                    ));
                }
                o.only = Some(names);
            }
            "-h" | "--help" => return Err(usage.into()),
            _ => return Err(format!("unknown argument {a:?}; {usage}")),
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::parse_opts;

    fn parse(args: &[&str]) -> Result<super::Opts, String> {
        parse_opts(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_are_parsed_and_checked() {
        let o = parse(&[]).unwrap();
        assert_eq!((o.runs, o.build, o.prealloc), (5, true, true));
        assert!(o.runs("tftp") && o.runs("typed"));
        assert_eq!((o.pen_gather, o.cpu_method), (None, None));
        let o = parse(&["--only", "tftp,idle"]).unwrap();
        assert!(o.runs("tftp") && o.runs("idle") && !o.runs("typed"));
        let o = parse(&[
            "--runs",
            "2",
            "--no-build",
            "--no-prealloc",
            "--pen-gather",
            "boot",
        ])
        .unwrap();
        assert_eq!((o.runs, o.build, o.prealloc), (2, false, false));
        assert_eq!(o.pen_gather.as_deref(), Some("boot"));
        assert_eq!(
            parse(&["--cpu-method", "psci"])
                .unwrap()
                .cpu_method
                .as_deref(),
            Some("psci")
        );
        assert_eq!(
            parse(&["--only", "firmware,tftp"]).unwrap().only,
            Some(vec!["firmware".to_string(), "tftp".to_string()])
        );
        for bad in [
            &["--only", "kexec"][..],
            &["--runs", "0"],
            &["--runs"],
            &["--pen-gather", "later"],
            &["-x"],
            &["--only", "tftp,nosuch"],
        ] {
            assert!(parse(bad).unwrap_err().contains("usage:"), "{bad:?}");
        }
    }
}
