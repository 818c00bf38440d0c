/*
 * parkboot from reset at EL3 (docs/psci.md): the image in flash at the reset
 * vector copies itself into secure RAM and continues there; the secondaries
 * wait in the reset hold from their first instructions; the resident part's
 * SMC vectors, the CPU_ON trampoline, the drop to the non-secure world and the
 * CPU_OFF park. The decisions are the loader's (loader/src/psci/ and
 * loader/src/resident.rs); this file only carries them out.
 *
 * Board constants (QEMU virt secure=on, boards::QEMU_VIRT.el3; a host test
 * checks them): the resident copy at EL3_RESIDENT_BASE, the hold words at
 * EL3_HOLD_BASE (8 bytes per CPU, index Aff0 + 16 * Aff1).
 *
 * Included with global_asm!(include_str!(...)): no curly braces in this file.
 */

.equ EL3_RESIDENT_BASE,     0x0e000000
.equ EL3_HOLD_BASE,         0x0efff000
.equ EL3_HOLD_AFF0_LIMIT,   16
.equ EL3_HOLD_AFF1_LIMIT,   32
.equ EL3_SCTLR_OFF,         0x30c50830    /* SCTLR_EL3 RES1 bits; MMU, caches off */
.equ EL3_CPU_SIZE,          64            /* El3Cpu (el3.rs) */
.equ EL3_CPU_MPIDR,         0
.equ EL3_CPU_STACK,         8
.equ EL3_CPU_NS_ENTRY,      16
.equ EL3_CPU_NS_CTX,        24
.equ EL3_CPU_NS_EL,         32
.equ EL3_CPU_LEAVING,       40
.equ EL3_CPU_INDEX,         48
.equ EL3_GIC_VERSION,       0             /* El3Gic (el3.rs) */
.equ EL3_GIC_GICD,          8
.equ EL3_GIC_GICC,          16
.equ EL3_SPSR_EL2H,         0x3c9         /* DAIF masked, EL2h */
.equ EL3_SPSR_EL1H,         0x3c5         /* DAIF masked, EL1h */
.equ EL3_EC_SMC64,          0x17
.equ EL3_EC_SMC32,          0x13
.equ EL3_FRAME,             176           /* x0..x18, x29, x30, pad: 22 x 8 */

.macro el3_adr_l, reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
.endm

.section .text.el3, "ax"

/*
 * From primary_entry (entry.S) at EL3, still in flash. Every CPU comes here
 * from reset at the same time. x20 = entry ticks (kept for rust_entry).
 */
.global el3_entry
el3_entry:
    movz    x0, #(EL3_SCTLR_OFF & 0xffff)
    movk    x0, #(EL3_SCTLR_OFF >> 16), lsl #16
    msr     sctlr_el3, x0
    isb
    msr     spsel, #1
    mrs     x1, mpidr_el1
    movz    x0, #0xffff
    movk    x0, #0xff, lsl #16
    movk    x0, #0xff, lsl #32
    and     x1, x1, x0
    cbnz    x1, el3_hold                /* the primary is the CPU with affinity 0 */

    /* The primary: copy the file part of the image into secure RAM, continue there. */
    el3_adr_l x2, __image_start         /* in flash */
    el3_adr_l x3, __image_file_end
    movz    x4, #(EL3_RESIDENT_BASE & 0xffff)
    movk    x4, #(EL3_RESIDENT_BASE >> 16), lsl #16
    mov     x5, x2
    mov     x6, x4
1:  cmp     x5, x3
    b.hs    2f
    ldp     x7, x8, [x5], #16
    stp     x7, x8, [x6], #16
    b       1b
2:  dsb     sy
    ic      iallu
    dsb     sy
    isb
    el3_adr_l x5, el3_resident_entry
    sub     x5, x5, x2
    add     x5, x5, x4
    br      x5

/* The primary, in its resident copy: the common start-up of entry.S at EL3. */
el3_resident_entry:
    mov     x24, #3                     /* entry EL */
    mrs     x26, sctlr_el3
    mov     x19, xzr                    /* no x0 from a previous stage: the DT is where the board says */
    b       parkboot_primary_common

/*
 * A secondary from reset: announce itself in its hold word (keyed by MPIDR),
 * then wait until the primary writes an entry there (the resident pen's
 * pen_entry) and go. The first store overwrites whatever a previous boot left
 * (RAM survives a reset), so nothing stale is ever jumped to; the primary
 * writes the entry only after it has seen this CPU's HOLD, and again whenever
 * it sees HOLD again. A CPU whose MPIDR has no hold word stays here for good.
 * x1 = MPIDR affinity.
 */
