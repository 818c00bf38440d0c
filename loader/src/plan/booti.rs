//! `booti` as a plan. The bin gathers the facts (the kernel's header read
//! from memory, the DT bytes, the pen and its CPUs, env values); this module
//! decides, without touching memory:
//!
//! 1. [`BootiArgs::parse`]: the command line;
//! 2. [`Kernel::inspect`]: the Image or Image.gz header and sizes;
//! 3. [`prepare`]: the DT to hand on (parsed, /chosen fixed up), the CPU
//!    method and the env's addresses — everything that does not depend on
//!    where the CPUs are, so a bad input is refused before any CPU moves;
//! 4. [`Prepared::plan`]: with the CPU facts and the memory map, the
//!    placements (kernel base and entry, initrd, fdt address), the claims to
//!    make, the DT bytes and the ordered list of [`Write`]s — or the one-line
//!    [`Refusal`].
//!
//! Every claim of a plan is made on a copy of the map first, in order, so a
//! plan's claims never overlap an existing claim or one another, and every
//! write lands inside a range the plan claims.

use super::ArgError;
use crate::dt::{DtInfo, Region};
use crate::dtfix::{self, ChosenFixups};
use crate::gzip::{self, GzError, GzInfo};
use crate::image::{ImageError, ImageHeader, PlacementPolicy, IMAGE_ALIGN, IMAGE_HEADER_LEN};
use crate::memmap::{MemError, MemMap, Owner, Prefer};
use crate::pen;
use crate::uimage;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use dtoolkit::model::DeviceTree;
use shell::parse_hex;

const GIB: u64 = 1 << 30;
/// booting.rst: the kernel and the initrd lie in one 1 GiB-aligned 32 GiB window.
const WINDOW: u64 = 32 * GIB;

/// `booti <kernel_addr> [<initrd_addr>[:<size>] | -] [<fdt_addr>]`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootiArgs {
    pub kernel: u64,
    pub initrd: Option<InitrdArg>,
    pub fdt: Option<u64>,
}

/// The initrd argument: an address, with a (non-zero) size for a raw initrd; without one it
/// must be a legacy mkimage ramdisk (`uInitrd`), whose header gives the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitrdArg {
    pub addr: u64,
    pub size: Option<u64>,
}

/// Resolves the initrd argument to the bytes handed to the kernel: a legacy ramdisk
/// (`uInitrd`, with or without `:size`) is checked — header CRC, type ramdisk, arm64, data
/// CRC over `data(addr + 64, size)` — and its data (after the 64-byte header) is the initrd;
/// anything else is taken raw and needs its size.
///
/// # Errors
/// A bad legacy header or data, or a raw initrd without a size.
pub fn resolve_initrd<'a>(
    arg: InitrdArg,
    head: &[u8],
    data: impl FnOnce(u64, u64) -> Result<&'a [u8], String>,
) -> Result<(u64, u64), Refusal> {
    let bad = |e: uimage::UImageError| Refusal::Initrd(format!("at {:#x}: {e}", arg.addr));
    if !uimage::is_legacy(head) {
        return arg
            .size
            .map(|n| (arg.addr, n))
            .ok_or(Refusal::Initrd(format!(
                "at {:#x} has no legacy (mkimage) header: give its size as <addr>:<size>",
                arg.addr
            )));
    }
    let h = uimage::Header::parse(head).map_err(bad)?;
    h.expect_ramdisk().map_err(bad)?;
    let (start, len) = h.data_range(arg.addr);
    if let Some(given) = arg.size {
        if given < uimage::HEADER_LEN + len {
            return Err(bad(uimage::UImageError::Truncated {
                size: h.size,
                have: given.saturating_sub(uimage::HEADER_LEN),
            }));
        }
    }
    let bytes =
        data(start, len).map_err(|e| Refusal::Initrd(format!("at {:#x}: {e}", arg.addr)))?;
    h.check_data(bytes).map_err(bad)?;
    Ok((start, len))
}

