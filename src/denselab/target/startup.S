/* startup.S: the least a Cortex-M core needs to run main() with no C library.
 *
 * Reset_Handler copies .data from flash to RAM, zeroes .bss, paints the stack with
 * DENSELAB_STACK_PAINT (so the peak stack use can be read back after a run), calls main
 * and stops at denselab_halt: a BKPT that halts a core under a debugger, and the address
 * the emulator runs until. Only ARMv6-M instructions, so one file serves M0+, M4 and M7.
 */
#ifndef DENSELAB_STACK_PAINT
#define DENSELAB_STACK_PAINT 0x5AC4ED0F
#endif

    .syntax unified
    .thumb

    .section .isr_vector, "a"
    .align 2
    .global denselab_vectors
denselab_vectors:
    .word _estack               /* initial SP: the top of RAM */
    .word Reset_Handler
    .word denselab_fault        /* NMI */
    .word denselab_fault        /* HardFault */

    .text
    .align 1
    .thumb_func
    .global Reset_Handler
    .type Reset_Handler, %function
Reset_Handler:
    ldr r0, =_sdata             /* .data: copy its initial values from flash */
    ldr r1, =_edata
    ldr r2, =_sidata
1:  cmp r0, r1
    bhs 2f
    ldr r3, [r2]
    str r3, [r0]
    adds r0, r0, #4
    adds r2, r2, #4
    b 1b
2:  ldr r0, =_sbss              /* .bss: zero */
    ldr r1, =_ebss
    movs r3, #0
3:  cmp r0, r1
    bhs 4f
    str r3, [r0]
    adds r0, r0, #4
    b 3b
4:  ldr r0, =_sstack            /* the stack: paint, below the SP this code never moves */
    ldr r1, =_estack
    ldr r3, =DENSELAB_STACK_PAINT
5:  cmp r0, r1
    bhs 6f
    str r3, [r0]
    adds r0, r0, #4
    b 5b
6:  bl main
    .size Reset_Handler, . - Reset_Handler

    .align 1
    .thumb_func
    .global denselab_halt
    .type denselab_halt, %function
denselab_halt:
    bkpt #0
    b denselab_halt
    .size denselab_halt, . - denselab_halt

    .align 1
    .thumb_func
    .global denselab_fault
    .type denselab_fault, %function
denselab_fault:
    bkpt #1
    b denselab_fault
    .size denselab_fault, . - denselab_fault
    .pool
