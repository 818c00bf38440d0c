/*
 * parkboot spin pen: the code every secondary CPU runs while the loader (or,
 * later, an OS) does not own it. Specification: docs/protocol.md.
 *
 * This code is COPIED at run time to <pen base> + PEN_CODE_OFFSET and runs
 * from the copy with the MMU off. It therefore uses only PC-relative
 * addressing of its own copy (adr) plus offsets from the pen header; it
 * references no symbol outside [pen_code_start, pen_code_end), uses no
 * literal pool, no stack and no memory other than the pen region.
 *
 * Entry points (both: MMU off, at EL1 or EL2, any DAIF, x0..x30 and sp don't
 * matter):
 *   pen_entry  first arrival of a CPU (PSCI CPU_ON from the loader, or release
 *              from an older pen / foreign spin-table). x0 may be the slot's
 *              address or anything else: it is ignored; the slot is always
 *              found by MPIDR.
 *   pen_park   = the DT cpu-park-addr. The OS zeroed this CPU's release word
 *              and cleaned it to PoC before branching here, at the EL the CPU
 *              was released at.
 *
 * Include with global_asm!(include_str!("pen.S")) (so: no curly braces in this
 * file, they are format placeholders there); the linker script must KEEP the
 * .pen section (ALIGN(64)).
 *
 * Every constant below is checked against loader/src/pen.rs by a host test.
 */

.equ PEN_CODE_OFFSET,        0x80          /* code starts this far into the pen */
.equ PEN_BASE_ALIGN_MASK,    0xfff         /* pen base is 4 KiB aligned */
.equ PEN_HDR_MAGIC,          0             /* u64 "PKBTPEN1" */
.equ PEN_HDR_TOTAL_SIZE,     16            /* u64 */
.equ PEN_HDR_PHYS_BASE,      24            /* u64 */
.equ PEN_HDR_SLOT_OFFSET,    40            /* u32 */
.equ PEN_HDR_NR_SLOTS,       48            /* u32 */
.equ PEN_HDR_ENTRY_EL,       52            /* u32 */
.equ PEN_HDR_STATE_OFFSET,   64            /* u32 */
.equ PEN_MAX_SLOTS,          1024
.equ PEN_SLOT_SHIFT,         6             /* mailbox slot = 64 bytes */
.equ PEN_SLOT_SIZE,          64
.equ PEN_SLOT_RELEASE,       0             /* u64: entry address, 0 = hold */
.equ PEN_SLOT_MPIDR,         8             /* u64: Aff3..Aff0 of the owner */
.equ PEN_SLOT_CONTEXT,       16            /* u64: x0 for mode 1 */
.equ PEN_SLOT_MODE,          24            /* u64: 0 branch, 1 eret to EL1h */
.equ PEN_STATE_SIZE,         64            /* pen-written state record */
.equ PEN_ST_STATUS,          0
.equ PEN_ST_MPIDR,           8
.equ PEN_ST_ENTRIES,         16
.equ PEN_ST_PARKS,           24
.equ PEN_ST_RELEASES,        32
.equ PEN_ST_LAST_ENTRY,      40
.equ PEN_ST_EL,              48
.equ PEN_STATUS_WAITING,     1
.equ PEN_STATUS_RELEASED,    2
.equ PEN_STATUS_PARKED,      3
.equ PEN_STATUS_REFUSED,     4
.equ PEN_STATUS_UNARMED,     5
.equ PEN_MODE_BRANCH,        0
.equ PEN_MODE_ERET_EL1,      1
.equ PEN_SCTLR_EL2_OFF,      0x30c50830    /* RES1 bits; MMU, caches off */
.equ PEN_SCTLR_EL1_OFF,      0x30d00800    /* RES1 bits; MMU, caches off */
.equ PEN_SPSR_EL1H_MASKED,   0x3c5         /* DAIF masked, EL1h */

.pushsection .pen, "ax"
.balign 64
.global pen_code_start
.global pen_code_end
.global pen_entry
.global pen_park

pen_code_start:
.Lpen_start:                            /* local alias: adr to it needs no relocation */
pen_entry:
    mov     x17, #0                     /* x17: 0 = first arrival, 1 = park */
    b       .Lpen_common
pen_park:
    mov     x17, #1