impl BootiArgs {
    /// Parses `args` (`args[0]` is the command name).
    ///
    /// # Errors
    /// [`ArgError::Usage`] for a wrong argument count, else the bad argument.
    pub fn parse(args: &[String]) -> Result<Self, ArgError> {
        if !(2..=4).contains(&args.len()) {
            return Err(ArgError::Usage);
        }
        let bad = |s: String| ArgError::Bad(s);
        let kernel =
            parse_hex(&args[1]).ok_or_else(|| bad(format!("bad kernel address '{}'", args[1])))?;
        let initrd = match args.get(2).map(String::as_str) {
            None | Some("-") => None,
            Some(s) => {
                let (a, l) = match s.split_once(':') {
                    Some((a, l)) => (a, Some(l)),
                    None => (s, None),
                };
                let addr = parse_hex(a).ok_or_else(|| bad(format!("bad initrd address '{a}'")))?;
                let size = match l {
                    Some(l) => {
                        let n =
                            parse_hex(l).ok_or_else(|| bad(format!("bad initrd size '{l}'")))?;
                        if n == 0 {
                            return Err(bad("booti: initrd size is 0".into()));
                        }
                        Some(n)
                    }
                    None => None,
                };
                Some(InitrdArg { addr, size })
            }
        };
        let fdt = match args.get(3) {
            Some(f) => Some(parse_hex(f).ok_or_else(|| bad(format!("bad fdt address '{f}'")))?),
            None => None,
        };
        Ok(Self {
            kernel,
            initrd,
            fdt,
        })
    }
}

/// Why booti refuses. Every variant prints as one line starting `booti:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The target's memory check refused a range booti had to read.
    Memory(String),
    /// A gzip'd Image whose length no `load` recorded.
    GzipSizeUnknown,
    Gzip(GzError),
    /// The gzip member inflates to fewer bytes than an Image header.
    GzipShort,
    /// The inflated Image header is bad.
    GzipHeader(ImageError),
    Header(ImageError),
    /// The header's footprint does not cover the Image.
    ImageSizeTooSmall {
        gzip: bool,
        image_size: u64,
        file_len: u64,
    },
    /// An EFI-stub Image whose PE/COFF sections end past what was loaded.
    Truncated {
        loaded: u64,
        end: u64,
    },
    /// `text_offset + image_size`, or the kernel's end, overflows.
    Footprint {
        text_offset: u64,
        image_size: u64,
    },
    InitrdOverflow {
        addr: u64,
        size: u64,
    },
    /// The initrd argument does not name a usable initrd (legacy header, size).
    Initrd(String),
    /// The DT to hand on does not parse.
    Fdt(String),
    NoFdtAddr,
    FdtAddrAlign(u64),
    CpuMethod(String),
    PsciUnreachable,
    /// Rewriting the DT's CPUs or serialising it failed.
    DtFixup(String),
    /// A range booti must write is not free RAM.
    Claim(MemError),
    /// No free 2 MiB-aligned room for the kernel.
    NoRoom {
        footprint: u64,
    },
    /// Kernel and initrd do not fit in one 32 GiB window.
    Window,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("booti: ")?;
        match self {
            Self::Memory(e) | Self::DtFixup(e) => f.write_str(e),
            Self::GzipSizeUnknown => f.write_str(
                "gzip'd Image: its size is unknown; load it with `load` (sets filesize) right before booti",
            ),
            Self::Gzip(e) => write!(f, "Image.gz: {e}"),
            Self::GzipShort => f.write_str("Image.gz inflates to less than an Image header"),
            Self::GzipHeader(e) => write!(f, "Image.gz: {e}"),
            Self::Header(e) => write!(f, "{e}"),
            Self::ImageSizeTooSmall {
                gzip: true,
                image_size,
                file_len,
            } => write!(
                f,
                "Image.gz: its gzip trailer says it inflates to {file_len:#x} bytes, more than the Image header's image_size {image_size:#x} (truncated or damaged?)"
            ),
            Self::ImageSizeTooSmall {
                gzip: false,
                image_size,
                file_len,
            } => write!(
                f,
                "Image header image_size {image_size:#x} is smaller than the Image ({file_len:#x} bytes)"
            ),
            Self::Truncated { loaded, end } => write!(
                f,
                "the Image is truncated: {loaded:#x} bytes loaded, its PE/COFF sections end at {end:#x}"
            ),
            Self::Footprint {
                text_offset,
                image_size,
            } => write!(
                f,
                "the kernel's text_offset {text_offset:#x} + image_size {image_size:#x} overflows the address space"
            ),
            Self::InitrdOverflow { addr, size } => write!(
                f,
                "initrd: range {addr:#x} + {size:#x} overflows the address space"
            ),
            Self::Initrd(e) => write!(f, "initrd {e}"),
            Self::Fdt(e) => write!(f, "fdt: {e}"),
            Self::NoFdtAddr => f.write_str("${fdt_addr_r} is not set"),
            Self::FdtAddrAlign(a) => write!(f, "fdt_addr_r {a:#x} is not 8-byte aligned"),
            Self::CpuMethod(m) => write!(f, "cpu_method '{m}' must be spin-table or psci"),
            Self::PsciUnreachable => {
                f.write_str("cpu_method=psci needs firmware PSCI reachable from this EL")
            }
            Self::Claim(e) => write!(f, "{e}"),
            Self::NoRoom { footprint } => write!(
                f,
                "no free 2 MiB-aligned room for the kernel's {footprint:#x}-byte footprint"
            ),
            Self::Window => f.write_str(
                "initrd and kernel do not fit in one 1 GiB-aligned 32 GiB window (booting.rst)",
            ),
        }
    }
}

