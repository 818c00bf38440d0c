//! The saved environment survives a power cut or a write error at every
//! block of a save (issue 17, item 7): afterwards the newest usable copy is
//! the old environment or the new one — never a mix, never none — and the
//! next save works.
//!
//! The volumes are the drivers' FAT12/16/32 fixtures. A "cut" lets the
//! first `n` blocks of a save reach the disk (a multi-block request is cut
//! inside) and fails every write after that, as a disk that lost power
//! would; the volume is then read again as at the next start.

use drivers::block::{BlockDevice, BlockError, MemDisk};
use drivers::{fs, part};
use loader::envstore::{self, Copy, ENV_FILES};
use shell::Env;

fn gunzip(gz: &[u8]) -> Vec<u8> {
    // The fixtures are plain gzip members without optional header fields.
    assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0], "plain gzip");
    miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).expect("inflate")
}

/// (fixture, partition).
const VOLUMES: [(&str, u32); 3] = [("fat12_superfloppy", 0), ("fat16_mbr", 1), ("fat32_gpt", 1)];

fn fixture(name: &str) -> MemDisk {
    let path = format!(
        "{}/../drivers/tests/fixtures/{name}.img.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    MemDisk::new(gunzip(&std::fs::read(&path).unwrap()))
}

/// An environment whose every value names its generation, `n` variables
/// of about `width` bytes each.
fn generation(g: u32, n: usize, width: usize) -> Env {
    let mut e = Env::new();
    for i in 0..n {
        let v = format!("gen{g:04}-var{i:03}-{}", "x".repeat(width));
        e.set(&format!("v{i:03}"), &v).unwrap();
    }
    e.set("bootcmd", &format!("echo generation {g}")).unwrap();
    e
}

/// What a disk does with writes.
#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// Power lost after this many blocks were written.
    CutAfter(u64),
    /// This write request (1-based) fails; the others work.
    FailRequest(u64),
}

struct FaultyDisk<'a> {
    inner: &'a mut dyn BlockDevice,
    fault: Fault,
    blocks: u64,
    requests: u64,
}

impl<'a> FaultyDisk<'a> {
    fn new(inner: &'a mut dyn BlockDevice, fault: Fault) -> Self {
        Self {
            inner,
            fault,
            blocks: 0,
            requests: 0,
        }
    }
}

impl BlockDevice for FaultyDisk<'_> {
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn num_blocks(&self) -> u64 {
        self.inner.num_blocks()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.inner.read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let bs = self.inner.block_size();
        let n = (buf.len() / bs) as u64;
        self.requests += 1;
        match self.fault {
            Fault::FailRequest(r) if r == self.requests => {
                return Err(BlockError::Device("injected write failure"))
            }
            Fault::CutAfter(limit) if self.blocks + n > limit => {
                let keep = limit.saturating_sub(self.blocks);
                if keep > 0 {
                    self.inner
                        .write_blocks(lba, &buf[..keep as usize * bs])
                        .unwrap();
                }
                self.blocks = self.blocks.max(limit);
                return Err(BlockError::Device("power lost"));
            }
            _ => {}
        }
        self.inner.write_blocks(lba, buf)?;
        self.blocks += n;
        Ok(())
    }
}

/// The environment a start would load (None: the defaults).
fn loaded(d: &mut MemDisk, index: u32) -> (Option<Env>, Vec<String>) {
    let mut p = part::open(d, index).unwrap();
    let l = envstore::load(&mut p, "virtio 0");
    (l.env, l.notes)
}

fn save(
    d: &mut MemDisk,
    index: u32,
    env: &Env,
    fault: Fault,
) -> (Result<envstore::Saved, envstore::SaveError>, u64, u64) {
    let mut p = part::open(d, index).unwrap();
    let mut f = FaultyDisk::new(&mut p, fault);
    let r = envstore::save(&mut f, env);
    (r, f.blocks, f.requests)
}

/// A starting state for one save.
struct Case {
    name: &'static str,
    /// Builds the volume's env files; returns the environment a start loads.
    setup: fn(&mut MemDisk, u32) -> Option<Env>,
    /// The environment saved next.
    next: fn() -> Env,
}

