/*
 * parkboot test payload: arm64 Image header, boot-CPU entry, secondary-CPU
 * entry (the address the boot CPU writes into the pen's release words) with
 * the cpu-park return, and exception vectors. Everything else is Rust
 * (src/main.rs); the payload runs with the MMU off on every CPU.
 *
 * Included with global_asm!(include_str!(...)): no curly braces in this file.
 */

.equ SEC_STACK_SHIFT,   14              /* 16 KiB per secondary (payload.ld SEC_STACK_SIZE) */
.equ CPU_SLOT_SHIFT,    6               /* PAYLOAD_CPUS entries are 64 bytes (main.rs CpuSlot) */
.equ CPU_SLOT_MPIDR,    0
.equ CPU_SLOT_RELEASE,  8
.equ CPU_SLOT_PARK,     16
.equ CPU_SLOT_SKIP_ZERO, 24             /* fault injection: park without zeroing */
.equ SCTLR_EL2_OFF,     0x30c50830      /* RES1 bits; MMU, caches, alignment checks off */
.equ SCTLR_EL1_OFF,     0x30d00800      /* RES1 bits; MMU, caches off */

.macro adr_l, reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
.endm

.macro mov32, reg, val
    movz    \reg, #((\val) & 0xffff)
    movk    \reg, #((\val) >> 16), lsl #16
.endm

.section .head, "ax"
.global _start
_start:
    b       payload_primary_entry       /* code0 */
    .long   0                           /* code1 */
    .quad   0                           /* text_offset */
    .quad   __image_size                /* image_size: the whole in-place footprint */
    .quad   0xa                         /* flags: LE, 4K pages, placeable anywhere */
    .quad   0                           /* res2 */
    .quad   0                           /* res3 */
    .quad   0                           /* res4 */
    .ascii  "ARM\x64"                   /* magic */
    .long   0                           /* res5 (no PE header) */

.section .text.entry, "ax"
/*
 * Boot CPU, entered like Linux: x0 = DTB, x1..x3 = 0, MMU off, EL2 or EL1.
 */
payload_primary_entry:
    mrs     x20, cntpct_el0             /* entry timestamp */
    mov     x19, x0                     /* DTB */
    mov     x21, x1                     /* x1..x3, checked by Rust */
    mov     x22, x2
    mov     x23, x3
    mrs     x25, daif                   /* entry DAIF, checked by Rust */
    msr     daifset, #0xf
    mrs     x24, CurrentEL
    ubfx    x24, x24, #2, #2            /* entry EL */
    cmp     x24, #2
    b.eq    1f
    cmp     x24, #1
    b.eq    2f
0:  wfe                                 /* EL3/EL0: not a supported entry state */
    b       0b

1:  mrs     x26, sctlr_el2              /* entry SCTLR, checked by Rust */
    mov32   x0, SCTLR_EL2_OFF
    msr     sctlr_el2, x0
    isb
    mov     x0, #(1 << 31)              /* HCR_EL2: RW only */
    msr     hcr_el2, x0
    mov     x0, #0x33ff                 /* CPTR_EL2: no FP/SIMD traps */
    msr     cptr_el2, x0
    adr_l   x0, payload_vectors
    msr     vbar_el2, x0
    b       3f

2:  mrs     x26, sctlr_el1
    mov32   x0, SCTLR_EL1_OFF
    msr     sctlr_el1, x0
    isb
    mov     x0, #(3 << 20)              /* CPACR_EL1.FPEN */
    msr     cpacr_el1, x0
    adr_l   x0, payload_vectors
    msr     vbar_el1, x0

3:  isb
    /*
     * Invalidate the footprint to PoC: whoever owned this memory before (a
     * loader with caches on) may hold dirty lines over our .bss, stacks and
     * heap that would later be written back over what we write uncached.
     * The file contents were cleaned to PoC by the loader (booting.rst).
     */
    adr_l   x0, __image_start
    adr_l   x1, __image_end
    mrs     x2, ctr_el0
    ubfx    x2, x2, #16, #4             /* DminLine: log2(words) */
    mov     x3, #4
    lsl     x2, x3, x2
    sub     x3, x2, #1
    bic     x0, x0, x3
4:  dc      ivac, x0
    add     x0, x0, x2
    cmp     x0, x1
    b.lo    4b
    dsb     sy

    /* Self-relocate: R_AARCH64_RELATIVE against the load base (linked at 0). */
    adr_l   x0, __image_start
    adr_l   x1, __rela_start
    adr_l   x2, __rela_end
5:  cmp     x1, x2
    b.hs    7f
    ldp     x3, x4, [x1], #16           /* r_offset, r_info */
    ldr     x5, [x1], #8                /* r_addend */
    and     x4, x4, #0xffffffff
    cmp     x4, #1027                   /* R_AARCH64_RELATIVE */
    b.ne    6f
    add     x5, x5, x0
    str     x5, [x0, x3]
6:  b       5b

7:  adr_l   x0, __bss_start             /* zero .bss (CPU table, records) */
    adr_l   x1, __bss_end
8:  cmp     x0, x1
    b.hs    9f
    stp     xzr, xzr, [x0], #16
    b       8b

9:  adr_l   x0, __stack_top
    mov     sp, x0
    mov     x29, xzr
    mov     x30, xzr
    /* payload_main(dtb, entry_ticks, el, x1, x2, x3, daif, sctlr) */
    mov     x0, x19
    mov     x1, x20
    mov     x2, x24
    mov     x3, x21
    mov     x4, x22
    mov     x5, x23
    mov     x6, x25
    mov     x7, x26
    bl      payload_main
10: wfe
    b       10b

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

12: cmp     x23, #2
    b.ne    13f
    adr_l   x0, payload_vectors
    msr     vbar_el2, x0
    b       14f
13: adr_l   x0, payload_vectors
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
 * Exception vectors (boot CPU and secondaries): report and stop. Nothing is
 * expected to trap; a trap is a test failure with a register report.
 */
.section .vectors, "ax"
.macro vector kind
    .balign 0x80
    mov     x0, #\kind
    b       payload_exception_common
.endm

.balign 2048
.global payload_vectors
payload_vectors:
    vector 0
    vector 1
    vector 2
    vector 3
    vector 4
    vector 5
    vector 6
    vector 7
    vector 8
    vector 9
    vector 10
    vector 11
    vector 12
    vector 13
    vector 14
    vector 15

payload_exception_common:
    mrs     x5, CurrentEL
    cmp     x5, #(2 << 2)
    b.ne    1f
    mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    b       2f
1:  mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
2:  mrs     x4, mpidr_el1
    /* payload_exception(kind, esr, elr, far, mpidr) never returns */
    bl      payload_exception
3:  wfe
    b       3b