impl From<Refusal> for shell::CmdError {
    fn from(r: Refusal) -> Self {
        Self::Msg(r.to_string())
    }
}

/// What kind of file the kernel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelForm {
    /// An uncompressed Image.
    Image,
    /// A gzip member of `len` bytes (Image.gz).
    Gzip { len: u64, info: GzInfo },
}

/// The kernel at `addr`, as its header and sizes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    pub addr: u64,
    pub hdr: ImageHeader,
    pub form: KernelForm,
    /// Bytes of Image: the file (capped at the footprint), or what the gzip member inflates to.
    pub file_len: u64,
}

impl Kernel {
    /// Inspects the kernel at `addr` from `head` (the first 64 bytes there), `loaded_len`
    /// (`${filesize}` when the last load put a file at `addr`) and, for a gzip member only,
    /// `member(len)`: the `len` bytes at `addr` (a checked view of memory, or the reason
    /// they cannot be read).
    ///
    /// # Errors
    /// A bad header or gzip member, an unknown gzip length, or a footprint smaller than the Image.
    pub fn inspect<'a>(
        addr: u64,
        head: &[u8],
        loaded_len: Option<u64>,
        member: impl FnOnce(u64) -> Result<&'a [u8], String>,
    ) -> Result<Self, Refusal> {
        let k = if gzip::is_gzip(head) {
            let len = loaded_len.ok_or(Refusal::GzipSizeUnknown)?;
            let data = member(len).map_err(Refusal::Memory)?;
            let info = gzip::parse(data).map_err(Refusal::Gzip)?;
            let mut h = [0u8; IMAGE_HEADER_LEN];
            let n = gzip::inflate_prefix(data, &info, &mut h).map_err(Refusal::Gzip)?;
            if n < IMAGE_HEADER_LEN {
                return Err(Refusal::GzipShort);
            }
            let hdr = ImageHeader::parse(&h).map_err(Refusal::GzipHeader)?;
            Self {
                addr,
                hdr,
                form: KernelForm::Gzip { len, info },
                file_len: u64::from(info.isize),
            }
        } else {
            let hdr = ImageHeader::parse(head).map_err(Refusal::Header)?;
            // A legacy header (no image_size) has an assumed footprint: cap the
            // file at it. Otherwise the whole loaded file must fit the footprint.
            let file_len = match loaded_len {
                Some(n) if hdr.legacy => n.min(hdr.image_size),
                Some(n) => n,
                None => hdr.image_size,
            };
            if let Some(n) = loaded_len.filter(|_| hdr.pe_offset != 0) {
                let end = member(n)
                    .ok()
                    .and_then(|v| crate::image::pe_sections_end(v, hdr.pe_offset));
                if let Some(end) = end.filter(|&e| n < e) {
                    return Err(Refusal::Truncated { loaded: n, end });
                }
            }
            Self {
                addr,
                hdr,
                form: KernelForm::Image,
                file_len,
            }
        };
        if k.hdr.image_size < k.file_len {
            return Err(Refusal::ImageSizeTooSmall {
                gzip: k.is_gzip(),
                image_size: k.hdr.image_size,
                file_len: k.file_len,
            });
        }
        Ok(k)
    }

    #[must_use]
    pub const fn is_gzip(&self) -> bool {
        matches!(self.form, KernelForm::Gzip { .. })
    }
}

