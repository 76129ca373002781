/*
 * switch_aarch64.S -- coroutine context switch for AArch64 (AAPCS64).
 *
 * A suspended context is its stack pointer. Its stack holds, from that
 * pointer up (176 bytes, a multiple of 16 as sp must always be; cn__ctx_make
 * in coro.c writes the same layout):
 *
 *     0   x19 x20        16  x21 x22        32  x23 x24
 *    48   x25 x26        64  x27 x28        80  x29 (fp) x30 (lr: resume address)
 *    96   d8  d9        112  d10 d11       128  d12 d13
 *   144   d14 d15       160  FPCR          168  (unused)
 *
 * Only callee-saved state is saved: x19-x28, fp, lr, sp, the low 64 bits of
 * v8-v15 (AAPCS64 only preserves those) and FPCR (rounding mode, FZ, DN: a
 * mode change must not leak between coroutines). FPCR is written only when it
 * differs, since an MSR to FPCR can be slow on some cores. FPSR (the cumulative
 * exception flags) is not preserved, like any call.
 *
 * We leave by br x30, not ret: ret would consult the return-stack predictor,
 * which is wrong on every switch.
 *
 * No BTI/PAC property note: br lands on return addresses, which are not BTI
 * landing pads, so the file must not claim BTI compatibility. (PAC-RET
 * callers are unaffected: they sign and authenticate their own lr.)
 */

    .text

/* void cn__ctx_switch(void **save_sp, void *to_sp) */
    .p2align 4
    .globl  cn__ctx_switch
    .hidden cn__ctx_switch
    .type   cn__ctx_switch, %function
cn__ctx_switch:
    .cfi_startproc
    sub     sp, sp, #176
    .cfi_def_cfa_offset 176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]

    mov     x10, sp
    str     x10, [x0]
    mov     sp, x1

    ldr     x10, [sp, #160]
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x10
1:
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #176
    .cfi_def_cfa_offset 0
    br      x30
    .cfi_endproc
    .size   cn__ctx_switch, .-cn__ctx_switch

/*
 * First code of a new context: cn__ctx_make put the entry in x19 and its
 * argument in x20. The entry never returns; if it did, trap. lr is marked
 * undefined so that debuggers and unwinders stop here.
 */
    .p2align 4
    .globl  cn__ctx_boot
    .hidden cn__ctx_boot
    .type   cn__ctx_boot, %function
cn__ctx_boot:
    .cfi_startproc
    .cfi_undefined x30
    mov     x0, x20
    blr     x19
    brk     #0x1
    .cfi_endproc
    .size   cn__ctx_boot, .-cn__ctx_boot

/* uint64_t cn__ctx_fpctl(void): the current FPCR, for a new context's frame. */
    .p2align 4
    .globl  cn__ctx_fpctl
    .hidden cn__ctx_fpctl
    .type   cn__ctx_fpctl, %function
cn__ctx_fpctl:
    .cfi_startproc
    mrs     x0, fpcr
    ret
    .cfi_endproc
    .size   cn__ctx_fpctl, .-cn__ctx_fpctl

    .section .note.GNU-stack,"",%progbits
