/*
 * The arm64 Image header, the boot CPU's entry and the exception vectors of
 * every parkboot program (the loader and the test payload; both link with a
 * script that places .head first, .text.entry, .vectors at 2 KiB alignment,
 * and defines __image_start/__image_end/__image_size, __rela_start/__rela_end,
 * __bss_start/__bss_end and __stack_top). Everything else is Rust.
 *
 * Entry contract (booting.rst): x0 = DTB physical address, x1-x3 = 0, MMU off,
 * at EL2 or EL1, from any 2 MiB-aligned base (+ text_offset 0).
 *
 * The program provides
 *   rust_entry(dtb, entry_ticks, el, x1, x2, x3, daif, sctlr) -> !
 * (daif and sctlr as found at entry, before this code changes them; a program
 * may declare fewer arguments) and, for the vectors, nothing: they call
 * exception_handler in exceptions.rs.
 *
 * Included with global_asm!(include_str!(...)): no curly braces in this file.
 */

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
    b       primary_entry               /* code0 */
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
primary_entry:
    mrs     x20, cntpct_el0             /* entry timestamp, before anything else */
    mov     x19, x0                     /* DTB */
    mov     x21, x1                     /* x1..x3 kept for the entry report */
    mov     x22, x2
    mov     x23, x3
    mrs     x25, daif                   /* entry DAIF, for the program's checks */
    msr     daifset, #0xf

    mrs     x9, CurrentEL
    lsr     x9, x9, #2
    and     x9, x9, #3
    mov     x24, x9                     /* entry EL */
    cmp     x9, #2
    b.eq    1f
    cmp     x9, #1
    b.eq    2f
    cmp     x9, #3
    b.eq    el3_entry                   /* from reset at EL3: el3.S (docs/psci.md) */
    /* EL0: not a supported entry state; park forever. */
0:  wfe
    b       0b

1:  /* EL2: re-initialise what a kexec'ing (possibly VHE) kernel may leave behind. */
    mrs     x26, sctlr_el2              /* entry SCTLR, for the program's checks */
    mov32   x0, 0x30c50830              /* SCTLR_EL2 RES1 bits; MMU, caches, alignment checks off */
    msr     sctlr_el2, x0
    isb
    mov     x0, #(1 << 31)              /* HCR_EL2: RW=1 (EL1 is AArch64); E2H=0, TGE=0 */
    msr     hcr_el2, x0
    isb
    mov     x0, #0x33ff                 /* CPTR_EL2 (nVHE layout): RES1, TFP=0 (no FP/SIMD traps) */
    msr     cptr_el2, x0
    mov     x0, #3                      /* CNTHCTL_EL2: EL1PCTEN | EL1PCEN */
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    msr     vttbr_el2, xzr
    mov     x0, #0
    msr     mdcr_el2, x0
    adr_l   x0, exception_vectors
    msr     vbar_el2, x0
    b       3f

2:  /* EL1 */
    mrs     x26, sctlr_el1
    mov32   x0, 0x30d00800              /* SCTLR_EL1 RES1 bits; MMU, caches off */
    msr     sctlr_el1, x0
    isb
    mov     x0, #(3 << 20)              /* CPACR_EL1.FPEN: no FP/SIMD traps */
    msr     cpacr_el1, x0
    adr_l   x0, exception_vectors
    msr     vbar_el1, x0

3:  isb
.global parkboot_primary_common
parkboot_primary_common:                /* el3.S continues here in its resident copy */
    /*
     * Invalidate the whole footprint to PoC: the previous owner of this memory
     * (a kernel that kexec'd us) may have left dirty lines for our .bss, stack
     * and heap that would otherwise be written back over our data later.
     * The file contents were cleaned to PoC by whoever loaded us (booting.rst).
     */
    adr_l   x0, __image_start
    adr_l   x1, __image_end
    mrs     x2, ctr_el0
    ubfx    x2, x2, #16, #4             /* DminLine: log2(words) */
    mov     x3, #4
    lsl     x2, x3, x2                  /* line size in bytes */
    sub     x3, x2, #1
    bic     x0, x0, x3
4:  dc      ivac, x0
    add     x0, x0, x2
    cmp     x0, x1
    b.lo    4b
    dsb     sy

    /* Self-relocate: apply R_AARCH64_RELATIVE entries against our load base. */
    adr_l   x0, __image_start           /* load base (linked at 0) */
    adr_l   x1, __rela_start
    adr_l   x2, __rela_end
5:  cmp     x1, x2
    b.hs    7f
    ldp     x3, x4, [x1], #16           /* r_offset, r_info */
    ldr     x5, [x1], #8                /* r_addend */
    and     x4, x4, #0xffffffff
    cmp     x4, #1027                   /* R_AARCH64_RELATIVE */
    b.ne    6f                          /* nothing else is expected; skip */
    add     x5, x5, x0
    str     x5, [x0, x3]
6:  b       5b