/// How the secondary CPUs reach the kernel (env `cpu_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMethod {
    /// Through the loader's pen (the default).
    SpinTable,
    /// Handed back to firmware; the kernel starts them with PSCI CPU_ON.
    Psci,
}

impl CpuMethod {
    /// Parses `${cpu_method}` (unset: spin-table).
    ///
    /// # Errors
    /// [`Refusal::CpuMethod`] for any other value.
    pub fn parse(v: Option<&str>) -> Result<Self, Refusal> {
        match v {
            None | Some("spin-table") => Ok(Self::SpinTable),
            Some("psci") => Ok(Self::Psci),
            Some(other) => Err(Refusal::CpuMethod(other.to_string())),
        }
    }
}

/// Everything booti was asked and found, before the CPUs are considered.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub kernel: Kernel,
    /// `(addr, size)` from the command line.
    pub initrd: Option<(u64, u64)>,
    /// The DT to hand on (the loader's, or the one the command names).
    pub dtb: &'a [u8],
    pub bootargs: Option<&'a str>,
    pub cpu_method: Option<&'a str>,
    pub fdt_addr_r: Option<&'a str>,
    pub kernel_addr_r: Option<&'a str>,
    /// What else the DT handed on gets (seeds, memory).
    pub dt_extras: DtExtras,
}

/// The DT fixups beyond bootargs and the initrd, from facts the bin gathers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DtExtras {
    /// The RAM banks the loader knows, written as the DT's memory: for a DT other than the
    /// loader's own (a distribution's `.dtb`), as U-Boot's `fdt_fixup_memory_banks` does.
    pub memory: Option<Vec<(u64, u64)>>,
    /// Entropy from a hardware RNG for /chosen/rng-seed (added when the DT has none).
    pub rng_seed: Option<Vec<u8>>,
    /// The `kaslrseed` command seeded this DT: keep its /chosen/kaslr-seed.
    pub keep_kaslr_seed: bool,
}

/// A request whose inputs all passed: the DT parsed with /chosen fixed up.
#[derive(Debug, Clone)]
pub struct Prepared {
    kernel: Kernel,
    initrd: Option<Region>,
    tree: DeviceTree,
    info: DtInfo,
    method: CpuMethod,
    fdt: u64,
    kernel_addr_r: Option<u64>,
}

