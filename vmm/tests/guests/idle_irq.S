# Idle and interrupt test guest (32-bit protected mode, PVH entry state).
# Stage 1 idles (port 0x502) until a LAPIC timer interrupt; stage 2 enables
# the UART's THR-empty interrupt (GSI 4 irqfd, IOAPIC pin 4) and idles until
# it arrives; then prints "ok" and exits with the number of idle turns stage 1
# took. Handlers do not `iret` (this machine's KVM cannot emulate a 32-bit
# iret); they reset the stack and jump to the next stage.
.code32
start:
  mov $0x80000, %esp
  mov $0xff, %al
  out %al, $0x21
  out %al, $0xa1
  mov $timer_handler, %eax
  mov $idt + 0x30*8, %edi
  call set_gate
  mov $serial_handler, %eax
  mov $idt + 0x31*8, %edi
  call set_gate
  lidt idtr
  movl $0x1ff, 0xfee000f0
  movl $0x10000, 0xfee00350
  movl $0x10000, 0xfee00360
  movl $0x18, 0xfec00000
  movl $0x31, 0xfec00010
  movl $0x19, 0xfec00000
  movl $0, 0xfec00010
  # LAPIC timer: divide by 1, one shot, vector 0x30, 20 ms at 1 GHz
  movl $0xb, 0xfee003e0
  movl $0x30, 0xfee00320
  xor %ecx, %ecx
  sti
  movl $20000000, 0xfee00380
1: inc %ecx
  mov $0x502, %dx
  out %al, %dx
  jmp 1b
timer_handler:
  mov $0x80000, %esp
  movl $0, 0xfee000b0
  sti
  mov $0x3f9, %dx
  mov $0x02, %al
  out %al, %dx
2: mov $0x502, %dx
  out %al, %dx
  jmp 2b
serial_handler:
  mov $0x80000, %esp
  movl $0, 0xfee000b0
  mov $0x3f9, %dx
  mov $0, %al
  out %al, %dx
  mov $0x3f8, %dx
  mov $'o', %al
  out %al, %dx
  mov $'k', %al
  out %al, %dx
  mov $'\n', %al
  out %al, %dx
  cmp $200, %ecx
  jb 5f
  mov $200, %ecx
5: mov %cl, %al
  mov $0x501, %dx
  out %al, %dx
  hlt
set_gate:
  movw %ax, (%edi)
  movw $0x08, 2(%edi)
  movw $0x8e00, 4(%edi)
  shr $16, %eax
  movw %ax, 6(%edi)
  ret
.align 8
idtr: .word 0x32*8-1
      .long idt
.align 8
idt: .space 0x32*8