fn plain(d: &mut MemDisk, index: u32, env: &Env) {
    let mut p = part::open(d, index).unwrap();
    fs::write(&mut p, ENV_FILES[0], env.to_text().as_bytes()).unwrap();
}

fn saved_n(d: &mut MemDisk, index: u32, gens: &[u32]) -> Option<Env> {
    let mut last = None;
    for &g in gens {
        let e = generation(g, 40, 60);
        let (r, _, _) = save(d, index, &e, Fault::None);
        r.unwrap();
        last = Some(e);
    }
    last
}

const CASES: [Case; 6] = [
    Case {
        name: "first save on a volume without one",
        setup: |_, _| None,
        next: || generation(1, 40, 60),
    },
    Case {
        name: "plain /parkboot.env from an older parkboot",
        setup: |d, i| {
            let e = generation(0, 40, 60);
            plain(d, i, &e);
            Some(e)
        },
        next: || generation(1, 40, 60),
    },
    Case {
        name: "one saved copy: the second is created",
        setup: |d, i| saved_n(d, i, &[1]),
        next: || generation(2, 40, 60),
    },
    Case {
        name: "two saved copies: the older is overwritten in place",
        setup: |d, i| saved_n(d, i, &[1, 2]),
        next: || generation(3, 40, 60),
    },
    Case {
        name: "two saved copies: the environment outgrows the older one",
        setup: |d, i| saved_n(d, i, &[1, 2]),
        next: || generation(3, 120, 60),
    },
    Case {
        name: "a plain file older than the saved copy is replaced",
        setup: |d, i| {
            plain(d, i, &generation(0, 3, 5));
            let e = generation(1, 40, 60);
            save(d, i, &e, Fault::None).0.unwrap();
            Some(e)
        },
        next: || generation(2, 40, 60),
    },
];

/// After a failed or cut save, the next start loads `old` or `new` exactly,
/// and a save on a working disk then succeeds.
fn check_after(d: &mut MemDisk, index: u32, old: &Option<Env>, new: &Env, tag: &str) -> bool {
    let (got, notes) = loaded(d, index);
    let is_new = got.as_ref() == Some(new);
    assert!(
        is_new || got == *old,
        "{tag}: loaded neither the old nor the new environment: {notes:?}\n{got:?}"
    );
    for n in &notes {
        assert!(!n.contains('\n'), "{tag}: {n:?}");
    }
    let retry = generation(9999, 10, 10);
    let (r, _, _) = save(d, index, &retry, Fault::None);
    if let Err(e) = r {
        panic!("{tag}: the next save failed: {e}");
    }
    assert_eq!(loaded(d, index).0.as_ref(), Some(&retry), "{tag}");
    is_new
}

#[test]
fn power_cut_at_every_block_leaves_the_old_or_the_new_environment() {
    for (vol, index) in VOLUMES {
        for case in &CASES {
            let mut base = fixture(vol);
            let old = (case.setup)(&mut base, index);
            assert_eq!(loaded(&mut base, index).0, old, "{vol}: {}", case.name);
            let new = (case.next)();
            let (r, total, _) = save(&mut base.clone(), index, &new, Fault::None);
            let saved = r.unwrap();
            assert!(total > 0);
            let mut got_new = 0;
            for cut in 0..=total {
                let tag = format!("{vol}: {}: cut after {cut} of {total} blocks", case.name);
                let mut d = base.clone();
                let (r, _, _) = save(&mut d, index, &new, Fault::CutAfter(cut));
                if cut < total {
                    let e = r.expect_err(&tag).to_string();
                    assert!(e.contains("power lost") && !e.contains('\n'), "{tag}: {e}");
                }
                if check_after(&mut d, index, &old, &new, &tag) {
                    got_new += 1;
                }
            }
            // The new environment appears only once its copy is complete.
            eprintln!(
                "{vol}: {}: {total} blocks ({saved:?}), new after {got_new} of {} cuts",
                case.name,
                total + 1
            );
            assert!(got_new >= 1, "{vol}: {}", case.name);
        }
    }
}

