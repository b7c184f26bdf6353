# CSB transmit test guest (32-bit protected mode, PVH entry state, CPL0).
# Sets up a 256-descriptor TX ring whose descriptors all point at one 60-byte
# frame, maps the CSB (guest_csb_on first, then CSBAH, CSBAL) and sends
# 20000 frames: it publishes guest_tdt every 32 frames, full barrier, and
# writes the TDT register (the kick) only while host_need_txkick is set. It
# waits for ring space on host_tdh, then for host_tdh to reach its tail, and
# exits with code 0 (port 0x501). BAR0 is where the VMM placed it.
.code32
.set BAR0, 0xFEB00000
.set CSB, 0x200000
.set RING, 0x201000
.set FRAME, 0x202000
.set COUNT, 20000
start:
  mov $0x80000, %esp
  # The frame: broadcast destination, then anything.
  movl $0xffffffff, FRAME
  movl $0x5452ffff, FRAME+4
  # 256 legacy descriptors: buffer FRAME, length 60, EOP|IFCS|RS.
  mov $RING, %edi
  mov $256, %ecx
1:
  movl $FRAME, (%edi)
  movl $0, 4(%edi)
  movl $(60 | 0x0B000000), 8(%edi)
  movl $0, 12(%edi)
  add $16, %edi
  loop 1b
  movl $RING, BAR0+0x3800
  movl $0, BAR0+0x3804
  movl $4096, BAR0+0x3808
  movl $0, BAR0+0x3810
  movl $0, BAR0+0x3818
  movl $0x0A, BAR0+0x0400
  # The CSB: guest_tdt 0, guest_txkick_at none, guest_csb_on 1; then map it.
  movl $0, CSB
  movl $0xffffffff, CSB+20
  movl $1, CSB+12
  movl $0, BAR0+0x2834
  movl $CSB, BAR0+0x2830
  xor %ebx, %ebx
  xor %esi, %esi
2:
  # Wait for a free descriptor: tail + 1 != host_tdh.
  lea 1(%esi), %eax
  and $255, %eax
3:
  cmp CSB+64, %eax
  je 3b
  mov %eax, %esi
  inc %ebx
  test $31, %ebx
  jnz 4f
  call publish
4:
  cmp $COUNT, %ebx
  jb 2b
  call publish
5:
  cmp CSB+64, %esi
  jne 5b
  mov $0, %al
  mov $0x501, %dx
  out %al, %dx
  hlt
publish:
  mov %esi, CSB
  mfence
  cmpl $0, CSB+68
  je 6f
  mov %esi, BAR0+0x3818
6:
  ret
