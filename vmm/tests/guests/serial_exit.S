# Serial and exit test guest (32-bit protected mode, PVH entry state):
# checks the hvm_start_info magic at EBX, prints the command line, exits 42.
.code32
start:
  cmpl $0x336ec578, (%ebx)
  jne fail
  mov $0x3f8, %dx
  mov 24(%ebx), %esi
1: movb (%esi), %al
  test %al, %al
  jz 2f
  out %al, %dx
  inc %esi
  jmp 1b
2: mov $'\n', %al
  out %al,%dx
  mov $0x501, %dx
  mov $42, %al
  out %al, %dx
  hlt
fail:
  mov $0x501, %dx
  mov $3, %al
  out %al,%dx
  hlt