/// Validates everything that does not depend on the CPUs: the DT parses, the initrd range does
/// not wrap, `cpu_method` is known, `fdt_addr_r` is set and aligned. /chosen gets `bootargs`
/// and the initrd.
///
/// # Errors
/// The first [`Refusal`] found.
pub fn prepare(req: &Request<'_>) -> Result<Prepared, Refusal> {
    let (mut tree, info) = dtfix::load(req.dtb).map_err(Refusal::Fdt)?;
    let initrd = match req.initrd {
        Some((addr, size)) => {
            addr.checked_add(size)
                .ok_or(Refusal::InitrdOverflow { addr, size })?;
            Some(Region::new(addr, size))
        }
        None => None,
    };
    dtfix::apply_chosen(
        &mut tree,
        &ChosenFixups {
            bootargs: req.bootargs.map(String::from),
            initrd: initrd.map(|r| (r.base, r.end())),
            keep_kaslr_seed: req.dt_extras.keep_kaslr_seed,
            rng_seed: req.dt_extras.rng_seed.clone(),
        },
    );
    if let Some(banks) = &req.dt_extras.memory {
        dtfix::apply_memory(&mut tree, banks).map_err(Refusal::DtFixup)?;
    }
    let method = CpuMethod::parse(req.cpu_method)?;
    let fdt = req
        .fdt_addr_r
        .and_then(parse_hex)
        .ok_or(Refusal::NoFdtAddr)?;
    if !fdt.is_multiple_of(8) {
        return Err(Refusal::FdtAddrAlign(fdt));
    }
    Ok(Prepared {
        kernel: req.kernel,
        initrd,
        tree,
        info,
        method,
        fdt,
        kernel_addr_r: req.kernel_addr_r.and_then(parse_hex),
    })
}

/// The pen the secondary CPUs wait in, as the kernel's DT must describe it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PenFacts {
    /// The pen's claim (its /memreserve/ entry).
    pub region: Region,
    /// `cpu-park-addr`.
    pub park: u64,
    /// `(cpu node path, cpu-release-addr)` for every CPU with a slot.
    pub release: Vec<(String, u64)>,
    /// CPU node paths that did not arrive or are lost: `status = "fail"` in the DT.
    pub unusable: Vec<String>,
    /// Old pens dropped: their /memreserve/ entries go.
    pub dropped: Vec<Region>,
    /// Something may still be in the pen that is not handed over (a stray, a CPU stuck in it
    /// or sent to it and never seen): it stays reserved with cpu_method=psci too.
    pub occupied: bool,
}

/// The CPUs, as they are when booti plans.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuFacts {
    /// The pen, if the CPUs were gathered.
    pub pen: Option<PenFacts>,
    /// Firmware PSCI is reachable from the loader's EL.
    pub psci_usable: bool,
    /// The boot CPU's MPIDR (low 32 bits), for the DT header.
    pub boot_cpuid: u32,
}

/// What happens to the secondary CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuHandoff {
    /// No pen: the DT's CPUs are handed on as they are.
    Untouched,
    /// They wait in the pen at `pen`, which the kernel's DT describes (and which is cleaned to
    /// PoC before the jump).
    SpinTable { pen: Region },
    /// They go back to firmware (PSCI CPU_OFF) before a byte is written.
    Psci,
}

/// How the Image gets to its entry address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelHow {
    InPlace,
    Moved,
    Inflated,
}

/// A claim the plan makes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedClaim {
    pub start: u64,
    pub size: u64,
    pub owner: Owner,
    /// Kept for the kernel (else released once the writes are done: the source of a move).
    pub keep: bool,
}

impl PlannedClaim {
    #[must_use]
    pub const fn region(&self) -> Region {
        Region::new(self.start, self.size)
    }
}

/// One write of the plan, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Inflate the gzip member at `src` (`src_len` bytes) into `dst` (`info.isize` bytes).
    Inflate {
        src: u64,
        src_len: u64,
        dst: u64,
        info: GzInfo,
    },
    /// Move `len` bytes from `src` to `dst`.
    Move { src: u64, dst: u64, len: u64 },
    /// Copy the plan's DT bytes to `dst`.
    Dt { dst: u64, len: u64 },
}

