/*
 * switch_x86_64.S -- coroutine context switch for x86-64 System V.
 *
 * A suspended context is its stack pointer. Its stack holds, from that
 * pointer up (64 bytes; cn__ctx_make in coro.c writes the same layout):
 *
 *     0   MXCSR (4 bytes)          the FP control state: callee-saved in the
 *     4   x87 control word (2)     SysV ABI; without it a rounding-mode change
 *     6   (2 bytes unused)         would leak from one coroutine to another
 *     8   r15
 *    16   r14
 *    24   r13
 *    32   r12
 *    40   rbx
 *    48   rbp
 *    56   resume address
 *
 * Only callee-saved registers are saved: the caller of cn__ctx_switch already
 * treats every other register as clobbered by the call.
 *
 * We leave by pop + indirect jmp, not ret: the return-stack predictor would
 * predict a return to the caller of *this* context's switch, which is wrong on
 * every switch (about 3x slower); the indirect jump goes through the
 * branch-target predictor instead.
 *
 * No CET property note: the indirect jump lands on return addresses that are
 * not ENDBR64 landing pads (IBT), and calls are never matched by a ret on the
 * same stack (shadow stack), so claiming CET compatibility would be false.
 * Without the note the linker marks the whole output as not CET-enabled,
 * which is the truth.
 */

    .text

/* void cn__ctx_switch(void **save_sp, void *to_sp) */
    .p2align 4
    .globl  cn__ctx_switch
    .hidden cn__ctx_switch
    .type   cn__ctx_switch, @function
cn__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r15, 0
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)

    /* The target's frame has the same shape, so the CFI above stays right. */
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp

    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbp
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_register %rip, %rcx
    jmpq    *%rcx
    .cfi_endproc
    .size   cn__ctx_switch, .-cn__ctx_switch

/*
 * First code of a new context: cn__ctx_make put the entry in r12 and its
 * argument in r13, and left rsp 16-byte aligned here, as a call requires.
 * The entry never returns; if it did, trap. The return address is marked
 * undefined so that debuggers and unwinders stop here.
 */
    .p2align 4
    .globl  cn__ctx_boot
    .hidden cn__ctx_boot
    .type   cn__ctx_boot, @function
cn__ctx_boot:
    .cfi_startproc
    .cfi_undefined %rip
    movq    %r13, %rdi
    callq   *%r12
    ud2
    .cfi_endproc
    .size   cn__ctx_boot, .-cn__ctx_boot

/*
 * uint64_t cn__ctx_fpctl(void): the current FP control state in the layout of
 * the frame's first 8 bytes (MXCSR | x87 control word << 32), for the first
 * frame of a new context. Uses the red zone.
 */
    .p2align 4
    .globl  cn__ctx_fpctl
    .hidden cn__ctx_fpctl
    .type   cn__ctx_fpctl, @function
cn__ctx_fpctl:
    .cfi_startproc
    stmxcsr -8(%rsp)
    fnstcw  -4(%rsp)
    movl    -8(%rsp), %eax
    movzwl  -4(%rsp), %edx
    shlq    $32, %rdx
    orq     %rdx, %rax
    ret
    .cfi_endproc
    .size   cn__ctx_fpctl, .-cn__ctx_fpctl

    .section .note.GNU-stack,"",%progbits
