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
 * Entry points (both: MMU off, at EL1, EL2 or (resident pens) EL3, any DAIF,
 * x0..x30 and sp don't matter):
 *   pen_entry  first arrival of a CPU (PSCI CPU_ON from the loader, or release
 *              from an older pen / foreign spin-table). x0 may be the slot's
 *              address or anything else: it is ignored; the slot is always
 *              found by MPIDR.
 *   pen_park   = the DT cpu-park-addr. The OS zeroed this CPU's release word
 *              and cleaned it to PoC before branching here, at the EL the CPU
 *              was released at.
 *
 * Exceptions (docs/protocol.md 3.4): the first thing a CPU does after masking
 * DAIF is to point VBAR of its EL at the pen's own vector table (at pen base +
 * PEN_VECTORS_OFFSET, 2 KiB aligned because the base is 4 KiB aligned). A
 * fault anywhere in the pen, or in whatever a release jumped to before it
 * installed vectors of its own, is recorded in the CPU's state record
 * (FAULTED, with ELR and ESR) and the CPU stays in the pen.
 *
 * Strays (docs/protocol.md 2.5): a CPU that finds no slot for its MPIDR
 * records itself in the stray records after the state array and stays.
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
.equ PEN_VECTORS_OFFSET,     0x800         /* the vector table, from the pen base (VBAR) */
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
.equ PEN_ST_LAST_ENTRY,      40            /* FAULTED: ELR of the fault */
.equ PEN_ST_EL,              48            /* FAULTED: EL | vector << 8 | ESR << 32 */
.equ PEN_ST_WAKES,           56            /* u32: returns from the wait instruction */
.equ PEN_ST_WAIT,            60            /* u32: [7:0] how this CPU waits (WAIT_*), [15:8] GICv2 CPU interface bit */
.equ PEN_STATUS_WAITING,     1
.equ PEN_STATUS_RELEASED,    2
.equ PEN_STATUS_PARKED,      3
.equ PEN_STATUS_REFUSED,     4
.equ PEN_STATUS_UNARMED,     5
.equ PEN_STATUS_FAULTED,     6
.equ PEN_STRAY_SIZE,         64            /* stray records follow the state array */
.equ PEN_MAX_STRAYS,         64
.equ PEN_STRAY_TAG,          0             /* u64: MPIDR | 1 << 63; 0 = free */
.equ PEN_STRAY_ARRIVALS,     8             /* u64 */
.equ PEN_STRAY_EL,           16            /* u64: CurrentEL at the last arrival */
.equ PEN_STRAY_HOW,          24            /* u64: 0 pen_entry, 1 pen_park, 2 fault */
.equ PEN_STRAY_HOW_FAULT,    2
.equ PEN_MODE_BRANCH,        0
.equ PEN_MODE_ERET_EL1,      1
.equ PEN_SCTLR_EL2_OFF,      0x30c50830    /* RES1 bits; MMU, caches off (EL3: the same) */
.equ PEN_SCTLR_EL1_OFF,      0x30d00800    /* RES1 bits; MMU, caches off */
.equ PEN_SPSR_EL1H_MASKED,   0x3c5         /* DAIF masked, EL1h */
.equ PEN_CPTR_EL2_NVHE,      0x33ff        /* nVHE layout: RES1, TFP=0; TZ, TSM set (trap SVE, SME) */
.equ PEN_FAULT_TAG,          0xfa17        /* x26 while the fault handler runs */

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
    msr     spsel, #1                   /* SP_ELx: only the vector table's SPx half is ever used */
    mov     x26, xzr                    /* not in the fault handler */

    /*
     * Registers from here on: x8 entry_el, x9 EL, x10 pen base, x11 total
     * size, x13 MPIDR, x14 mailbox, x15 state record, x17 arrival kind; wake:
     * x19 method, x20 period, x21 GICC / SGI frame, x22 GICD, x23 timer INTID,
     * x24 saved IGROUPR0, x25 wake counter; x30 link for the subroutines.
     */
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2              /* x9: current EL */
    adr     x10, .Lpen_start
    sub     x10, x10, #PEN_CODE_OFFSET  /* x10: pen base (physical: MMU is off) */
    tst     x10, #PEN_BASE_ALIGN_MASK
    b.ne    .Lpen_dead                  /* not a pen: no vectors, nothing written */

    /* ---- our own vectors, before anything that can fault ---- */
    add     x0, x10, #PEN_VECTORS_OFFSET
    cmp     x9, #2
    b.eq    2f
    cmp     x9, #1
    b.eq    1f
    cmp     x9, #3
    b.ne    .Lpen_dead                  /* EL0: cannot be */
    msr     vbar_el3, x0
    b       3f
