//! `arch/pen.S` and the Rust format constants agree.

use super::*;

#[test]
fn asm_constants_match() {
    let src = include_str!("../../../arch/src/pen.S");
    // included with global_asm!, where braces are format placeholders
    assert!(!src.contains('{') && !src.contains('}'));
    let mut found = Vec::new();
    for line in src.lines() {
        let l = line.trim();
        let Some(rest) = l.strip_prefix(".equ ") else {
            continue;
        };
        let mut it = rest.splitn(2, ',');
        let name = it.next().unwrap().trim().to_string();
        let val = it.next().unwrap().split("/*").next().unwrap().trim();
        let v = if let Some(h) = val.strip_prefix("0x") {
            u64::from_str_radix(h, 16).unwrap()
        } else {
            val.parse::<u64>().unwrap()
        };
        found.push((name, v));
    }
    let want: &[(&str, u64)] = &[
        ("PEN_CODE_OFFSET", CODE_OFFSET.into()),
        ("PEN_BASE_ALIGN_MASK", PEN_ALIGN - 1),
        ("PEN_HDR_MAGIC", hdr::MAGIC as u64),
        ("PEN_HDR_TOTAL_SIZE", hdr::TOTAL_SIZE as u64),
        ("PEN_HDR_PHYS_BASE", hdr::PHYS_BASE as u64),
        ("PEN_HDR_SLOT_OFFSET", hdr::SLOT_OFFSET as u64),
        ("PEN_HDR_NR_SLOTS", hdr::NR_SLOTS as u64),
        ("PEN_HDR_ENTRY_EL", hdr::ENTRY_EL as u64),
        ("PEN_HDR_STATE_OFFSET", hdr::STATE_OFFSET as u64),
        ("PEN_MAX_SLOTS", MAX_SLOTS.into()),
        ("PEN_SLOT_SHIFT", u64::from(SLOT_SIZE.trailing_zeros())),
        ("PEN_SLOT_SIZE", SLOT_SIZE.into()),
        ("PEN_SLOT_RELEASE", slot::RELEASE as u64),
        ("PEN_SLOT_MPIDR", slot::MPIDR as u64),
        ("PEN_SLOT_CONTEXT", slot::CONTEXT as u64),
        ("PEN_SLOT_MODE", slot::MODE as u64),
        ("PEN_STATE_SIZE", STATE_SIZE.into()),
        ("PEN_ST_STATUS", state::STATUS as u64),
        ("PEN_ST_MPIDR", state::MPIDR_SEEN as u64),
        ("PEN_ST_ENTRIES", state::ENTRIES as u64),
        ("PEN_ST_PARKS", state::PARKS as u64),
        ("PEN_ST_RELEASES", state::RELEASES as u64),
        ("PEN_ST_LAST_ENTRY", state::LAST_ENTRY as u64),
        ("PEN_ST_EL", state::EL as u64),
        ("PEN_ST_WAKES", state::WAKES as u64),
        ("PEN_ST_WAIT", state::WAIT as u64),
        ("WAKE_BLOCK_SIZE", wake::WAKE_BLOCK_SIZE as u64),
        ("WAKE_GIC_VERSION", wake::off::GIC_VERSION as u64),
        ("WAKE_FLAGS", wake::off::FLAGS as u64),
        ("WAKE_PERIOD", wake::off::PERIOD as u64),
        ("WAKE_INTID_EL2", wake::off::INTID_EL2 as u64),
        ("WAKE_INTID_EL1", wake::off::INTID_EL1 as u64),
        ("WAKE_GICD", wake::off::GICD as u64),
        ("WAKE_GICC", wake::off::GICC as u64),
        ("WAKE_NR_GICR", wake::off::NR_GICR as u64),
        ("WAKE_HOLD_PERIOD", wake::off::HOLD_PERIOD as u64),
        ("WAKE_GICR", wake::off::GICR as u64),
        ("WAKE_MAX_GICR", wake::MAX_GICR_REGIONS as u64),
        ("WAKE_PMR", u64::from(wake::WAKE_PMR)),
        ("WAIT_WFE", u64::from(wake::WaitMethod::WFE)),
        ("WAIT_WFIT", u64::from(wake::WaitMethod::WFIT)),
        ("WAIT_GICV2", u64::from(wake::WaitMethod::GICV2)),
        ("WAIT_GICV3", u64::from(wake::WaitMethod::GICV3)),
        ("WAKE_SGI", u64::from(wake::WAKE_SGI)),
        ("GICD_CTLR", wake::regs::GICD_CTLR as u64),
        ("GICD_ISENABLER", wake::regs::GICD_ISENABLER as u64),
        ("GICD_ICENABLER", wake::regs::GICD_ICENABLER as u64),
        ("GICD_ICPENDR", wake::regs::GICD_ICPENDR as u64),
        ("GICD_IPRIORITYR", wake::regs::GICD_IPRIORITYR as u64),
        ("GICD_CPENDSGIR", wake::regs::GICD_CPENDSGIR as u64),
        ("GICD_ITARGETSR", wake::regs::GICD_ITARGETSR as u64),
        ("GICC_CTLR", wake::regs::GICC_CTLR as u64),
        ("GICC_PMR", wake::regs::GICC_PMR as u64),
        ("GICR_CTLR", wake::regs::GICR_CTLR as u64),
        ("GICR_WAKER", wake::regs::GICR_WAKER as u64),
        ("GICR_TYPER", wake::regs::GICR_TYPER as u64),
        ("GICR_FRAME", wake::GICR_FRAME),
        ("GICR_SGI_OFFSET", wake::regs::GICR_SGI_OFFSET as u64),
        ("GICR_IGROUPR0", wake::regs::GICR_IGROUPR0 as u64),
        ("GICR_ISENABLER0", wake::regs::GICR_ISENABLER0 as u64),
        ("GICR_ICENABLER0", wake::regs::GICR_ICENABLER0 as u64),
        ("GICR_ICPENDR0", wake::regs::GICR_ICPENDR0 as u64),
        ("GICR_IPRIORITYR", wake::regs::GICR_IPRIORITYR as u64),
        ("GIC_POLL_LIMIT", u64::from(wake::regs::GIC_POLL_LIMIT)),
        ("PEN_STATUS_WAITING", SlotStatus::Waiting.raw()),
        ("PEN_STATUS_RELEASED", SlotStatus::Released.raw()),
        ("PEN_STATUS_PARKED", SlotStatus::Parked.raw()),
        ("PEN_STATUS_REFUSED", SlotStatus::Refused.raw()),
        ("PEN_STATUS_UNARMED", SlotStatus::Unarmed.raw()),
        ("PEN_STATUS_FAULTED", SlotStatus::Faulted.raw()),
        ("PEN_VECTORS_OFFSET", VECTORS_OFFSET.into()),
        ("PEN_STRAY_SIZE", STRAY_SIZE.into()),
        ("PEN_MAX_STRAYS", MAX_STRAYS.into()),
        ("PEN_STRAY_TAG", stray::TAG as u64),
        ("PEN_STRAY_ARRIVALS", stray::ARRIVALS as u64),
        ("PEN_STRAY_EL", stray::EL as u64),
        ("PEN_STRAY_HOW", stray::HOW as u64),
        ("PEN_STRAY_HOW_FAULT", 2),
        ("PEN_CPTR_EL2_NVHE", 0x33ff),
        ("PEN_FAULT_TAG", 0xfa17),
        ("PEN_MODE_BRANCH", MODE_BRANCH),
        ("PEN_MODE_ERET_EL1", MODE_ERET_EL1),
        ("PEN_SCTLR_EL2_OFF", 0x30c5_0830),
        ("PEN_SCTLR_EL1_OFF", 0x30d0_0800),
        ("PEN_SPSR_EL1H_MASKED", 0x3c5),
    ];
    for (name, v) in want {
        let got = found.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(got, Some(*v), "{name}");
    }
    assert_eq!(found.len(), want.len(), "unchecked .equ in pen.S");
    // the wake block magic, built the same way into x2
    let m = wake::WAKE_MAGIC;
    for (i, part) in [m & 0xffff, (m >> 16) & 0xffff, (m >> 32) & 0xffff, m >> 48]
        .iter()
        .enumerate()
    {
        let needle = if i == 0 {
            format!("movz    x2, #{part:#x}")
        } else {
            format!("movk    x2, #{part:#x}, lsl #{}", 16 * i)
        };
        assert!(src.contains(&needle), "{needle}");
    }
    // the magic the asm builds with movz/movk
    let m = PEN_MAGIC;
    for (i, part) in [m & 0xffff, (m >> 16) & 0xffff, (m >> 32) & 0xffff, m >> 48]
        .iter()
        .enumerate()
    {
        let needle = if i == 0 {
            format!("movz    x1, #{part:#x}")
        } else {
            format!("movk    x1, #{part:#x}, lsl #{}", 16 * i)
        };
        assert!(src.contains(&needle), "{needle}");
    }
    // the mask the asm builds: 0xffff | 0xff << 16 | 0xff << 32
    assert_eq!(0xffffu64 | 0xff << 16 | 0xff << 32, MPIDR_MASK);
    // the tag bit the asm sets, and the vector table lies inside the code
    assert!(src.contains("orr     x3, x13, #(1 << 63)"));
    assert_eq!(stray::TAG_BIT, 1 << 63);
    assert_eq!(VECTORS_OFFSET % 2048, 0);
    // a 64-byte slot line holds release + mpidr + context + mode
    assert!(slot::MODE + 8 <= SLOT_SIZE as usize && state::EL + 8 <= STATE_SIZE as usize);
}
