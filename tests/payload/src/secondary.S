/*
 * parkboot test payload: the secondary-CPU entry (the address the boot CPU
 * writes into the pen's release words) with the cpu-park return, and the
 * keep loop. The Image header, the boot CPU's entry and the exception vectors
 * are the arch crate's (loader/arch/src/entry.S), as in the loader; the
 * payload runs with the MMU off on every CPU.
 *
 * Included with global_asm!(include_str!(...)): no curly braces in this file.
 */

.equ SEC_STACK_SHIFT,   14              /* 16 KiB per secondary (payload.ld SEC_STACK_SIZE) */
.equ CPU_SLOT_SHIFT,    6               /* PAYLOAD_CPUS entries are 64 bytes (rt.rs CpuSlot) */
.equ CPU_SLOT_MPIDR,    0
.equ CPU_SLOT_RELEASE,  8
.equ CPU_SLOT_PARK,     16
.equ CPU_SLOT_SKIP_ZERO, 24             /* fault injection: park without zeroing */

.macro adr_l, reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
.endm

.section .text.payload_secondary, "ax"

/*
 * Secondary CPU, released from the pen (docs/protocol.md §5.1): MMU off, DAIF
 * masked, x0..x3 = 0 (recorded, and checked by the boot CPU), at the pen's
 * entry_el. Position independent (adr/adrp only).
 *
 * 1. find our index in PAYLOAD_CPUS by MPIDR (no match: publish the MPIDR in
 *    PAYLOAD_STRAY and stop — nothing else is written);
 * 2. our own stack: __secondary_stacks + (index + 1) * 16 KiB;
 * 3. payload_secondary(index, x0, x1, x2, x3, el, mpidr) records the entry;
 * 4. the cpu-park contract (§5.2): store 0 to our own release word, DC CIVAC
 *    it, DSB SY, mask DAIF, MMU and D-cache off, branch to cpu-park-addr.
 */
.balign 8
.global payload_secondary_entry
payload_secondary_entry:
    mrs     x26, cntpct_el0             /* entry timestamp (release latency) */
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, x3
    msr     daifset, #0xf
    mrs     x23, CurrentEL
    ubfx    x23, x23, #2, #2
    mrs     x24, mpidr_el1
    movz    x0, #0xffff                 /* Aff3..Aff0: 0xff_00ff_ffff */
    movk    x0, #0xff, lsl #16
    movk    x0, #0xff, lsl #32
    and     x24, x24, x0

    adr_l   x9, PAYLOAD_NR_CPUS
    ldr     x10, [x9]
    adr_l   x11, PAYLOAD_CPUS
    mov     x25, #0                     /* x25: our index */