impl Write {
    /// The range written.
    #[must_use]
    pub fn dst(&self) -> Region {
        match *self {
            Self::Inflate { dst, info, .. } => Region::new(dst, u64::from(info.isize)),
            Self::Move { dst, len, .. } | Self::Dt { dst, len } => Region::new(dst, len),
        }
    }

    /// The range read, for a kernel write.
    #[must_use]
    pub fn src(&self) -> Option<Region> {
        match *self {
            Self::Inflate { src, src_len, .. } => Some(Region::new(src, src_len)),
            Self::Move { src, len, .. } => Some(Region::new(src, len)),
            Self::Dt { .. } => None,
        }
    }
}

/// An accepted booti: where everything goes and what to write, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPlan {
    /// Where the Image's first byte goes and where the CPU jumps.
    pub entry: u64,
    pub image_size: u64,
    pub file_len: u64,
    pub how: KernelHow,
    pub initrd: Option<Region>,
    /// Where the DT goes (its address is handed to the kernel in x0).
    pub fdt: u64,
    /// The DT handed on.
    pub dt: Vec<u8>,
    pub claims: Vec<PlannedClaim>,
    pub writes: Vec<Write>,
    pub cpus: CpuHandoff,
}

impl BootPlan {
    /// The lines printed before the handoff.
    #[must_use]
    pub fn banner(&self) -> String {
        let how = match self.how {
            KernelHow::Inflated => ", inflated from Image.gz",
            KernelHow::InPlace => ", in place",
            KernelHow::Moved => ", moved",
        };
        let mut o = format!(
            "## Booting arm64 Image at {:#x} ({} bytes{how}, image_size {:#x})\n",
            self.entry, self.file_len, self.image_size
        );
        if let Some(r) = self.initrd {
            o.push_str(&format!("## initrd at {:#x}..{:#x}\n", r.base, r.end()));
        }
        o.push_str(&format!(
            "## Device tree at {:#x} ({} bytes)\n\nStarting kernel ...\n\n",
            self.fdt,
            self.dt.len()
        ));
        o
    }

    /// The ranges the next stage owns, cleaned to PoC before the jump: kernel, DT, initrd,
    /// and the pen when CPUs wait in it.
    #[must_use]
    pub fn clean_ranges(&self) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        v.push((self.entry, self.image_size));
        v.push((self.fdt, self.dt.len() as u64));
        if let Some(r) = self.initrd {
            v.push((r.base, r.size));
        }
        if let CpuHandoff::SpinTable { pen } = self.cpus {
            v.push((pen.base, pen.size));
        }
        v
    }
}

/// The claims of a plan, made on a copy of the map as they are decided.
struct Layout {
    map: MemMap,
    claims: Vec<PlannedClaim>,
}

impl Layout {
    fn claim(&mut self, start: u64, size: u64, owner: Owner, keep: bool) -> Result<(), Refusal> {
        self.map
            .claim(start, size, owner.clone())
            .map_err(Refusal::Claim)?;
        self.claims.push(PlannedClaim {
            start,
            size,
            owner,
            keep,
        });
        Ok(())
    }

    fn lowest_free(&self, k: &ImageHeader) -> Result<u64, Refusal> {
        let footprint = footprint(k)?;
        self.map
            .find_free(footprint, IMAGE_ALIGN, None, Prefer::Low)
            .ok_or(Refusal::NoRoom { footprint })
    }