7:  /* Zero .bss (not the stacks or the heap, which need no zeroing). */
    adr_l   x0, __bss_start
    adr_l   x1, __bss_end
8:  cmp     x0, x1
    b.hs    9f
    stp     xzr, xzr, [x0], #16
    b       8b

9:  adr_l   x0, __stack_top
    mov     sp, x0
    mov     x29, xzr
    mov     x30, xzr
    /* rust_entry(dtb, entry_ticks, el, x1, x2, x3, daif, sctlr) */
    mov     x0, x19
    mov     x1, x20
    mov     x2, x24
    mov     x3, x21
    mov     x4, x22
    mov     x5, x23
    mov     x6, x25
    mov     x7, x26
    bl      rust_entry
10: wfe
    b       10b

/*
 * Exception vectors (every CPU of the program; secondaries install them with
 * `adr_l x0, exception_vectors` and VBAR): each entry saves the full register
 * file into a frame on the current stack and calls exception_handler(kind,
 * frame). The handler may change the saved ELR (probe fix-ups); otherwise it
 * reports and never returns.
 * Frame: x0..x30, ELR, SPSR (33 u64, padded to 34).
 */
.section .vectors, "ax"
.macro vector kind
    .balign 0x80
    sub     sp, sp, #(34 * 8)
    stp     x0, x1, [sp, #(0 * 8)]
    mov     x0, #\kind
    b       exception_common
.endm

.balign 2048
.global exception_vectors
exception_vectors:
    vector 0    /* current EL, SP0: sync */
    vector 1    /* irq */
    vector 2    /* fiq */
    vector 3    /* serror */
    vector 4    /* current EL, SPx: sync */
    vector 5
    vector 6
    vector 7
    vector 8    /* lower EL, AArch64: sync */
    vector 9
    vector 10
    vector 11
    vector 12   /* lower EL, AArch32 */
    vector 13
    vector 14
    vector 15

exception_common:
    stp     x2, x3, [sp, #(2 * 8)]
    stp     x4, x5, [sp, #(4 * 8)]
    stp     x6, x7, [sp, #(6 * 8)]
    stp     x8, x9, [sp, #(8 * 8)]
    stp     x10, x11, [sp, #(10 * 8)]
    stp     x12, x13, [sp, #(12 * 8)]
    stp     x14, x15, [sp, #(14 * 8)]
    stp     x16, x17, [sp, #(16 * 8)]
    stp     x18, x19, [sp, #(18 * 8)]
    stp     x20, x21, [sp, #(20 * 8)]
    stp     x22, x23, [sp, #(22 * 8)]
    stp     x24, x25, [sp, #(24 * 8)]
    stp     x26, x27, [sp, #(26 * 8)]
    stp     x28, x29, [sp, #(28 * 8)]
    str     x30, [sp, #(30 * 8)]
    mrs     x2, CurrentEL
    cmp     x2, #(3 << 2)
    b.eq    5f
    cmp     x2, #(2 << 2)
    b.ne    1f
    mrs     x3, elr_el2
    mrs     x4, spsr_el2
    b       2f
5:  mrs     x3, elr_el3
    mrs     x4, spsr_el3
    b       2f
1:  mrs     x3, elr_el1
    mrs     x4, spsr_el1
2:  stp     x3, x4, [sp, #(31 * 8)]
    mov     x1, sp
    bl      exception_handler
    ldp     x3, x4, [sp, #(31 * 8)]
    mrs     x2, CurrentEL
    cmp     x2, #(3 << 2)
    b.eq    6f
    cmp     x2, #(2 << 2)
    b.ne    3f
    msr     elr_el2, x3
    msr     spsr_el2, x4
    b       4f
6:  msr     elr_el3, x3
    msr     spsr_el3, x4
    b       4f
3:  msr     elr_el1, x3
    msr     spsr_el1, x4
4:  ldp     x0, x1, [sp, #(0 * 8)]
    ldp     x2, x3, [sp, #(2 * 8)]
    ldp     x4, x5, [sp, #(4 * 8)]
    ldp     x6, x7, [sp, #(6 * 8)]
    ldp     x8, x9, [sp, #(8 * 8)]
    ldp     x10, x11, [sp, #(10 * 8)]
    ldp     x12, x13, [sp, #(12 * 8)]
    ldp     x14, x15, [sp, #(14 * 8)]
    ldp     x16, x17, [sp, #(16 * 8)]
    ldp     x18, x19, [sp, #(18 * 8)]
    ldp     x20, x21, [sp, #(20 * 8)]
    ldp     x22, x23, [sp, #(22 * 8)]
    ldp     x24, x25, [sp, #(24 * 8)]
    ldp     x26, x27, [sp, #(26 * 8)]
    ldp     x28, x29, [sp, #(28 * 8)]
    ldr     x30, [sp, #(30 * 8)]
    add     sp, sp, #(34 * 8)
    eret

/* Other global_asm! files of the program may define their own. */
.purgem adr_l
.purgem mov32