11: cmp     x25, x10
    b.hs    .Lstray
    add     x12, x11, x25, lsl #CPU_SLOT_SHIFT
    ldr     x13, [x12, #CPU_SLOT_MPIDR]
    cmp     x13, x24
    b.eq    12f
    add     x25, x25, #1
    b       11b

.Lstray:
    adr_l   x9, PAYLOAD_STRAY
    orr     x0, x24, #(1 << 63)         /* bit 63: "set" (MPIDR 0 is valid) */
    str     x0, [x9]
    dc      civac, x9
    dsb     sy
.Lstop:
    wfe
    b       .Lstop

12: cmp     x23, #2                     /* the arch crate's vectors, as on the boot CPU */
    b.ne    13f
    adr_l   x0, exception_vectors
    msr     vbar_el2, x0
    b       14f
13: adr_l   x0, exception_vectors
    msr     vbar_el1, x0
14: isb
    adr_l   x9, __secondary_stacks
    add     x10, x25, #1
    add     x9, x9, x10, lsl #SEC_STACK_SHIFT
    mov     sp, x9
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x25
    mov     x1, x19
    mov     x2, x20
    mov     x3, x21
    mov     x4, x22
    mov     x5, x23
    mov     x6, x24
    mov     x7, x26
    bl      payload_secondary

    /* ---- park: the cpu-park-addr contract ---- */
    adr_l   x9, PAYLOAD_CPUS
    add     x9, x9, x25, lsl #CPU_SLOT_SHIFT
    ldr     x10, [x9, #CPU_SLOT_RELEASE]
    ldr     x11, [x9, #CPU_SLOT_PARK]
    ldr     x12, [x9, #CPU_SLOT_SKIP_ZERO]
    cbnz    x12, 17f                    /* (payload.inject=no-zero: break the contract) */
    str     xzr, [x10]                  /* our own release word := 0 (one 64-bit store) */
17: dc      civac, x10
    dsb     sy
    msr     daifset, #0xf
    mrs     x0, CurrentEL
    cmp     x0, #(2 << 2)
    b.ne    15f
    mrs     x0, sctlr_el2               /* MMU and D-cache off (they never were on) */
    bic     x0, x0, #(1 << 0)
    bic     x0, x0, #(1 << 2)
    msr     sctlr_el2, x0
    b       16f
15: mrs     x0, sctlr_el1
    bic     x0, x0, #(1 << 0)
    bic     x0, x0, #(1 << 2)
    msr     sctlr_el1, x0
16: isb
    br      x11

/*
 * payload.keep=1: where a secondary is released to be kept (a kernel that
 * never returns a CPU): interrupts masked, WFI for ever. Nothing configures
 * a wake-up source for it, so it never fetches from here again — the next
 * stage may reuse this memory.
 */
.balign 8
.global payload_keep_entry
payload_keep_entry:
    msr     daifset, #0xf
1:  wfi
    b       1b

/*
 * payload.inject=fault: a secondary is released here; the undefined
 * instruction is taken to whatever vectors it has, which must be the pen's
 * (docs/protocol.md 3.4).
 */
.balign 8
.global payload_udf
payload_udf:
    udf     #0

/*
 * payload.el1=1: a secondary released with mode 1 (ERET to EL1h, x0 = the
 * context) reports what it finds at EL1 into PAYLOAD_EL1 (rt.rs El1Report:
 * done, x0, EL, PMCR_EL0.N, rdvl #1 or -1, PAuth key readable 1 or -1, MIDR,
 * MPIDR), then waits at EL1 for good. An access EL2 still traps goes to the
 * pen's vectors, which record it (the boot CPU then reports that).
 */
.balign 8
.global payload_el1_entry
payload_el1_entry:
    mov     x19, x0                     /* context */
    mrs     x20, CurrentEL
    ubfx    x20, x20, #2, #2
    mrs     x21, pmcr_el0
    ubfx    x21, x21, #11, #5           /* N as EL1 sees it: MDCR_EL2.HPMN */
    mov     x22, #-1
    mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #32, #4             /* SVE */
    cbz     x0, 1f
    mov     x0, #(3 << 20)              /* the OS's part: FP/SIMD and SVE not trapped at EL1 */
    orr     x0, x0, #(3 << 16)          /* (CPACR_EL1.FPEN, ZEN) */
    msr     cpacr_el1, x0
    isb
    .inst   0x04bf5036                  /* rdvl x22, #1 (traps to EL2 if CPTR_EL2 says so) */
1:  mov     x23, #-1
    mrs     x0, id_aa64isar1_el1
    mov     x1, #0xff0                  /* APA, API */
    movk    x1, #0xff00, lsl #16        /* GPA, GPI */
    tst     x0, x1
    b.eq    2f
    mrs     x23, s3_0_c2_c1_0           /* APIAKeyLo_EL1: traps to EL2 unless HCR_EL2.APK */
    mov     x23, #1
2:  mrs     x24, midr_el1
    mrs     x25, mpidr_el1
    adr_l   x9, PAYLOAD_EL1
    stp     x19, x20, [x9, #8]
    stp     x21, x22, [x9, #24]
    stp     x23, x24, [x9, #40]
    str     x25, [x9, #56]
    dsb     sy
    mov     x0, #1
    str     x0, [x9]
    dc      civac, x9
    dsb     sy
    sev
3:  wfi
    b       3b

/*
 * payload.foreign=1: a U-Boot-style spin-table shared by every secondary: wait
 * until PAYLOAD_FOREIGN_WORD is non-zero, then branch there (x0..x3 = 0). The
 * CPU whose MPIDR is PAYLOAD_FOREIGN_LATE waits 1.5 s more first (a CPU that
 * comes after the loader stopped waiting for it).
 */
.balign 8
.global payload_foreign_spin
payload_foreign_spin:
    msr     daifset, #0xf
    adr_l   x9, PAYLOAD_FOREIGN_WORD
1:  wfe
    dc      civac, x9
    dsb     sy
    ldr     x4, [x9]
    cbz     x4, 1b
    adr_l   x10, PAYLOAD_FOREIGN_LATE
    ldr     x11, [x10]
    mrs     x12, mpidr_el1
    movz    x0, #0xffff
    movk    x0, #0xff, lsl #16
    movk    x0, #0xff, lsl #32
    and     x12, x12, x0
    cmp     x11, x12
    b.ne    3f
    mrs     x13, cntfrq_el0
    add     x13, x13, x13, lsr #1       /* 1.5 s */
    mrs     x14, cntpct_el0
    add     x14, x14, x13
2:  mrs     x15, cntpct_el0
    cmp     x15, x14
    b.lo    2b
3:  mov     x0, xzr
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x4

/* Other global_asm! files of the program may define their own. */
.purgem adr_l
