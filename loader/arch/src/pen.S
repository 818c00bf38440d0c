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
 * Waiting (docs/protocol.md 3.3): the CPU sleeps where it can, so that a
 * parked vCPU costs nothing under QEMU TCG (where WFE does not sleep):
 * WFIT with a deadline where the CPU has FEAT_WFxT, else WFI woken every
 * wake period by its own generic timer through the GIC, else WFE. The wake
 * block at the end of this code says how (the loader fills it in). The timer
 * and GIC state it sets up is undone before the CPU leaves. While a loader
 * owns the pen it may ask for a longer timer period (the block's hold
 * period) and wakes the CPUs with SGI 15 when it changes it.
 *
 * Include with global_asm!(include_str!("pen.S")) (so: no curly braces in this
 * file, they are format placeholders there); the linker script must KEEP the
 * .pen section (ALIGN(64)).
 *
 * Every constant below is checked against loader/src/pen/ by a host test.
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
.equ PEN_ST_WAKES,           56            /* u32: returns from the wait instruction */
.equ PEN_ST_WAIT,            60            /* u32: [7:0] how this CPU waits (WAIT_*), [15:8] GICv2 CPU interface bit */
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

/* The wake block (loader/src/wake.rs): filled in by the loader that builds the pen. */
.equ WAKE_BLOCK_SIZE,        128
.equ WAKE_GIC_VERSION,       8             /* u32: 0 none, 2, 3 */
.equ WAKE_FLAGS,             12            /* u32: bit 0 = WFIT allowed */
.equ WAKE_PERIOD,            16            /* u64: counter ticks between wake-ups; 0 = WFE */
.equ WAKE_INTID_EL2,         24            /* u32: hypervisor physical timer INTID */
.equ WAKE_INTID_EL1,         28            /* u32: virtual timer INTID */
.equ WAKE_GICD,              32            /* u64 */
.equ WAKE_GICC,              40            /* u64 (v2) */
.equ WAKE_NR_GICR,           48            /* u32 (v3) */
.equ WAKE_HOLD_PERIOD,       56            /* u64: longer period while a loader owns the pen; 0 = none */
.equ WAKE_GICR,              64            /* (base u64, size u64) x WAKE_MAX_GICR */
.equ WAKE_MAX_GICR,          4
.equ WAKE_PMR,               0x80          /* priority mask while asleep; the timer PPI gets 0 */
.equ WAIT_WFE,               1
.equ WAIT_WFIT,              2
.equ WAIT_GICV2,             3
.equ WAIT_GICV3,             4
.equ WAKE_SGI,               15            /* the kick a loader sends after a release */
.equ GICD_CTLR,              0x000
.equ GICD_ISENABLER,         0x100
.equ GICD_ICENABLER,         0x180
.equ GICD_ICPENDR,           0x280
.equ GICD_IPRIORITYR,        0x400
.equ GICD_CPENDSGIR,         0xf10
.equ GICD_ITARGETSR,         0x800
.equ GICC_CTLR,              0x000
.equ GICC_PMR,               0x004
.equ GICR_CTLR,              0x0000        /* RD frame */
.equ GICR_WAKER,             0x0014
.equ GICR_TYPER,             0x0008
.equ GICR_FRAME,             0x20000       /* RD + SGI frames */
.equ GICR_SGI_OFFSET,        0x10000
.equ GICR_IGROUPR0,          0x0080        /* SGI frame */
.equ GICR_ISENABLER0,        0x0100
.equ GICR_ICENABLER0,        0x0180
.equ GICR_ICPENDR0,          0x0280
.equ GICR_IPRIORITYR,        0x0400
.equ GIC_POLL_LIMIT,         0x100000      /* bound on RWP / ChildrenAsleep polls */

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

    /*
     * Registers from here on: x9 EL, x10 pen base, x13 MPIDR, x14 mailbox,
     * x15 state record, x17 arrival kind; wake: x19 method, x20 period,
     * x21 GICC / SGI frame, x22 GICD, x23 timer INTID, x24 saved IGROUPR0,
     * x25 wake counter; x30 link for the wake subroutines.
     */

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
    bl      .Lpen_wake_setup            /* how to sleep: x19..x25 */

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
2:  bl      .Lpen_sleep
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
    bl      .Lpen_sleep
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
4:  bl      .Lpen_wake_teardown         /* timer off, GIC as we found it */
    str     x16, [x15, #PEN_ST_LAST_ENTRY]
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
    wfi                                 /* nothing wakes it on purpose: it stays */
    b       .Lpen_dead

/*
 * Chooses how this CPU waits and sets it up (called once per arrival, after
 * the EL check). Out: x19 method, x20 period, x21/x22 GIC bases, x23 INTID,
 * x24 saved IGROUPR0, x25 wake counter; state `wait` written. Clobbers
 * x0..x8. Any doubt -> WFE.
 */
.Lpen_wake_setup:
    mov     x19, #WAIT_WFE
    ldr     w25, [x15, #PEN_ST_WAKES]
    adr     x0, pen_wake_block
    ldr     x1, [x0]
    movz    x2, #0x4b50                 /* "PKBTWAKE" little-endian */
    movk    x2, #0x5442, lsl #16
    movk    x2, #0x4157, lsl #32
    movk    x2, #0x454b, lsl #48
    cmp     x1, x2
    b.ne    .Lws_done
    ldr     x20, [x0, #WAKE_PERIOD]
    cbz     x20, .Lws_done
    ldr     w1, [x0, #WAKE_FLAGS]
    tbz     w1, #0, 1f
    mrs     x2, s3_0_c0_c6_2            /* ID_AA64ISAR2_EL1 (RAZ where not implemented) */
    and     x2, x2, #0xf                /* WFxT */
    cmp     x2, #2
    b.lo    1f
    mov     x19, #WAIT_WFIT
    b       .Lws_done
1:  ldr     w23, [x0, #WAKE_INTID_EL1]  /* EL1: virtual timer */
    cmp     x9, #2
    b.ne    2f
    ldr     w23, [x0, #WAKE_INTID_EL2]  /* EL2: hypervisor physical timer */
2:  cmp     x23, #16
    b.lo    .Lws_done
    cmp     x23, #31
    b.hi    .Lws_done
    ldr     x22, [x0, #WAKE_GICD]
    cbz     x22, .Lws_done
    ldr     w1, [x0, #WAKE_GIC_VERSION]
    cmp     w1, #3
    b.eq    .Lws_v3
    cmp     w1, #2
    b.ne    .Lws_done

    /* GICv2: the PPI's enable and priority are banked per CPU in the distributor */
    ldr     x21, [x0, #WAKE_GICC]
    cbz     x21, .Lws_done
    add     x1, x22, #GICD_IPRIORITYR
    strb    wzr, [x1, x23]
    strb    wzr, [x1, #WAKE_SGI]
    mov     w2, #1
    lsl     w2, w2, w23
    orr     w2, w2, #(1 << WAKE_SGI)
    str     w2, [x22, #GICD_ISENABLER]
    mov     w1, #WAKE_PMR
    str     w1, [x21, #GICC_PMR]
    mov     w1, #1                      /* enable signalling (group 0, or NS group 1) */
    str     w1, [x21, #GICC_CTLR]
    mov     x19, #WAIT_GICV2
    ldrb    w1, [x22, #GICD_ITARGETSR]  /* banked: our own CPU interface bit, for kicks */
    orr     w1, w19, w1, lsl #8
    str     w1, [x15, #PEN_ST_WAIT]
    dsb     sy
    ret

.Lws_v3:
    mrs     x1, id_aa64pfr0_el1
    ubfx    x1, x1, #24, #4
    cbz     x1, .Lws_done               /* no system-register CPU interface */
    and     x3, x13, #0xffffff          /* our affinity as GICR_TYPER[63:32] has it */
    lsr     x4, x13, #32
    and     x4, x4, #0xff
    orr     x3, x3, x4, lsl #24
    ldr     w5, [x0, #WAKE_NR_GICR]
    cmp     w5, #WAKE_MAX_GICR
    b.hi    .Lws_done
    add     x6, x0, #WAKE_GICR          /* region cursor */
.Lws_region:
    cbz     w5, .Lws_done               /* not found: WFE */
    ldp     x7, x8, [x6], #16           /* base, size */
    add     x8, x7, x8                  /* end */
.Lws_frame:
    add     x1, x7, #GICR_FRAME
    cmp     x1, x8
    b.hi    .Lws_next_region
    ldr     x1, [x7, #GICR_TYPER]
    cmp     x3, x1, lsr #32
    b.eq    .Lws_found
    tbnz    x1, #4, .Lws_next_region    /* Last */
    add     x7, x7, #GICR_FRAME
    tbz     x1, #1, .Lws_frame          /* VLPIS: two more frames */
    add     x7, x7, #GICR_FRAME
    b       .Lws_frame
.Lws_next_region:
    sub     w5, w5, #1
    b       .Lws_region
.Lws_found:
    ldr     w1, [x7, #GICR_WAKER]       /* ProcessorSleep = 0 (RAZ/WI where secure-only) */
    bic     w1, w1, #2
    str     w1, [x7, #GICR_WAKER]
    mov     x2, #GIC_POLL_LIMIT
3:  ldr     w1, [x7, #GICR_WAKER]
    tbz     w1, #2, 4f                  /* ChildrenAsleep clear */
    subs    x2, x2, #1
    b.ne    3b
    b       .Lws_done
4:  add     x21, x7, #GICR_SGI_OFFSET
    cmp     x9, #2
    b.eq    5f
    mrs     x1, s3_0_c12_c12_5          /* ICC_SRE_EL1.SRE = 1 (booting.rst: EL2 allows it) */
    orr     x1, x1, #1
    msr     s3_0_c12_c12_5, x1
    isb
    mrs     x1, s3_0_c12_c12_5
    tbz     x1, #0, .Lws_done
    b       6f
5:  mrs     x1, s3_4_c12_c9_5           /* ICC_SRE_EL2.SRE, set above */
    tbz     x1, #0, .Lws_done
6:  ldr     w24, [x21, #GICR_IGROUPR0]  /* kept, restored when leaving */
    mov     w2, #1
    lsl     w2, w2, w23
    orr     w2, w2, #(1 << WAKE_SGI)
    orr     w1, w24, w2                 /* group 1 */
    str     w1, [x21, #GICR_IGROUPR0]
    add     x1, x21, #GICR_IPRIORITYR
    strb    wzr, [x1, x23]
    strb    wzr, [x1, #WAKE_SGI]
    str     w2, [x21, #GICR_ISENABLER0]
    mrs     x1, s3_0_c12_c12_4          /* ICC_CTLR_EL1.EOImode = 0 (never acknowledged anyway) */
    bic     x1, x1, #2
    msr     s3_0_c12_c12_4, x1
    mov     x1, #WAKE_PMR
    msr     s3_0_c4_c6_0, x1            /* ICC_PMR_EL1 */
    mov     x1, #1
    msr     s3_0_c12_c12_7, x1          /* ICC_IGRPEN1_EL1 */
    isb
    mov     x19, #WAIT_GICV3
.Lws_done:
    str     w19, [x15, #PEN_ST_WAIT]
    dsb     sy
    ret

/*
 * Waits once: until the wake period passes or an event/interrupt arrives.
 * Counts the wake-up in the state record. Clobbers x0, x1.
 */
.Lpen_sleep:
    cmp     x19, #WAIT_WFIT
    b.eq    1f
    cmp     x19, #WAIT_GICV2
    b.hs    2f
    wfe
    b       9f
1:  mrs     x0, cntvct_el0              /* WFxT compares with the virtual count */
    add     x0, x0, x20
    .inst   0xd5031020                  /* wfit x0 */
    b       9f
2:  adr     x1, pen_wake_block          /* the owning loader may ask for a longer */
    ldr     x1, [x1, #WAKE_HOLD_PERIOD] /* period: it kicks with an SGI on release */
    cmp     x1, x20
    csel    x1, x1, x20, hi             /* x1: max(hold period, period) */
    cmp     x9, #2
    b.ne    3f
    mrs     x0, cntpct_el0
    add     x0, x0, x1
    msr     cnthp_cval_el2, x0          /* a new deadline also drops the interrupt */
    mov     x0, #1
    msr     cnthp_ctl_el2, x0
    b       4f
3:  mrs     x0, cntvct_el0
    add     x0, x0, x1
    msr     cntv_cval_el0, x0
    mov     x0, #1
    msr     cntv_ctl_el0, x0
4:  isb
    ldr     w0, [x22, #GICD_CTLR]       /* distributor off (an OS reprogramming it): */
    tst     w0, #3                      /* nothing would wake a WFI; use WFE */
    b.eq    5f
    dsb     sy
    wfi
    cmp     x19, #WAIT_GICV3            /* a kick stays pending until cleared */
    b.eq    6f
    mov     w0, #0xff
    add     x1, x22, #GICD_CPENDSGIR
    strb    w0, [x1, #WAKE_SGI]
    b       9f
6:  mov     w0, #(1 << WAKE_SGI)
    str     w0, [x21, #GICR_ICPENDR0]
    b       9f
5:  wfe
9:  add     w25, w25, #1
    str     w25, [x15, #PEN_ST_WAKES]
    ret

/*
 * Before leaving the pen: the timer off, its interrupt disabled and not
 * pending, the priority mask and group enable back to reset (0), IGROUPR0 as
 * found. Clobbers x0..x3.
 */
.Lpen_wake_teardown:
    cmp     x19, #WAIT_GICV2
    b.lo    9f
    cmp     x9, #2
    b.ne    1f
    msr     cnthp_ctl_el2, xzr
    b       2f
1:  msr     cntv_ctl_el0, xzr
2:  isb
    mov     w2, #1
    lsl     w2, w2, w23
    orr     w2, w2, #(1 << WAKE_SGI)
    cmp     x19, #WAIT_GICV3
    b.eq    3f
    str     wzr, [x21, #GICC_CTLR]
    str     wzr, [x21, #GICC_PMR]
    str     w2, [x22, #GICD_ICENABLER]
    str     w2, [x22, #GICD_ICPENDR]
    mov     w0, #0xff
    add     x1, x22, #GICD_CPENDSGIR
    strb    w0, [x1, #WAKE_SGI]
    b       8f
3:  msr     s3_0_c12_c12_7, xzr         /* ICC_IGRPEN1_EL1 */
    msr     s3_0_c4_c6_0, xzr           /* ICC_PMR_EL1 */
    isb
    str     w2, [x21, #GICR_ICENABLER0]
    str     w2, [x21, #GICR_ICPENDR0]
    str     w24, [x21, #GICR_IGROUPR0]
    sub     x1, x21, #GICR_SGI_OFFSET
    mov     x3, #GIC_POLL_LIMIT
4:  ldr     w0, [x1, #GICR_CTLR]        /* RWP: the disable has taken effect */
    tbz     w0, #3, 8f
    subs    x3, x3, #1
    b.ne    4b
8:  dsb     sy
9:  ret

    .balign 8
.global pen_wake_block
pen_wake_block:                         /* WAKE_BLOCK_SIZE bytes, written by the loader */
    .fill   WAKE_BLOCK_SIZE, 1, 0
pen_code_end:
.popsection