    /// The 2 MiB-aligned base the kernel runs at, and how it gets there. A raw Image runs in
    /// place when its header allows; else it moves to the lowest free slot. An Image.gz is
    /// inflated at `kernel_addr_r` for an "anywhere" kernel when that slot is free (where an
    /// uncompressed one would run), else at the lowest free slot. The file being moved or
    /// inflated is claimed until the writes are done.
    fn place_kernel(
        &mut self,
        k: &Kernel,
        kernel_addr_r: Option<u64>,
    ) -> Result<(u64, KernelHow), Refusal> {
        let hdr = &k.hdr;
        match k.form {
            KernelForm::Image => match hdr.placement(&self.map, k.addr, k.file_len) {
                Ok(p) if !p.needs_move => Ok((p.base, KernelHow::InPlace)),
                _ => {
                    self.claim(k.addr, k.file_len, Owner::Load("kernel file".into()), false)?;
                    Ok((self.lowest_free(hdr)?, KernelHow::Moved))
                }
            },
            KernelForm::Gzip { len, .. } => {
                self.claim(k.addr, len, Owner::Load("Image.gz".into()), false)?;
                let preferred = kernel_addr_r.filter(|a| {
                    hdr.placement_policy() == PlacementPolicy::Anywhere
                        && a.is_multiple_of(IMAGE_ALIGN)
                        && a.checked_add(hdr.text_offset).is_some_and(|e| {
                            self.map.check(e, hdr.image_size, &Owner::Kernel).is_ok()
                        })
                });
                let base = match preferred {
                    Some(a) => a,
                    None => self.lowest_free(hdr)?,
                };
                Ok((base, KernelHow::Inflated))
            }
        }
    }
}

fn footprint(h: &ImageHeader) -> Result<u64, Refusal> {
    h.text_offset
        .checked_add(h.image_size)
        .ok_or(Refusal::Footprint {
            text_offset: h.text_offset,
            image_size: h.image_size,
        })
}

impl Prepared {
    #[must_use]
    pub const fn cpu_method(&self) -> CpuMethod {
        self.method
    }

    /// Places the kernel, the initrd and the DT in `map` as it is now, with the CPUs as
    /// `cpus` says. `map` is not changed: the plan lists the claims to make.
    ///
    /// # Errors
    /// The first [`Refusal`] found.
    pub fn plan(self, cpus: &CpuFacts, map: &MemMap) -> Result<BootPlan, Refusal> {
        let Self {
            kernel: k,
            initrd,
            mut tree,
            info,
            method,
            fdt,
            kernel_addr_r,
        } = self;
        let handoff = fix_cpus(&mut tree, &info, method, cpus)?;
        let dt = dtfix::store(&tree, cpus.boot_cpuid).map_err(Refusal::DtFixup)?;

        let mut l = Layout {
            map: map.clone(),
            claims: Vec::new(),
        };
        let (base, how) = l.place_kernel(&k, kernel_addr_r)?;
        let overflow = Refusal::Footprint {
            text_offset: k.hdr.text_offset,
            image_size: k.hdr.image_size,
        };
        let entry = base
            .checked_add(k.hdr.text_offset)
            .ok_or(overflow.clone())?;
        let kernel_end = entry.checked_add(k.hdr.image_size).ok_or(overflow)?;
        l.claim(entry, k.hdr.image_size, Owner::Kernel, true)?;
        if let Some(r) = initrd {
            l.claim(r.base, r.size, Owner::Initrd, true)?;
            let lo = r.base.min(base) & !(GIB - 1);
            let hi = r.end().max(kernel_end);
            if hi - lo > WINDOW {
                return Err(Refusal::Window);
            }
        }
        let dt_len = dt.len() as u64;
        l.claim(fdt, dt_len, Owner::Fdt, true)?;

        let mut writes = Vec::new();
        match k.form {
            KernelForm::Gzip { len, info } => writes.push(Write::Inflate {
                src: k.addr,
                src_len: len,
                dst: entry,
                info,
            }),
            KernelForm::Image if how == KernelHow::Moved => writes.push(Write::Move {
                src: k.addr,
                dst: entry,
                len: k.file_len,
            }),
            KernelForm::Image => {}
        }
        writes.push(Write::Dt {
            dst: fdt,
            len: dt_len,
        });
        Ok(BootPlan {
            entry,
            image_size: k.hdr.image_size,
            file_len: k.file_len,
            how,
            initrd,
            fdt,
            dt,
            claims: l.claims,
            writes,
            cpus: handoff,
        })
    }
}

