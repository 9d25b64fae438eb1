// RUN: axc-opt %s -p 'double-buffer{ocm-bytes=65536}' | FileCheck %s
// RUN: axc-opt %s -p 'double-buffer{ocm-bytes=4096}' | FileCheck %s --check-prefix=FULL

func.func @stream(%w: tensor<160x64xi8>, %s: tensor<160xf16>) -> tensor<1x1x160xf32> {
  %x = npu.alloc : !npu.buf<1x64xf32, ocm>
  %t = npu.alloc : !npu.buf<32x64xi8, ocm>
  %st = npu.alloc : !npu.buf<32x1xf16, ocm>
  %y = npu.alloc : !npu.buf<1x160xf32, ocm>
  %out = npu.alloc : !npu.buf<1x1x160xf32, ddr>
  npu.fill -> %x {value = 1.0 : f64} : !npu.buf<1x64xf32, ocm>
  npu.loop %n = 0 to 5 {
    npu.dma_load %w[2048 * %n : 32x64] -> %t : tensor<160x64xi8>, !npu.buf<32x64xi8, ocm>
    npu.dma_load %s[32 * %n : 32x1] -> %st : tensor<160xf16>, !npu.buf<32x1xf16, ocm>
    npu.matmul %x, %t scales(%st) -> %y[32 * %n : 1x32] {format = "s8", transpose_b} : !npu.buf<1x64xf32, ocm>, !npu.buf<32x64xi8, ocm>, !npu.buf<32x1xf16, ocm>, !npu.buf<1x160xf32, ocm>
  }
  npu.dma_store %y -> %out : !npu.buf<1x160xf32, ocm>, !npu.buf<1x1x160xf32, ddr>
  %r = npu.to_tensor %out : !npu.buf<1x1x160xf32, ddr> -> tensor<1x1x160xf32>
  func.return %r : tensor<1x1x160xf32>
}

// A twin of each streamed buffer; tile k+1 loads (tagged) while tile k computes.
// CHECK:      %t = npu.alloc : !npu.buf<32x64xi8, ocm>
// CHECK-NEXT: %t_1 = npu.alloc : !npu.buf<32x64xi8, ocm>
// CHECK-NEXT: %st = npu.alloc : !npu.buf<32x1xf16, ocm>
// CHECK-NEXT: %st_1 = npu.alloc : !npu.buf<32x1xf16, ocm>
// CHECK:      npu.fill -> %x
// CHECK-NEXT: npu.dma_load %w[0 : 32x64] -> %t {event = 0 : i64}
// CHECK-NEXT: npu.dma_load %s[0 : 32x1] -> %st {event = 0 : i64}
// CHECK-NEXT: npu.loop %n2 = 0 to 2 {
// CHECK-NEXT:   npu.dma_load %w[4096 * %n2 + 2048 : 32x64] -> %t_1 {event = 1 : i64}
// CHECK-NEXT:   npu.dma_load %s[64 * %n2 + 32 : 32x1] -> %st_1 {event = 1 : i64}
// CHECK-NEXT:   npu.barrier {events = [0 : i64]}
// CHECK-NEXT:   npu.matmul %x, %t scales(%st) -> %y[64 * %n2 : 1x32] {format = "s8", transpose_b}
// CHECK-NEXT:   npu.dma_load %w[4096 * %n2 + 4096 : 32x64] -> %t {event = 0 : i64}
// CHECK-NEXT:   npu.dma_load %s[64 * %n2 + 64 : 32x1] -> %st {event = 0 : i64}
// CHECK-NEXT:   npu.barrier {events = [1 : i64]}
// CHECK-NEXT:   npu.matmul %x, %t_1 scales(%st_1) -> %y[64 * %n2 + 32 : 1x32] {format = "s8", transpose_b}
// CHECK-NEXT: } {npu.pipelined}
// Five tiles: two pairs in the loop, the last one after it.
// CHECK-NEXT: npu.barrier {events = [0 : i64]}
// CHECK-NEXT: npu.matmul %x, %t scales(%st) -> %y[128 : 1x32] {format = "s8", transpose_b}
// CHECK-NEXT: npu.dma_store %y -> %out

// Without room for the twins the loop stays as it is.
// FULL:       npu.loop %n = 0 to 5 {
// FULL-NEXT:    npu.dma_load %w[2048 * %n : 32x64] -> %t : tensor<160x64xi8>
// FULL-NOT:   npu.barrier