el3_hold:
    and     x2, x1, #0xff               /* Aff0 */
    ubfx    x3, x1, #8, #8              /* Aff1 */
    lsr     x4, x1, #16
    cbnz    x4, .Lel3_dead_novbar       /* Aff2 / Aff3: no hold word */
    cmp     x2, #EL3_HOLD_AFF0_LIMIT
    b.hs    .Lel3_dead_novbar
    cmp     x3, #EL3_HOLD_AFF1_LIMIT
    b.hs    .Lel3_dead_novbar
    add     x2, x2, x3, lsl #4
    movz    x5, #(EL3_HOLD_BASE & 0xffff)
    movk    x5, #(EL3_HOLD_BASE >> 16), lsl #16
    add     x5, x5, x2, lsl #3          /* x5: our hold word */
    movz    x6, #0x4b50                 /* "PKBTHOLD" little-endian */
    movk    x6, #0x5442, lsl #16
    movk    x6, #0x4f48, lsl #32
    movk    x6, #0x444c, lsl #48
    str     x6, [x5]
    dsb     sy
    sev
1:  wfe
    ldr     x7, [x5]
    cmp     x7, x6
    b.eq    1b
    cbz     x7, 1b
    tst     x7, #3
    b.ne    1b
    br      x7                          /* the resident pen's pen_entry (EL3, MMU off) */

.Lel3_dead_novbar:
    wfi
    b       .Lel3_dead_novbar

/*
 * CPU_ON's target, released from the resident pen (mode 0: EL3, MMU off,
 * DAIF masked, x0..x3 = 0): finds its El3Cpu record by MPIDR and enters the
 * non-secure world as the record says.
 */
.global el3_cpu_on_entry
el3_cpu_on_entry:
    msr     daifset, #0xf
    mrs     x1, mpidr_el1
    movz    x0, #0xffff
    movk    x0, #0xff, lsl #16
    movk    x0, #0xff, lsl #32
    and     x1, x1, x0
    el3_adr_l x2, EL3_CPUS
    el3_adr_l x3, EL3_NR_CPUS
    ldr     x3, [x3]
    mov     x4, #0
