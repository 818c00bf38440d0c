//! ELF64 → flat binary: the bytes of every PT_LOAD segment placed at its
//! physical address relative to the lowest one (what `objcopy -O binary`
//! does), so building needs no binutils; and what a dynamically linked program loads
//! (`dynamic_info`, for the test initramfs).

pub fn to_flat_binary(elf: &[u8]) -> Result<Vec<u8>, String> {
    let rd16 = |o: usize| -> Result<u16, String> {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| "ELF truncated".to_string())
    };
    let rd32 = |o: usize| -> Result<u32, String> {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| "ELF truncated".to_string())
    };
    let rd64 = |o: usize| -> Result<u64, String> {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| "ELF truncated".to_string())
    };
    if elf.get(0..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) {
        return Err("not an ELF64 file".into());
    }
    let phoff = rd64(0x20)? as usize;
    let phentsize = rd16(0x36)? as usize;
    let phnum = rd16(0x38)? as usize;
    let mut segs = Vec::new();
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        if rd32(p)? != 1 {
            continue; // PT_LOAD only
        }
        let offset = rd64(p + 8)? as usize;
        let paddr = rd64(p + 24)?;
        let filesz = rd64(p + 32)? as usize;
        if filesz == 0 {
            continue;
        }
        let data = elf
            .get(offset..offset + filesz)
            .ok_or("segment outside the ELF file")?;
        segs.push((paddr, data));
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
pub fn dynamic_info(d: &[u8]) -> Option<(Option<String>, Vec<String>)> {
    if d.len() < 64 || &d[..4] != b"\x7fELF" || d[4] != 2 || d[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(d.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(d.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(d.get(o..o + 8)?.try_into().ok()?));
    let cstr = |o: usize| {
        let s = d.get(o..)?;
        let end = s.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    let mut loads = Vec::new();
    let mut dynamic = None;
    let mut interp = None;
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        let (ty, off, vaddr, filesz) =
            (u32_at(p)?, u64_at(p + 8)?, u64_at(p + 16)?, u64_at(p + 32)?);
        match ty {
            1 => loads.push((off, vaddr, filesz)),
            2 => dynamic = Some((off, filesz)),
            3 => interp = cstr(off as usize),
            _ => {}
        }
    }
    let (doff, dsz) = dynamic?;
    let mut strtab = None;
    let mut needed_offs = Vec::new();
    for e in (doff..doff + dsz).step_by(16) {
        let (tag, val) = (u64_at(e as usize)?, u64_at(e as usize + 8)?);
        match tag {
            0 => break,
            1 => needed_offs.push(val),
            5 => strtab = Some(val),
            _ => {}
        }
    }
    let strtab = strtab?;
    let (off, vaddr, _) = loads
        .iter()
        .find(|(_, v, sz)| strtab >= *v && strtab < v + sz)?;
    let str_off = (strtab - vaddr + off) as usize;
    let needed = needed_offs
        .iter()
        .filter_map(|n| cstr(str_off + *n as usize))
        .collect();
    Some((interp, needed))
}
