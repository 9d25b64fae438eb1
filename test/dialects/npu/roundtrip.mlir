// RUN: axc-opt %s | axc-opt | FileCheck %s
// RUN: axc-opt %s --print-op-generic | FileCheck %s --check-prefix=CHECK-GENERIC
// RUN: axc-opt %s --print-op-generic | axc-opt | FileCheck %s

builtin.module {
  func.func @tiles(%x: tensor<1x1x64xbf16>, %w: tensor<128x64xi8>, %s: tensor<128xf16>, %w4: tensor<128x32xui8>, %s4: tensor<128x1xf16>, %z4: tensor<128x1xui8>, %kc: tensor<1x16x32xbf16>, %pos: tensor<1x1xui32>) -> tensor<1x1x128xbf16> {
    %xb = npu.alloc {alignment = 64 : i64} : !npu.buf<1x64xbf16, ocm>
    %wt = npu.alloc {offset = 0 : i64} : !npu.buf<32x64xi8, ocm>
    %wt4 = npu.alloc : !npu.buf<32x32xui8, ocm>
    %st = npu.alloc : !npu.buf<32x1xf16, ocm>
    %zt = npu.alloc : !npu.buf<32x1xui8, ocm>
    %y = npu.alloc : !npu.buf<1x128xf32, ocm>
    %yb = npu.alloc : !npu.buf<1x128xbf16, ocm>
    %k = npu.alloc : !npu.buf<8x16xbf16, ocm>
    %sc = npu.alloc : !npu.buf<2x1x8xf32, ocm>
    %m = npu.alloc : !npu.buf<2x1x1xf32, ocm>
    %l = npu.alloc : !npu.buf<2x1x1xf32, ocm>
    %c = npu.alloc : !npu.buf<2x1x1xf32, ocm>
    %p = npu.alloc : !npu.buf<1xui32, ocm>
    %out = npu.alloc : !npu.buf<1x1x128xbf16, ddr>
    npu.dma_load %x -> %xb : tensor<1x1x64xbf16>, !npu.buf<1x64xbf16, ocm>
    npu.loop %n = 0 to 4 {
      npu.dma_load %w[2048 * %n : 32x64] -> %wt {event = 0 : i64} : tensor<128x64xi8>, !npu.buf<32x64xi8, ocm>
      npu.dma_load %s[32 * %n : 32x1] -> %st {event = 0 : i64} : tensor<128xf16>, !npu.buf<32x1xf16, ocm>
      npu.barrier {events = [0 : i64]}
      npu.matmul %xb, %wt scales(%st) -> %y[32 * %n : 1x32] {format = "s8", transpose_b} : !npu.buf<1x64xbf16, ocm>, !npu.buf<32x64xi8, ocm>, !npu.buf<32x1xf16, ocm>, !npu.buf<1x128xf32, ocm>
    }
    npu.loop %n = 0 to 4 step 2 {
      npu.dma_load %w4[1024 * %n : 32x32] -> %wt4 : tensor<128x32xui8>, !npu.buf<32x32xui8, ocm>
      npu.dma_load %s4[32 * %n : 32x1] -> %st : tensor<128x1xf16>, !npu.buf<32x1xf16, ocm>
      npu.dma_load %z4[32 * %n : 32x1] -> %zt : tensor<128x1xui8>, !npu.buf<32x1xui8, ocm>
      npu.matmul %xb, %wt4 scales(%st) zeros(%zt) -> %y[32 * %n : 1x32] {format = "s4", group = 64 : i64, transpose_b, accumulate} : !npu.buf<1x64xbf16, ocm>, !npu.buf<32x32xui8, ocm>, !npu.buf<32x1xf16, ocm>, !npu.buf<32x1xui8, ocm>, !npu.buf<1x128xf32, ocm>
    }
    npu.loop %h = 0 to 2 {
      npu.fill -> %m {value = -1.0e+30 : f64} : !npu.buf<2x1x1xf32, ocm>
      npu.dma_load %kc[16 * %h : 8x16 : 32x1] -> %k : tensor<1x16x32xbf16>, !npu.buf<8x16xbf16, ocm>
      npu.matmul %y[32 * %h : 2x1x16 : 16x128x1], %k -> %sc {alpha = 2.5e-01 : f64, transpose_b} : !npu.buf<1x128xf32, ocm>, !npu.buf<8x16xbf16, ocm>, !npu.buf<2x1x8xf32, ocm>
      npu.online_softmax %sc -> %sc, %m, %l, %c : !npu.buf<2x1x8xf32, ocm>, !npu.buf<2x1x8xf32, ocm>, !npu.buf<2x1x1xf32, ocm>, !npu.buf<2x1x1xf32, ocm>, !npu.buf<2x1x1xf32, ocm>
    }
    npu.dma_load %pos[0 : 1] -> %p : tensor<1x1xui32>, !npu.buf<1xui32, ocm>
    npu.rope %y, %p -> %y {num_heads = 2 : i64, head_dim = 64 : i64, rope = #tfm.rope<rotary_dim = 32, theta = 10000.0, low_freq_factor = 2.0, interleaved = true>} : !npu.buf<1x128xf32, ocm>, !npu.buf<1xui32, ocm>, !npu.buf<1x128xf32, ocm>
    npu.act_mul %y, %y -> %y {kind = "silu"} : !npu.buf<1x128xf32, ocm>, !npu.buf<1x128xf32, ocm>, !npu.buf<1x128xf32, ocm>
    npu.cast %y -> %yb : !npu.buf<1x128xf32, ocm>, !npu.buf<1x128xbf16, ocm>
    npu.dma_store %yb -> %out : !npu.buf<1x128xbf16, ocm>, !npu.buf<1x1x128xbf16, ddr>
    %r = npu.to_tensor %out : !npu.buf<1x1x128xbf16, ddr> -> tensor<1x1x128xbf16>
    func.return %r : tensor<1x1x128xbf16>
  }
}

// Views print only what differs from the whole buffer: offset, sizes, strides.
// CHECK:      %xb = npu.alloc {alignment = 64 : i64} : !npu.buf<1x64xbf16, ocm>
// CHECK-NEXT: %wt = npu.alloc {offset = 0 : i64} : !npu.buf<32x64xi8, ocm>
// CHECK:      npu.dma_load %x -> %xb : tensor<1x1x64xbf16>, !npu.buf<1x64xbf16, ocm>
// CHECK-NEXT: npu.loop %n = 0 to 4 {
// CHECK-NEXT:   npu.dma_load %w[2048 * %n : 32x64] -> %wt {event = 0 : i64} : tensor<128x64xi8>, !npu.buf<32x64xi8, ocm>
// CHECK-NEXT:   npu.dma_load %s[32 * %n : 32x1] -> %st {event = 0 : i64}
// CHECK-NEXT:   npu.barrier {events = [0 : i64]}
// CHECK-NEXT:   npu.matmul %xb, %wt scales(%st) -> %y[32 * %n : 1x32] {format = "s8", transpose_b} : !npu.buf<1x64xbf16, ocm>, !npu.buf<32x64xi8, ocm>, !npu.buf<32x1xf16, ocm>, !npu.buf<1x128xf32, ocm>
// CHECK-NEXT: }
// CHECK-NEXT: npu.loop %n_1 = 0 to 4 step 2 {
// CHECK:        npu.matmul %xb, %wt4 scales(%st) zeros(%zt) -> %y[32 * %n_1 : 1x32] {format = "s4", group = 64 : i64, transpose_b, accumulate}
// CHECK:      npu.loop %h = 0 to 2 {
// CHECK-NEXT:   npu.fill -> %m {value = -1.000000e+30 : f64} : !npu.buf<2x1x1xf32, ocm>
// CHECK-NEXT:   npu.dma_load %kc[16 * %h : 8x16 : 32x1] -> %k : tensor<1x16x32xbf16>, !npu.buf<8x16xbf16, ocm>
// CHECK-NEXT:   npu.matmul %y[32 * %h : 2x1x16 : 16x128x1], %k -> %sc {alpha = 2.500000e-01 : f64, transpose_b}
// CHECK-NEXT:   npu.online_softmax %sc -> %sc, %m, %l, %c
// CHECK:      npu.rope %y, %p -> %y {num_heads = 2 : i64, head_dim = 64 : i64, rope = #tfm.rope<rotary_dim = 32, theta = 10000.0, low_freq_factor = 2.0, interleaved = true>}
// CHECK-NEXT: npu.act_mul %y, %y -> %y {kind = "silu"}
// CHECK-NEXT: npu.cast %y -> %yb
// CHECK-NEXT: npu.dma_store %yb -> %out : !npu.buf<1x128xbf16, ocm>, !npu.buf<1x1x128xbf16, ddr>
// CHECK-NEXT: %r = npu.to_tensor %out : !npu.buf<1x1x128xbf16, ddr> -> tensor<1x1x128xbf16>

// The generic form keeps every view as an attribute (offset coefficients per iv).
// CHECK-GENERIC: "npu.dma_load"(%w, %wt, %n) <{views = [#npu.view<[0, 2048] : 32x64 : 64x1>, #npu.view<[0, 0] : 32x64 : 64x1>], event = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 1>}>
// CHECK-GENERIC: "npu.loop"() <{lb = 0 : i64, ub = 4 : i64, step = 2 : i64}> ({