.Lpen_common:
    msr     daifset, #0xf

    /* ---- re-establish a fresh CPU's EL state ---- */
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2              /* x9: current EL */
    cmp     x9, #2
    b.eq    .Lpen_el2
    cmp     x9, #1
    b.ne    .Lpen_dead                  /* EL3 (or anything else): never run OS code */

    movz    x0, #(PEN_SCTLR_EL1_OFF & 0xffff)
    movk    x0, #(PEN_SCTLR_EL1_OFF >> 16), lsl #16
    msr     sctlr_el1, x0
    isb
    mov     x0, #(3 << 20)              /* CPACR_EL1.FPEN: no FP/SIMD traps */
    msr     cpacr_el1, x0
    b       .Lpen_el_done

.Lpen_el2:
    movz    x0, #(PEN_SCTLR_EL2_OFF & 0xffff)
    movk    x0, #(PEN_SCTLR_EL2_OFF >> 16), lsl #16
    msr     sctlr_el2, x0
    isb
    mov     x0, #(1 << 31)              /* HCR_EL2: RW only (E2H=0, TGE=0, VM=0) */
    msr     hcr_el2, x0
    isb
    mov     x0, #0x33ff                 /* CPTR_EL2 (nVHE layout): RES1, TFP=0 */
    msr     cptr_el2, x0
    mov     x0, #3                      /* CNTHCTL_EL2: EL1PCTEN | EL1PCEN */
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    msr     vttbr_el2, xzr
    msr     mdcr_el2, xzr
    mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #24, #4             /* GIC system-register interface? */
    cbz     x0, .Lpen_el_done
    mrs     x0, s3_4_c12_c9_5           /* ICC_SRE_EL2 */
    orr     x0, x0, #(1 << 0)           /* SRE */
    orr     x0, x0, #(1 << 3)           /* Enable */
    msr     s3_4_c12_c9_5, x0