#[test]
fn write_error_at_every_request_keeps_the_old_environment() {
    for (vol, index) in VOLUMES {
        for case in &CASES {
            let mut base = fixture(vol);
            let old = (case.setup)(&mut base, index);
            let new = (case.next)();
            let (_, _, requests) = save(&mut base.clone(), index, &new, Fault::None);
            for r in 1..=requests {
                let tag = format!(
                    "{vol}: {}: write request {r} of {requests} fails",
                    case.name
                );
                let mut d = base.clone();
                let (res, _, _) = save(&mut d, index, &new, Fault::FailRequest(r));
                let e = res.expect_err(&tag).to_string();
                let kept = match &old {
                    None => "; nothing was saved before".to_string(),
                    Some(_) => " is still the saved environment".to_string(),
                };
                assert!(
                    e.contains("injected write failure") && e.ends_with(&kept) && !e.contains('\n'),
                    "{tag}: {e}"
                );
                let (got, notes) = loaded(&mut d, index);
                assert_eq!(got, old, "{tag}: {notes:?}");
                check_after(&mut d, index, &old, &new, &tag);
            }
        }
    }
}

/// Saves alternate between the copies, the steady state writes in place
/// (no FAT or directory block changes), and each start loads the last save.
#[test]
fn saves_alternate_and_write_in_place() {
    for (vol, index) in VOLUMES {
        let mut d = fixture(vol);
        let mut paths = Vec::new();
        for g in 1..=6u32 {
            let e = generation(g, 30, 40);
            let (r, _, _) = save(&mut d, index, &e, Fault::None);
            let s = r.unwrap();
            assert_eq!(s.seq, u64::from(g));
            assert_eq!(s.in_place, g > 2, "{vol} save {g}");
            paths.push(s.path);
            let (got, notes) = loaded(&mut d, index);
            assert_eq!(got, Some(e), "{vol}");
            assert_eq!(
                notes,
                [format!(
                    "31 variable(s) from {} on virtio 0 (save {g}, CRC ok)",
                    s.path
                )]
            );
        }
        assert_eq!(
            paths,
            [0, 1, 0, 1, 0, 1].map(|i| ENV_FILES[i]),
            "{vol}: the copies alternate"
        );
        let mut p = part::open(&mut d, index).unwrap();
        for f in ENV_FILES {
            assert!(matches!(envstore::read_copy(&mut p, f), Copy::Saved { .. }));
        }
    }
}

/// A damaged newest copy is named and the older one is used; both damaged:
/// the defaults, with both named.
#[test]
fn a_damaged_copy_is_named_and_skipped() {
    let (vol, index) = VOLUMES[1];
    let mut d = fixture(vol);
    saved_n(&mut d, index, &[1, 2]);
    let mut p = part::open(&mut d, index).unwrap();
    let mut bytes = vec![0u8; fs::size(&mut p, ENV_FILES[1]).unwrap() as usize];
    fs::read(&mut p, ENV_FILES[1], &mut bytes, 0).unwrap();
    bytes[200] ^= 0x20;
    fs::overwrite(&mut p, ENV_FILES[1], &bytes).unwrap();
    let l = envstore::load(&mut p, "virtio 0");
    assert_eq!(l.env, Some(generation(1, 40, 60)));
    assert_eq!(
        l.notes,
        [
            "/parkboot-redund.env on virtio 0 ignored: CRC mismatch (save 2 did not complete, or the file was changed)",
            "41 variable(s) from /parkboot.env on virtio 0 (save 1, CRC ok)",
        ]
    );
    fs::write(
        &mut p,
        ENV_FILES[0],
        b"#parkboot-env v1 seq=1 len=99999 crc32=00000000\n",
    )
    .unwrap();
    let l = envstore::load(&mut p, "virtio 0");
    assert_eq!(l.env, None);
    assert_eq!(l.notes.len(), 3, "{:?}", l.notes);
    assert_eq!(
        l.notes[0],
        "/parkboot.env on virtio 0 ignored: cut off: the header says 99999 bytes of text, 0 follow"
    );
    assert_eq!(
        l.notes[2],
        "no usable saved environment: using the defaults"
    );
}