/// Rewrites the DT's CPUs for `method` when a pen holds them: spin-table through the pen's
/// release words (the pen's /memreserve/ added, dropped old pens' removed), or psci (the
/// pen's and dropped pens' entries removed — the pen's kept while it may hold a CPU that is
/// not handed over). The nodes of CPUs that did not arrive get `status = "fail"`.
fn fix_cpus(
    tree: &mut DeviceTree,
    info: &DtInfo,
    method: CpuMethod,
    cpus: &CpuFacts,
) -> Result<CpuHandoff, Refusal> {
    let Some(pen) = &cpus.pen else {
        return Ok(CpuHandoff::Untouched);
    };
    let paths: Vec<String> = info.cpus.iter().map(|c| c.path.clone()).collect();
    let failed: Vec<dtfix::FailedCpu> = paths
        .iter()
        .filter(|p| pen.unusable.contains(p))
        .map(|p| dtfix::FailedCpu {
            path: p.clone(),
            slot: pen
                .release
                .iter()
                .find(|(q, _)| q == p)
                .map(|&(_, r)| (r, pen.park)),
        })
        .collect();
    let existing = &info.memreserve;
    let (m, reserve, handoff) = match method {
        CpuMethod::SpinTable => (
            dtfix::CpuMethod::SpinTable {
                release: pen.release.clone(),
                park: pen.park,
            },
            pen::memreserve_list(existing, &pen.dropped, pen.region),
            CpuHandoff::SpinTable { pen: pen.region },
        ),
        CpuMethod::Psci => {
            if !cpus.psci_usable {
                return Err(Refusal::PsciUnreachable);
            }
            let keep: Vec<Region> = if pen.occupied {
                pen::memreserve_list(existing, &pen.dropped, pen.region)
            } else {
                existing
                    .iter()
                    .filter(|r| !pen.dropped.contains(r) && **r != pen.region)
                    .copied()
                    .collect()
            };
            (dtfix::CpuMethod::Psci, keep, CpuHandoff::Psci)
        }
    };
    let reserve: Vec<(u64, u64)> = reserve.iter().map(|r| (r.base, r.size)).collect();
    dtfix::apply_cpus(tree, &paths, &m, &failed, &reserve).map_err(Refusal::DtFixup)?;
    Ok(handoff)
}

/// The pen as a DT other than the loader's own must describe it: the pen knows its CPUs by
/// the loader's DT node paths (`own`); a distribution's `.dtb` (`target`) may name the same
/// CPUs differently, so each slot follows its CPU by MPIDR. A CPU the target lists that has no
/// slot (not in the loader's DT, or it did not arrive) is unusable: `status = "fail"` in the DT
/// handed on, so the kernel does not wait for a CPU that will never come.
#[must_use]
pub fn retarget_pen(pen: &PenFacts, own: &DtInfo, target: &DtInfo) -> PenFacts {
    let mpidr_of = |path: &str| own.cpus.iter().find(|c| c.path == path).map(|c| c.mpidr);
    let slot_of = |mpidr: u64| {
        pen.release
            .iter()
            .find(|(p, _)| mpidr_of(p) == Some(mpidr))
            .map(|&(_, a)| a)
    };
    let mut release = Vec::new();
    let mut unusable = Vec::new();
    for c in &target.cpus {
        match slot_of(c.mpidr) {
            Some(a) => release.push((c.path.clone(), a)),
            None => unusable.push(c.path.clone()),
        }
    }
    PenFacts {
        region: pen.region,
        park: pen.park,
        release,
        unusable,
        dropped: pen.dropped.clone(),
        occupied: pen.occupied,
    }
}

/// [`prepare`] then [`Prepared::plan`], for callers whose CPUs need no move in between.
///
/// # Errors
/// The first [`Refusal`] found.
pub fn plan(req: &Request<'_>, cpus: &CpuFacts, map: &MemMap) -> Result<BootPlan, Refusal> {
    prepare(req)?.plan(cpus, map)
}

#[cfg(test)]
mod tests;