.Lpen_el_done:
    isb

    /* ---- find and check our own pen header (nothing is written before this passes) ---- */
    adr     x10, .Lpen_start
    sub     x10, x10, #PEN_CODE_OFFSET  /* x10: pen base (physical: MMU is off) */
    tst     x10, #PEN_BASE_ALIGN_MASK
    b.ne    .Lpen_dead
    ldr     x0, [x10, #PEN_HDR_MAGIC]
    movz    x1, #0x4b50                 /* "PKBTPEN1" little-endian */
    movk    x1, #0x5442, lsl #16
    movk    x1, #0x4550, lsl #32
    movk    x1, #0x314e, lsl #48
    cmp     x0, x1
    b.ne    .Lpen_dead
    ldr     x0, [x10, #PEN_HDR_PHYS_BASE]
    cmp     x0, x10
    b.ne    .Lpen_dead
    ldr     x11, [x10, #PEN_HDR_TOTAL_SIZE]
    ldr     w12, [x10, #PEN_HDR_NR_SLOTS]
    cmp     x12, #PEN_MAX_SLOTS
    b.hi    .Lpen_dead
    lsl     x2, x12, #PEN_SLOT_SHIFT    /* bytes of one array (slots and states alike) */
    ldr     w14, [x10, #PEN_HDR_SLOT_OFFSET]
    ldr     w15, [x10, #PEN_HDR_STATE_OFFSET]
    orr     x0, x14, x15
    tst     x0, #(PEN_SLOT_SIZE - 1)    /* both arrays 64-byte aligned */
    b.ne    .Lpen_dead
    add     x0, x14, x2
    cmp     x0, x11
    b.hi    .Lpen_dead
    add     x0, x15, x2
    cmp     x0, x11
    b.hi    .Lpen_dead
    add     x14, x10, x14               /* x14: mailbox slot cursor */
    add     x15, x10, x15               /* x15: state record cursor */

    /* ---- find our slot by MPIDR (bounded by nr_slots) ---- */
    mrs     x13, mpidr_el1
    movz    x0, #0xffff                 /* Aff3..Aff0: 0xff_00ff_ffff */
    movk    x0, #0xff, lsl #16
    movk    x0, #0xff, lsl #32
    and     x13, x13, x0                /* x13: our MPIDR */
.Lpen_scan:
    cbz     x12, .Lpen_dead             /* no slot for us: never write, never jump */
    ldr     x0, [x14, #PEN_SLOT_MPIDR]
    cmp     x0, x13
    b.eq    .Lpen_found
    add     x14, x14, #PEN_SLOT_SIZE
    add     x15, x15, #PEN_STATE_SIZE
    sub     x12, x12, #1
    b       .Lpen_scan

.Lpen_found:
    /* diagnostics: who arrived, at which EL, how (entries / parks counters) */
    str     x13, [x15, #PEN_ST_MPIDR]
    str     x9, [x15, #PEN_ST_EL]
    mov     x0, #PEN_ST_ENTRIES
    cbz     x17, 1f
    mov     x0, #PEN_ST_PARKS
1:  ldr     x1, [x15, x0]
    add     x1, x1, #1
    str     x1, [x15, x0]
    ldr     w0, [x10, #PEN_HDR_ENTRY_EL]
    cmp     x0, x9
    b.ne    .Lpen_refuse                /* wrong EL: stay here for good */

    /*
     * Arm: only a release word observed as 0 after arrival arms the CPU, so a
     * stale entry left by an OS that did not zero the word is never jumped to.
     * While the word is non-zero the status says UNARMED.
     */
.Lpen_unarmed:
    mov     x2, #0                      /* x2: UNARMED already published */
.Lpen_arm:
    dc      civac, x14                  /* see the writer's data even if it forgot to clean */
    dsb     sy
    ldr     x0, [x14, #PEN_SLOT_RELEASE]
    cbz     x0, .Lpen_armed
    cbnz    x2, 2f
    mov     x1, #PEN_STATUS_UNARMED
    str     x1, [x15, #PEN_ST_STATUS]
    dsb     sy
    mov     x2, #1
2:  wfe
    b       .Lpen_arm

.Lpen_armed:
    mov     x1, #PEN_STATUS_WAITING
    cbz     x17, 3f
    mov     x1, #PEN_STATUS_PARKED
3:  str     x1, [x15, #PEN_ST_STATUS]
    dsb     sy
    sev                                 /* wake an observer waiting in WFE */

    /* ---- hold: wait for a non-zero release word ---- */
.Lpen_wait:
    dc      civac, x14
    dsb     sy
    ldr     x16, [x14, #PEN_SLOT_RELEASE]
    cbnz    x16, .Lpen_go
    wfe
    b       .Lpen_wait

.Lpen_go:
    /* validate: 4-byte aligned entry, known mode (eret only from EL2) */
    tst     x16, #3
    b.ne    .Lpen_unarmed               /* not a release: publish UNARMED, wait for 0 */
    ldr     x4, [x14, #PEN_SLOT_MODE]
    ldr     x5, [x14, #PEN_SLOT_CONTEXT]
    cbz     x4, 4f
    cmp     x4, #PEN_MODE_ERET_EL1
    b.ne    .Lpen_unarmed
    cmp     x9, #2
    b.ne    .Lpen_unarmed
4:  str     x16, [x15, #PEN_ST_LAST_ENTRY]
    ldr     x1, [x15, #PEN_ST_RELEASES]
    add     x1, x1, #1
    str     x1, [x15, #PEN_ST_RELEASES]
    mov     x1, #PEN_STATUS_RELEASED
    str     x1, [x15, #PEN_ST_STATUS]
    dsb     sy
    sev
    ic      iallu                       /* no stale lines for the OS's entry code */
    dsb     nsh
    isb
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    cbnz    x4, 5f
    mov     x0, xzr                     /* mode 0 (spin-table): x0..x3 = 0, same EL */
    br      x16

5:  /* mode 1 (PSCI CPU_ON for an EL1 OS): ERET to EL1h, MMU off, x0 = context */
    movz    x0, #(PEN_SCTLR_EL1_OFF & 0xffff)
    movk    x0, #(PEN_SCTLR_EL1_OFF >> 16), lsl #16
    msr     sctlr_el1, x0
    mov     x0, #(3 << 20)
    msr     cpacr_el1, x0
    mov     x0, #PEN_SPSR_EL1H_MASKED
    msr     spsr_el2, x0
    msr     elr_el2, x16
    mov     x0, x5
    isb
    eret

.Lpen_refuse:
    mov     x1, #PEN_STATUS_REFUSED
    str     x1, [x15, #PEN_ST_STATUS]
    dsb     sy
.Lpen_dead:
    wfe
    b       .Lpen_dead
    .balign 8
pen_code_end:
.popsection