1:  cmp     x4, x3
    b.hs    .Lel3_dead_novbar
    ldr     x5, [x2, #EL3_CPU_MPIDR]
    cmp     x5, x1
    b.eq    2f
    add     x2, x2, #EL3_CPU_SIZE
    add     x4, x4, #1
    b       1b
2:  mov     x0, x2
    /* fall through */

/*
 * Enters the non-secure world on this CPU as El3Cpu record x0 says: its EL3
 * stack, index and vectors for later SMCs; the EL3 controls and the GIC's
 * security set-up for this CPU; a fresh EL2 (or EL1) state; then ERET to
 * ns_entry at ns_el (2: EL2h, 1: EL1h) with x0 = ns_ctx, x1..x30 = 0.
 */
.global el3_enter_ns
el3_enter_ns:
    msr     daifset, #0xf
    msr     spsel, #1
    mov     x19, x0
    ldr     x1, [x19, #EL3_CPU_STACK]
    mov     sp, x1
    ldr     x1, [x19, #EL3_CPU_INDEX]
    msr     tpidr_el3, x1
    str     xzr, [x19, #EL3_CPU_LEAVING]
    el3_adr_l x1, el3_vectors
    msr     vbar_el3, x1
    isb
    bl      el3_cpu_controls            /* x20: SCR_EL3 */
    bl      el3_cpu_gic
    ldr     x2, [x19, #EL3_CPU_NS_EL]
    cmp     x2, #2
    b.ne    1f
    bl      el3_fresh_el2
    mov     x0, #EL3_SPSR_EL2H
    b       2f
1:  bic     x20, x20, #(1 << 8)         /* no EL2 (or not used): SCR_EL3.HCE = 0 */
    movz    x0, #0x0800                 /* SCTLR_EL1 RES1 bits; MMU, caches off */
    movk    x0, #0x30d0, lsl #16
    msr     sctlr_el1, x0
    mov     x0, #(3 << 20)              /* CPACR_EL1.FPEN */
    msr     cpacr_el1, x0
    mov     x0, #EL3_SPSR_EL1H
2:  msr     spsr_el3, x0
    ldr     x0, [x19, #EL3_CPU_NS_ENTRY]
    msr     elr_el3, x0
    msr     scr_el3, x20
    isb
    ldr     x0, [x19, #EL3_CPU_NS_CTX]
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    mov     x4, xzr
    mov     x5, xzr
    mov     x6, xzr
    mov     x7, xzr
    mov     x8, xzr
    mov     x9, xzr
    mov     x10, xzr
    mov     x11, xzr
    mov     x12, xzr
    mov     x13, xzr
    mov     x14, xzr
    mov     x15, xzr
    mov     x16, xzr
    mov     x17, xzr
    mov     x18, xzr
    mov     x19, xzr
    mov     x20, xzr
    mov     x21, xzr
    mov     x22, xzr
    mov     x23, xzr
    mov     x24, xzr
    mov     x25, xzr
    mov     x26, xzr
    mov     x27, xzr
    mov     x28, xzr
    mov     x29, xzr
    mov     x30, xzr
    eret

/*
 * The EL3 controls for this CPU (booting.rst, "If EL3 is present"): nothing
 * of the non-secure world traps to EL3, each implemented feature enabled for
 * it. Out: x20 = SCR_EL3 (NS, RW, HCE where EL2 is implemented, ...).
 * Clobbers x0..x3.
 */
el3_cpu_controls:
    mov     x20, #(1 << 0)              /* NS */
    orr     x20, x20, #(3 << 4)         /* RES1 */
    /*
     * FIQ: group 0 interrupts are EL3's (as Trusted Firmware-A routes them; none
     * is ever enabled, every interrupt is non-secure group 1). It matters on a
     * GICv3 with two security states: only with SCR_EL3.FIQ set does the
     * non-secure world see ICC_PMR_EL1 in its shifted view, the same view its
     * priority writes get; without it a non-secure PMR of 0x80 masks every
     * non-secure priority (0x80 | prio >> 1) and nothing reaches the OS.
     */
    orr     x20, x20, #(1 << 2)         /* FIQ */
    orr     x20, x20, #(1 << 9)         /* SIF: no secure fetches from non-secure memory */
    orr     x20, x20, #(1 << 10)        /* RW: the lower ELs are AArch64 */
    mrs     x1, id_aa64pfr0_el1
    ubfx    x2, x1, #8, #4              /* EL2 */
    cbz     x2, 1f
    orr     x20, x20, #(1 << 8)         /* HCE */
1:  mrs     x1, id_aa64isar1_el1
    mov     x2, #0xff0                  /* APA, API */
    movk    x2, #0xff00, lsl #16        /* GPA, GPI */
    tst     x1, x2
    b.ne    2f
    mrs     x1, s3_0_c0_c6_2            /* ID_AA64ISAR2_EL1: APA3, GPA3 */
    tst     x1, #0xff00
    b.eq    3f
2:  orr     x20, x20, #(3 << 16)        /* APK, API */
3:  mrs     x1, id_aa64pfr1_el1
    ubfx    x2, x1, #8, #4              /* MTE */
    cmp     x2, #2
    b.lo    4f
    orr     x20, x20, #(1 << 26)        /* ATA */
4:  ubfx    x2, x1, #24, #4             /* SME */
    cbz     x2, 5f
    orr     x20, x20, #(1 << 41)        /* EnTP2 */
5:  ubfx    x2, x1, #44, #4             /* GCS */
    cbz     x2, 6f
    orr     x20, x20, #(1 << 39)        /* GCSEn */
6:  mrs     x1, id_aa64mmfr0_el1
    ubfx    x2, x1, #56, #4             /* FGT */
    cbz     x2, 7f
    orr     x20, x20, #(1 << 27)        /* FGTEn */
7:  mrs     x1, id_aa64mmfr1_el1
    ubfx    x2, x1, #40, #4             /* HCX */
    cbz     x2, 8f
    orr     x20, x20, #(1 << 38)        /* HXEn */
8:  mrs     x1, s3_0_c0_c7_3            /* ID_AA64MMFR3_EL1 */
    ubfx    x2, x1, #0, #4              /* TCRX */
    cbz     x2, 9f
    orr     x20, x20, #(1 << 43)        /* TCR2En */
9:  ubfx    x2, x1, #8, #4              /* S1PIE */
    cbz     x2, 10f
    orr     x20, x20, #(1 << 45)        /* PIEn */
10: /* CPTR_EL3: no FP/SIMD, SVE, SME, AMU or trace traps */
    mov     x0, xzr
    mrs     x1, id_aa64pfr0_el1
    ubfx    x2, x1, #32, #4             /* SVE */
    cbz     x2, 11f
    orr     x0, x0, #(1 << 8)           /* EZ */
11: mrs     x3, id_aa64pfr1_el1
    ubfx    x3, x3, #24, #4             /* SME */
    cbz     x3, 12f
    orr     x0, x0, #(1 << 12)          /* ESM */
12: msr     cptr_el3, x0
    isb
    cbz     x2, 13f
    mov     x0, #0x1ff
    msr     s3_6_c1_c2_0, x0            /* ZCR_EL3.LEN: the maximum, the same on every CPU */
13: cbz     x3, 14f
    mov     x0, #0x1ff                  /* SMCR_EL3.LEN */
    mrs     x1, s3_0_c0_c4_5            /* ID_AA64SMFR0_EL1 */
    tbz     x1, #63, 15f
    orr     x0, x0, #(1 << 31)          /* FA64 */
15: ubfx    x1, x1, #56, #4
    cbz     x1, 16f
    orr     x0, x0, #(1 << 30)          /* EZT0 */
16: msr     s3_6_c1_c2_6, x0
14: /* MDCR_EL3: no debug or PMU traps; SPE, TRBE, BRBE buffers usable by the non-secure world */
    mov     x0, xzr
    mrs     x1, id_aa64dfr0_el1
    ubfx    x2, x1, #32, #4             /* PMSVer */
    cbz     x2, 17f
    orr     x0, x0, #(3 << 12)          /* NSPB */
17: ubfx    x2, x1, #44, #4             /* TraceBuffer */
    cbz     x2, 18f
    orr     x0, x0, #(3 << 24)          /* NSTB */
18: ubfx    x2, x1, #52, #4             /* BRBE */
    cbz     x2, 19f
    orr     x0, x0, #(3 << 32)          /* SBRBE */
19: ubfx    x2, x1, #8, #4              /* PMUVer */
    cmp     x2, #9
    b.lo    20f
    cmp     x2, #0xf
    b.eq    20f
    orr     x0, x0, #(1 << 7)           /* EnPM2 */
20: msr     mdcr_el3, x0
    isb
    ret

/*
 * The GIC's security set-up that is banked per CPU (the distributor and the
 * redistributors are done once, by the primary): GICv3: ICC_SRE_EL3 = SRE |
 * DFB | DIB | Enable (booting.rst) and ICC_PMR_EL1 = 0xff (see el3_cpu_controls); GICv2: GICD_IGROUPR0 = all group 1
 * (non-secure), so the non-secure world gets its SGIs and PPIs, and the
 * secure GICC_PMR = 0xff — a GICv2 ignores non-secure writes to the priority
 * mask while its secure value is in the lower half (0 at reset), so without
 * this nothing could ever be signalled to the non-secure world.
 * Clobbers x0..x2.
 */
el3_cpu_gic:
    el3_adr_l x0, EL3_GIC
    ldr     x1, [x0, #EL3_GIC_VERSION]
    cmp     x1, #3
    b.eq    1f
    cmp     x1, #2
    b.ne    9f
    ldr     x2, [x0, #EL3_GIC_GICC]
    ldr     x0, [x0, #EL3_GIC_GICD]
    cbz     x0, 9f
    mov     w1, #-1
    str     w1, [x0, #0x80]             /* GICD_IGROUPR0 (banked) */
    cbz     x2, 9f
    mov     w1, #0xff
    str     w1, [x2, #0x4]              /* GICC_PMR (secure view) */
    b       9f
1:  mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #24, #4
    cbz     x0, 9f
    mov     x0, #0xf
    msr     s3_6_c12_c12_5, x0          /* ICC_SRE_EL3 */
    isb
    mov     x0, #0xff                   /* ICC_PMR_EL1 out of the secure range: with */
    msr     s3_0_c4_c6_0, x0            /* SCR_EL3.FIQ the non-secure world may only */
    isb                                 /* change a PMR whose bit 7 is set */
9:  ret

/*
 * A fresh EL2 for a kernel entered there (booting.rst): MMU and caches off,
 * HCR_EL2 = RW, no FP/SIMD traps, EL1 counter access, CNTVOFF 0, no stage 2,
 * every PMU counter below EL2 (HPMN = N), the real IDs for EL1, GICv3 system
 * registers enabled at EL2. Clobbers x0, x1.
 */
el3_fresh_el2:
    movz    x0, #0x0830
    movk    x0, #0x30c5, lsl #16
    msr     sctlr_el2, x0
    mov     x0, #(1 << 31)
    msr     hcr_el2, x0
    mov     x0, #0x33ff
    msr     cptr_el2, x0
    mov     x0, #3
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    msr     vttbr_el2, xzr
    msr     hstr_el2, xzr
    mov     x0, xzr
    mrs     x1, id_aa64dfr0_el1
    ubfx    x1, x1, #8, #4
    cbz     x1, 1f
    cmp     x1, #0xf
    b.eq    1f
    mrs     x1, pmcr_el0
    ubfx    x0, x1, #11, #5
1:  msr     mdcr_el2, x0
    mrs     x0, midr_el1
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #24, #4
    cbz     x0, 2f
    mov     x0, #0xf
    msr     s3_4_c12_c9_5, x0           /* ICC_SRE_EL2 */
2:  isb
    ret

/*
 * CPU_OFF: the calling CPU goes into the resident pen through its park entry
 * (x0), its release word already zeroed. Never returns.
 */
.global el3_park
el3_park:
    msr     daifset, #0xf
    dsb     sy
    br      x0

/*
 * The resident part's vectors. Only an SMC from the non-secure world is
 * expected (SCR_EL3 routes no interrupt or abort here): it is handed to
 * parkboot_smc(frame, spsr) with x0..x18, x29, x30 saved on this CPU's EL3
 * stack; x0 comes back as the result, x1..x30 as they were (SMCCC v1.1);
 * every program that links this file defines parkboot_smc. An
 * SMC from AArch32 gets NOT_SUPPORTED. Anything else stops the CPU here.
 */
.section .vectors, "ax"
.balign 2048
.global el3_vectors
el3_vectors:
.irp n, 0, 1, 2, 3, 4, 5, 6, 7
    .balign 0x80
    b       .Lel3_dead
.endr
    .balign 0x80
    b       el3_sync_lower
.irp n, 9, 10, 11
    .balign 0x80
    b       .Lel3_dead
.endr
    .balign 0x80
    b       el3_sync_a32
.irp n, 13, 14, 15
    .balign 0x80
    b       .Lel3_dead
.endr

.section .text.el3, "ax"
el3_sync_lower:
    sub     sp, sp, #EL3_FRAME
    stp     x0, x1, [sp, #(0 * 8)]
    stp     x2, x3, [sp, #(2 * 8)]
    stp     x4, x5, [sp, #(4 * 8)]
    stp     x6, x7, [sp, #(6 * 8)]
    stp     x8, x9, [sp, #(8 * 8)]
    stp     x10, x11, [sp, #(10 * 8)]
    stp     x12, x13, [sp, #(12 * 8)]
    stp     x14, x15, [sp, #(14 * 8)]
    stp     x16, x17, [sp, #(16 * 8)]
    stp     x18, x29, [sp, #(18 * 8)]
    str     x30, [sp, #(20 * 8)]
    mrs     x1, esr_el3
    lsr     x1, x1, #26
    cmp     x1, #EL3_EC_SMC64
    b.ne    .Lel3_dead
    mov     x0, sp
    mrs     x1, spsr_el3
    mov     x29, xzr
    bl      parkboot_smc
    ldp     x0, x1, [sp, #(0 * 8)]
    ldp     x2, x3, [sp, #(2 * 8)]
    ldp     x4, x5, [sp, #(4 * 8)]
    ldp     x6, x7, [sp, #(6 * 8)]
    ldp     x8, x9, [sp, #(8 * 8)]
    ldp     x10, x11, [sp, #(10 * 8)]
    ldp     x12, x13, [sp, #(12 * 8)]
    ldp     x14, x15, [sp, #(14 * 8)]
    ldp     x16, x17, [sp, #(16 * 8)]
    ldp     x18, x29, [sp, #(18 * 8)]
    ldr     x30, [sp, #(20 * 8)]
    add     sp, sp, #EL3_FRAME
    eret

el3_sync_a32:
    mrs     x0, esr_el3                 /* x0 is about to be the result anyway */
    lsr     x0, x0, #26
    cmp     x0, #EL3_EC_SMC32
    b.ne    .Lel3_dead
    mov     x0, #0xffffffff             /* w0 = NOT_SUPPORTED */
    eret

.Lel3_dead:
    msr     daifset, #0xf
1:  wfi
    b       1b

.purgem el3_adr_l
