//! ELF, read with the `object` crate: the flat binary of a bare-metal image (what
//! `objcopy -O binary` makes, so building needs no binutils) and what a dynamically linked
//! program loads (for the test initramfs).

use object::elf::{FileHeader64, DT_NEEDED, DT_NULL, DT_STRTAB, PT_LOAD};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::LittleEndian;

type Header = FileHeader64<LittleEndian>;

fn parse(elf: &[u8]) -> Result<(&Header, &[<Header as FileHeader>::ProgramHeader]), String> {
    let hdr = Header::parse(elf).map_err(|e| format!("not a little-endian ELF64 file: {e}"))?;
    let phdrs = hdr
        .program_headers(LittleEndian, elf)
        .map_err(|e| format!("ELF program headers: {e}"))?;
    Ok((hdr, phdrs))
}

/// The bytes of every PT_LOAD segment placed at its physical address; the lowest must be 0
/// (the loader and the payload are linked at 0 and relocate themselves).
pub fn to_flat_binary(elf: &[u8]) -> Result<Vec<u8>, String> {
    let (_, phdrs) = parse(elf)?;
    let mut segs = Vec::new();
    for ph in phdrs.iter().filter(|p| p.p_type(LittleEndian) == PT_LOAD) {
        let data = ph
            .data(LittleEndian, elf)
            .map_err(|_| "segment outside the ELF file")?;
        if !data.is_empty() {
            segs.push((ph.p_paddr(LittleEndian), data));
        }
    }
    let base = segs
        .iter()
        .map(|s| s.0)
        .min()
        .ok_or("no loadable segment")?;
    if base != 0 {
        return Err(format!(
            "loader must be linked at 0, lowest segment is at {base:#x}"
        ));
    }
    let end = segs
        .iter()
        .map(|s| s.0 as usize + s.1.len())
        .max()
        .unwrap_or(0);
    let mut out = vec![0u8; end];
    for (paddr, data) in segs {
        out[paddr as usize..paddr as usize + data.len()].copy_from_slice(data);
    }
    Ok(out)
}

/// (PT_INTERP, DT_NEEDED names) of a little-endian ELF64 file; None if not one or static.
/// Read from the program headers only (what ld.so uses), so stripped files work too.
pub fn dynamic_info(elf: &[u8]) -> Option<(Option<String>, Vec<String>)> {
    let (_, phdrs) = parse(elf).ok()?;
    let mut interp = None;
    let mut dynamic = None;
    for ph in phdrs {
        if let Ok(Some(i)) = ph.interpreter(LittleEndian, elf) {
            interp = Some(String::from_utf8_lossy(i).into_owned());
        }
        if let Ok(Some(d)) = ph.dynamic(LittleEndian, elf) {
            dynamic = Some(d);
        }
    }
    let entries = dynamic?;
    let entries = entries
        .iter()
        .take_while(|d| d.d_tag(LittleEndian) != u64::from(DT_NULL));
    let mut strtab = None;
    let mut needed = Vec::new();
    for d in entries {
        match d.d_tag(LittleEndian) as u32 {
            DT_STRTAB => strtab = Some(d.d_val(LittleEndian)),
            DT_NEEDED => needed.push(d.d_val(LittleEndian)),
            _ => {}
        }
    }
    // DT_STRTAB is a virtual address: find the file offset through the PT_LOAD covering it.
    let strtab = strtab?;
    let load = phdrs.iter().find(|p| {
        let (v, sz) = (p.p_vaddr(LittleEndian), p.p_filesz(LittleEndian));
        p.p_type(LittleEndian) == PT_LOAD && strtab >= v && strtab < v + sz
    })?;
    let str_off = strtab - load.p_vaddr(LittleEndian) + load.p_offset(LittleEndian);
    let cstr = |o: u64| {
        let s = elf.get(usize::try_from(o).ok()?..)?;
        let end = s.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    let needed = needed.iter().filter_map(|n| cstr(str_off + n)).collect();
    Some((interp, needed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test's own executable: a dynamically linked little-endian ELF64 on the hosts we
    /// run on (x86_64 and aarch64 Linux).
    fn me() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn a_host_program_names_its_interpreter_and_libc() {
        let (interp, needed) = dynamic_info(&me()).expect("dynamic");
        assert!(interp.unwrap().starts_with("/lib"), "interpreter");
        assert!(
            needed.iter().any(|n| n.starts_with("libc.so")),
            "{needed:?}"
        );
    }

    /// A minimal aarch64 ELF64 with PT_LOAD segments (paddr, bytes) after the headers.
    fn elf(segments: &[(u64, &[u8])]) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56 * segments.len()];
        e[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        e[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        e[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        e[20..24].copy_from_slice(&1u32.to_le_bytes());
        e[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        e[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        e[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        e[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, (paddr, data)) in segments.iter().enumerate() {
            let off = e.len() as u64;
            let ph = 64 + 56 * i;
            e[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            e[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            e[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
            e[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
            e[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            e[ph + 40..ph + 48].copy_from_slice(&(data.len() as u64).to_le_bytes());
            e.extend_from_slice(data);
        }
        e
    }

    #[test]
    fn segments_land_at_their_physical_addresses() {
        let bin = to_flat_binary(&elf(&[(0, b"head"), (8, b"tail")])).unwrap();
        assert_eq!(bin, b"head\0\0\0\0tail");
        assert_eq!(
            to_flat_binary(&elf(&[(0x1000, b"x")])),
            Err("loader must be linked at 0, lowest segment is at 0x1000".into())
        );
        assert_eq!(to_flat_binary(&elf(&[])), Err("no loadable segment".into()));
        let mut cut = elf(&[(0, b"head")]);
        cut.truncate(cut.len() - 2);
        assert!(to_flat_binary(&cut).is_err());
    }

    #[test]
    fn not_an_elf_is_refused() {
        assert!(dynamic_info(b"#!/bin/sh\n").is_none());
        assert!(to_flat_binary(b"\x7fELF").is_err());
        // A static bare-metal image has no interpreter and no DT_NEEDED.
        assert!(dynamic_info(&elf(&[(0, b"code")])).is_none());
    }
}
