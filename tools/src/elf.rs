//! ELF64 → flat binary: the bytes of every PT_LOAD segment placed at its
//! physical address relative to the lowest one (what `objcopy -O binary`
//! does), so building needs no binutils.

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