1:  msr     vbar_el1, x0
    b       3f
2:  msr     vbar_el2, x0
3:  isb

    /* ---- find and check our own pen header (nothing is written before this passes) ---- */
    bl      .Lpen_header                /* x8, x11, x12, x14, x15; or dead */
    cmp     x9, x8
    b.ne    4f                          /* wrong EL: its registers are not ours to set */
    bl      .Lpen_el_init
4:  bl      .Lpen_find_slot             /* x13, x14, x15; x14 = 0: no slot */
    cbz     x14, .Lpen_stray

    /* diagnostics: who arrived, at which EL, how (entries / parks counters) */
    str     x13, [x15, #PEN_ST_MPIDR]
    str     x9, [x15, #PEN_ST_EL]
    mov     x0, #PEN_ST_ENTRIES
    cbz     x17, 1f
    mov     x0, #PEN_ST_PARKS
1:  ldr     x1, [x15, x0]
    add     x1, x1, #1
    str     x1, [x15, x0]
    cmp     x8, x9
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
    cbnz    x4, 5f
    mov     x0, xzr                     /* mode 0 (spin-table): x0..x3 = 0, same EL */
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x16

5:  /* mode 1 (PSCI CPU_ON for an EL1 OS): ERET to EL1h, MMU off, x0 = context */
    mov     x27, x5
    bl      .Lpen_el1_entry_state       /* booting.rst's EL1 entry state, EL2 side */
    mov     x0, #PEN_SPSR_EL1H_MASKED
    msr     spsr_el2, x0
    msr     elr_el2, x16
    mov     x0, x27
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
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
 * A CPU with no slot for its MPIDR (docs/protocol.md 2.5): record it in the
 * stray records after the state array (x13 MPIDR, x9 EL, x17 how), then stay.
 * A free record is taken by writing its tag; the first probe is a hash of the
 * MPIDR, so strays arriving together rarely meet in one record (if they do,
 * the record still says that a stray is here). Clobbers x0..x7.
 */
.Lpen_stray:
    ldr     w0, [x10, #PEN_HDR_STATE_OFFSET]
    ldr     w1, [x10, #PEN_HDR_NR_SLOTS]
    add     x0, x0, x1, lsl #PEN_SLOT_SHIFT     /* x0: offset of the stray records */
    subs    x1, x11, x0
    b.ls    .Lpen_dead                  /* no room (a pen of an older loader) */
    lsr     x1, x1, #6                  /* x1: records that fit */
    cbz     x1, .Lpen_dead
    cmp     x1, #PEN_MAX_STRAYS
    mov     x2, #PEN_MAX_STRAYS
    csel    x1, x1, x2, lo              /* x1: number of records */
    add     x0, x10, x0                 /* x0: first record */
    orr     x3, x13, #(1 << 63)         /* x3: our tag */
    eor     x4, x13, x13, lsr #8
    eor     x4, x4, x13, lsr #16
    eor     x4, x4, x13, lsr #32
    and     x4, x4, #0xff
    udiv    x5, x4, x1
    msub    x4, x5, x1, x4              /* x4: first probe */
    mov     x5, x1                      /* x5: probes left */
1:  add     x6, x0, x4, lsl #6
    ldr     x7, [x6, #PEN_STRAY_TAG]
    cmp     x7, x3
    b.eq    2f
    cbz     x7, 2f
    add     x4, x4, #1
    cmp     x4, x1
    csel    x4, xzr, x4, hs
    subs    x5, x5, #1
    b.ne    1b
    b       .Lpen_dead                  /* all taken by others: nothing to add */
2:  str     x3, [x6, #PEN_STRAY_TAG]
    ldr     x7, [x6, #PEN_STRAY_ARRIVALS]
    add     x7, x7, #1
    str     x7, [x6, #PEN_STRAY_ARRIVALS]
    str     x9, [x6, #PEN_STRAY_EL]
    str     x17, [x6, #PEN_STRAY_HOW]
    dsb     sy
    sev
    b       .Lpen_dead

/*
 * A fresh CPU's state of the EL the pen runs at (x9 = entry_el). At EL2 the
 * registers a VHE kernel may leave (E2H, TGE) are cleared; where E2H is RES1
 * (a CPU without FEAT_E2H0) it reads back 1 and the E2H layouts of CPTR_EL2
 * and CNTHCTL_EL2 are used. Clobbers x0..x3, x7.
 */
.Lpen_el_init:
    mov     x7, x30
    cmp     x9, #2
    b.eq    2f
    cmp     x9, #3
    b.eq    3f
    movz    x0, #(PEN_SCTLR_EL1_OFF & 0xffff)  /* EL1 */
    movk    x0, #(PEN_SCTLR_EL1_OFF >> 16), lsl #16
    msr     sctlr_el1, x0
    isb
    mov     x0, #(3 << 20)              /* CPACR_EL1.FPEN: no FP/SIMD traps */
    msr     cpacr_el1, x0
    b       9f
3:  movz    x0, #(PEN_SCTLR_EL2_OFF & 0xffff)  /* EL3 (a resident pen): MMU, caches off */
    movk    x0, #(PEN_SCTLR_EL2_OFF >> 16), lsl #16
    msr     sctlr_el3, x0
    b       9f
2:  movz    x0, #(PEN_SCTLR_EL2_OFF & 0xffff)
    movk    x0, #(PEN_SCTLR_EL2_OFF >> 16), lsl #16
    msr     sctlr_el2, x0
    isb
    mov     x0, #(1 << 31)              /* HCR_EL2: RW only (E2H=0, TGE=0, VM=0) */
    msr     hcr_el2, x0
    isb
    mrs     x3, hcr_el2
    ubfx    x3, x3, #34, #1             /* x3: E2H stuck at 1 */
    mov     x0, #PEN_CPTR_EL2_NVHE
    mov     x1, #(3 << 20)              /* E2H layout: FPEN = 0b11, no traps */
    cmp     x3, #0
    csel    x0, x1, x0, ne
    msr     cptr_el2, x0
    mov     x0, #3                      /* CNTHCTL_EL2: EL1PCTEN | EL1PCEN */
    mov     x1, #(3 << 10)              /* (E2H layout: bits 10, 11) */
    csel    x0, x1, x0, ne
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    msr     vttbr_el2, xzr
    bl      .Lpen_mdcr_el2_value
    msr     mdcr_el2, x0
    mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #24, #4             /* GIC system-register interface? */
    cbz     x0, 9f
    mrs     x0, s3_4_c12_c9_5           /* ICC_SRE_EL2 */
    orr     x0, x0, #(1 << 0)           /* SRE */
    orr     x0, x0, #(1 << 3)           /* Enable */
    msr     s3_4_c12_c9_5, x0
9:  isb
    ret     x7

/*
 * MDCR_EL2 with no traps and HPMN = PMCR_EL0.N (every counter to EL1, where a
 * PMU is implemented). Out: x0. Clobbers x1.
 */
.Lpen_mdcr_el2_value:
    mov     x0, xzr
    mrs     x1, id_aa64dfr0_el1
    ubfx    x1, x1, #8, #4              /* PMUVer */
    cbz     x1, 1f
    cmp     x1, #0xf                    /* IMPLEMENTATION DEFINED PMU */
    b.eq    1f
    mrs     x1, pmcr_el0
    ubfx    x0, x1, #11, #5             /* N -> HPMN */
1:  ret

/*
 * booting.rst's state for a kernel entered at EL1 while EL2 is present, set
 * from EL2 right before a mode-1 ERET: pointer authentication, MTE tags, SVE
 * and SME not trapped (their vector lengths at the maximum), every PMU counter
 * visible (HPMN = N), SPE and TRBE buffers owned by EL1, HCRX_EL2 and the
 * fine-grained trap registers set so that nothing a feature adds traps, the
 * AMU counters on, VPIDR/VMPIDR the real IDs, GICv3 system registers enabled
 * (done at arrival). Where HCR_EL2.E2H is RES1 it stays 1 (TGE 0) and CPTR_EL2
 * takes its E2H layout. Clobbers x0..x8.
 */
.Lpen_el1_entry_state:
    mov     x8, x30
    /* HCR_EL2: RW; APK | API with PAuth; ATA with MTE2 */
    mov     x0, #(1 << 31)
    mrs     x1, id_aa64isar1_el1
    mov     x2, #0xff0                  /* APA 7:4, API 11:8 */
    movk    x2, #0xff00, lsl #16        /* GPA 27:24, GPI 31:28 */
    tst     x1, x2
    b.ne    1f
    mrs     x1, s3_0_c0_c6_2            /* ID_AA64ISAR2_EL1: APA3 15:12, GPA3 11:8 */
    tst     x1, #0xff00
    b.eq    2f
1:  orr     x0, x0, #(3 << 40)          /* APK, API */
2:  mrs     x1, id_aa64pfr1_el1
    ubfx    x1, x1, #8, #4              /* MTE */
    cmp     x1, #2
    b.lo    3f
    orr     x0, x0, #(1 << 56)          /* ATA */
3:  msr     hcr_el2, x0
    isb
    mrs     x3, hcr_el2
    ubfx    x3, x3, #34, #1             /* x3: E2H stuck at 1 */
    mrs     x4, id_aa64pfr0_el1
    ubfx    x4, x4, #32, #4             /* x4: SVE */
    mrs     x5, id_aa64pfr1_el1
    ubfx    x5, x5, #24, #4             /* x5: SME */
    /* CPTR_EL2: nothing trapped */
    cbnz    x3, 4f
    mov     x0, #PEN_CPTR_EL2_NVHE
    cbz     x4, 5f
    bic     x0, x0, #(1 << 8)           /* TZ */
5:  cbz     x5, 6f
    bic     x0, x0, #(1 << 12)          /* TSM */
    b       6f
4:  mov     x0, #(3 << 20)              /* E2H layout: FPEN */
    cbz     x4, 5f
    orr     x0, x0, #(3 << 16)          /* ZEN */
5:  cbz     x5, 6f
    orr     x0, x0, #(3 << 24)          /* SMEN */
6:  msr     cptr_el2, x0
    isb
    cbz     x4, 7f
    mov     x0, #0x1ff                  /* ZCR_EL2.LEN: the maximum */
    msr     s3_4_c1_c2_0, x0
7:  cbz     x5, 8f
    mov     x0, #0x1ff                  /* SMCR_EL2.LEN: the maximum */
    mrs     x1, s3_0_c0_c4_5            /* ID_AA64SMFR0_EL1 */
    tbz     x1, #63, 1f
    orr     x0, x0, #(1 << 31)          /* FA64 */
1:  ubfx    x1, x1, #56, #4             /* SMEver */
    cbz     x1, 2f
    orr     x0, x0, #(1 << 30)          /* EZT0 (SME2) */
2:  msr     s3_4_c1_c2_6, x0
8:  /* MDCR_EL2: HPMN = N; SPE and TRBE owned by EL1 */
    bl      .Lpen_mdcr_el2_value
    mrs     x1, id_aa64dfr0_el1
    ubfx    x2, x1, #32, #4             /* PMSVer */
    cbz     x2, 1f
    orr     x0, x0, #(3 << 12)          /* E2PB */
1:  ubfx    x2, x1, #44, #4             /* TraceBuffer */
    cbz     x2, 2f
    orr     x0, x0, #(3 << 24)          /* E2TB */
2:  msr     mdcr_el2, x0
    /* HCRX_EL2 (FEAT_HCX) */
    mrs     x1, id_aa64mmfr1_el1
    ubfx    x1, x1, #40, #4
    cbz     x1, 3f
    mov     x0, xzr
    mrs     x1, s3_0_c0_c6_2            /* ID_AA64ISAR2_EL1.MOPS */
    ubfx    x1, x1, #16, #4
    cbz     x1, 1f
    orr     x0, x0, #(1 << 11)          /* MSCEn */
1:  mrs     x1, s3_0_c0_c7_3            /* ID_AA64MMFR3_EL1.TCRX */
    ubfx    x1, x1, #0, #4
    cbz     x1, 2f
    orr     x0, x0, #(1 << 14)          /* TCR2En */
2:  mrs     x1, id_aa64pfr1_el1
    ubfx    x1, x1, #44, #4             /* GCS */
    cbz     x1, 4f
    orr     x0, x0, #(1 << 22)          /* GCSEn */
4:  msr     s3_4_c1_c2_2, x0            /* HCRX_EL2 */
3:  /* fine-grained traps (FEAT_FGT): none, the negative ("n") bits set where implemented */
    mrs     x1, id_aa64mmfr0_el1
    ubfx    x1, x1, #56, #4
    cbz     x1, 9f
    mov     x0, xzr                     /* x0: HFGRTR/HFGWTR */
    mov     x6, xzr                     /* x6: HFGITR */
    mov     x7, xzr                     /* x7: HDFGRTR (HDFGWTR without bit 59) */
    cbz     x5, 1f
    orr     x0, x0, #(3 << 54)          /* nTPIDR2_EL0, nSMPRI_EL1 */
1:  mrs     x1, s3_0_c0_c7_3            /* ID_AA64MMFR3_EL1 */
    ubfx    x2, x1, #8, #4              /* S1PIE */
    cbz     x2, 2f
    orr     x0, x0, #(3 << 57)          /* nPIR_EL1, nPIRE0_EL1 */
2:  ubfx    x2, x1, #16, #4             /* S1POE */
    cbz     x2, 3f
    orr     x0, x0, #(3 << 59)          /* nPOR_EL1, nPOR_EL0 */
3:  mrs     x1, id_aa64pfr1_el1
    ubfx    x1, x1, #44, #4             /* GCS */
    cbz     x1, 4f
    orr     x0, x0, #(3 << 52)          /* nGCS_EL1, nGCS_EL0 */
    orr     x6, x6, #(7 << 57)          /* nGCSEPP, nGCSSTR_EL1, nGCSPUSHM_EL1 */
4:  mrs     x1, id_aa64dfr0_el1
    ubfx    x1, x1, #52, #4             /* BRBE */
    cbz     x1, 5f
    orr     x6, x6, #(3 << 55)          /* nBRBIALL, nBRBINJ */
    orr     x7, x7, #(7 << 59)          /* nBRBDATA, nBRBCTL, nBRBIDR */
5:  msr     s3_4_c1_c1_4, x0            /* HFGRTR_EL2 */
    msr     s3_4_c1_c1_5, x0            /* HFGWTR_EL2 */
    msr     s3_4_c1_c1_6, x6            /* HFGITR_EL2 */
    msr     s3_4_c3_c1_4, x7            /* HDFGRTR_EL2 */
    bic     x7, x7, #(1 << 59)          /* (nBRBIDR is read-only) */
    msr     s3_4_c3_c1_5, x7            /* HDFGWTR_EL2 */
9:  /* AMU: the architected counters on */
    mrs     x1, id_aa64pfr0_el1
    ubfx    x1, x1, #44, #4
    cbz     x1, 1f
    mov     x0, #0xf
    msr     s3_3_c13_c2_5, x0           /* AMCNTENSET0_EL0 */
1:  mrs     x0, midr_el1                /* EL1 reads the real IDs */
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    msr     hstr_el2, xzr
    movz    x0, #(PEN_SCTLR_EL1_OFF & 0xffff)
    movk    x0, #(PEN_SCTLR_EL1_OFF >> 16), lsl #16
    msr     sctlr_el1, x0
    mov     x0, #(3 << 20)
    msr     cpacr_el1, x0
    isb
    ret     x8

/*
 * The exception vectors (VBAR = pen base + PEN_VECTORS_OFFSET = 2 KiB
 * aligned). Every entry: x18 := its index, then the fault handler.
 */
.macro pen_vector idx
    .org    .Lpen_start + PEN_VECTORS_OFFSET - PEN_CODE_OFFSET + \idx * 0x80
    mov     x18, #\idx
    b       .Lpen_fault
.endm
    pen_vector 0
    pen_vector 1
    pen_vector 2
    pen_vector 3
    pen_vector 4
    pen_vector 5
    pen_vector 6
    pen_vector 7
    pen_vector 8
    pen_vector 9
    pen_vector 10
    pen_vector 11
    pen_vector 12
    pen_vector 13
    pen_vector 14
    pen_vector 15
.purgem pen_vector
    .org    .Lpen_start + PEN_VECTORS_OFFSET - PEN_CODE_OFFSET + 16 * 0x80

/*
 * A synchronous exception (or an unmasked interrupt) taken to the pen's
 * vectors: in pen code, or in code a release jumped to before it installed
 * vectors of its own. The CPU records it and stays (docs/protocol.md 3.4):
 * in its slot, status FAULTED with last_entry = ELR and el = EL | vector << 8
 * | ESR << 32; without a slot, as a stray (how = 2). A fault while recording
 * one (x26 = PEN_FAULT_TAG, set below), or in the code from here to
 * .Lpen_fault_end (the header and slot lookups: the pen itself is not
 * readable), ends in the dead loop with nothing more written.
 */
.Lpen_fault:
    msr     daifset, #0xf
    mov     x0, #PEN_FAULT_TAG
    cmp     x26, x0
    b.eq    .Lpen_dead
    mov     x26, x0
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2
    cmp     x9, #2
    b.eq    2f
    cmp     x9, #1
    b.eq    1f
    mrs     x4, elr_el3
    mrs     x5, esr_el3
    b       3f
1:  mrs     x4, elr_el1
    mrs     x5, esr_el1
    b       3f
2:  mrs     x4, elr_el2
    mrs     x5, esr_el2
3:  adr     x0, .Lpen_fault
    adr     x1, .Lpen_fault_end
    cmp     x4, x0
    b.lo    4f
    cmp     x4, x1
    b.lo    .Lpen_dead
4:  adr     x10, .Lpen_start
    sub     x10, x10, #PEN_CODE_OFFSET
    bl      .Lpen_header
    bl      .Lpen_find_slot
    cbz     x14, 5f
    str     x4, [x15, #PEN_ST_LAST_ENTRY]
    lsl     x5, x5, #32                 /* ESR[31:0] */
    orr     x5, x5, x18, lsl #8         /* vector */
    orr     x5, x5, x9                  /* EL */
    str     x5, [x15, #PEN_ST_EL]
    mov     x1, #PEN_STATUS_FAULTED
    str     x1, [x15, #PEN_ST_STATUS]
    dsb     sy
    sev
    b       .Lpen_dead
5:  mov     x17, #PEN_STRAY_HOW_FAULT
    b       .Lpen_stray

/*
 * Finds and checks our own pen header at x10 (nothing is written): base 4 KiB
 * aligned (checked by the caller), magic, phys_base, nr_slots, both arrays
 * 64-byte aligned and inside total_size. Out: x8 entry_el, x11 total_size,
 * x12 nr_slots, x14 first mailbox, x15 first state record. Failure: the dead
 * loop. Clobbers x0..x2.
 */
.Lpen_header:
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
    ldr     w8, [x10, #PEN_HDR_ENTRY_EL]
    add     x14, x10, x14
    add     x15, x10, x15
    ret

/*
 * Our slot by MPIDR (bounded by nr_slots). In: x12, x14, x15 from
 * .Lpen_header. Out: x13 MPIDR; x14 / x15 our mailbox / state record, or
 * x14 = 0 when no slot has our MPIDR. Clobbers x0, x1, x12.
 */
.Lpen_find_slot:
    mrs     x13, mpidr_el1
    movz    x0, #0xffff                 /* Aff3..Aff0: 0xff_00ff_ffff */
    movk    x0, #0xff, lsl #16
    movk    x0, #0xff, lsl #32
    and     x13, x13, x0                /* x13: our MPIDR */
1:  cbz     x12, 2f
    ldr     x0, [x14, #PEN_SLOT_MPIDR]
    cmp     x0, x13
    b.eq    3f
    add     x14, x14, #PEN_SLOT_SIZE
    add     x15, x15, #PEN_STATE_SIZE
    sub     x12, x12, #1
    b       1b
2:  mov     x14, xzr
3:  ret
.Lpen_fault_end:

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
    cmp     x9, #3                      /* a resident pen at EL3: WFE, woken by SEV */
    b.eq    .Lws_done
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
