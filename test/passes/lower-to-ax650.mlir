// RUN: axc-opt %s -p lower-to-ax650 | FileCheck %s
// RUN: axc-opt %s -p lower-to-ax650 | axc-opt | FileCheck %s
// RUN: not axc-opt %s -p lower-to-ax620e 2>&1 | FileCheck %s --check-prefix=ERR

// Two shape groups of layer 0 and the decode group of layer 1. The groups of a layer
// share ONE parameter blob (each parameter placed once); layer 1 has the same structure,
// so it is lowered once and re-bound: same program, its own parameter names.
builtin.module attributes {axc.target = "AX650", axc.npu_mode = "NPU1", npu.ocm_capacity = 65536 : i64} {
  func.func @layer_0_g0(%input: tensor<1x1x64xbf16>) -> tensor<1x1x128xbf16> attributes {axc.input_names = ["input"], axc.output_names = ["output"], axc.layer = 0 : i64, axc.group = 0 : i64, axc.tokens = 1 : i64, axc.history = 16 : i64} {
    %w = axc.param <"axc"::"model.layers.0.w"> : tensor<128x64xi8>
    %s = axc.param <"axc"::"model.layers.0.s"> : tensor<128xf16>
    %out = npu.alloc : !npu.buf<1x1x128xbf16, ddr>
    %x = npu.alloc {offset = 0 : i64} : !npu.buf<1x64xbf16, ocm>
    %t = npu.alloc {offset = 128 : i64} : !npu.buf<32x64xi8, ocm>
    %st = npu.alloc {offset = 2176 : i64} : !npu.buf<32x1xf16, ocm>
    %y = npu.alloc {offset = 2240 : i64} : !npu.buf<1x128xbf16, ocm>
    npu.dma_load %input[0 : 1x64] -> %x : tensor<1x1x64xbf16>, !npu.buf<1x64xbf16, ocm>
    npu.loop %n = 1 to 8 step 2 {
      npu.dma_load %w[1024 * %n + -1024 : 32x64] -> %t : tensor<128x64xi8>, !npu.buf<32x64xi8, ocm>
      npu.dma_load %s[16 * %n + -16 : 32x1] -> %st : tensor<128xf16>, !npu.buf<32x1xf16, ocm>
      npu.matmul %x, %t scales(%st) -> %y[16 * %n + -16 : 1x32 : 128x1] {format = "s8", transpose_b} : !npu.buf<1x64xbf16, ocm>, !npu.buf<32x64xi8, ocm>, !npu.buf<32x1xf16, ocm>, !npu.buf<1x128xbf16, ocm>
    }
    npu.barrier
    npu.dma_store %y -> %out[0 : 1x128] : !npu.buf<1x128xbf16, ocm>, !npu.buf<1x1x128xbf16, ddr>
    %r = npu.to_tensor %out : !npu.buf<1x1x128xbf16, ddr> -> tensor<1x1x128xbf16>
    func.return %r : tensor<1x1x128xbf16>
  }
  func.func @layer_0_g1(%input: tensor<1x4x64xbf16>) -> tensor<1x4x128xbf16> attributes {axc.input_names = ["input"], axc.output_names = ["output"], axc.layer = 0 : i64, axc.group = 1 : i64, axc.tokens = 4 : i64, axc.history = 1 : i64} {
    %w = axc.param <"axc"::"model.layers.0.w"> : tensor<128x64xi8>
    %s = axc.param <"axc"::"model.layers.0.s"> : tensor<128xf16>
    %out = npu.alloc : !npu.buf<1x4x128xbf16, ddr>
    %spill = npu.alloc : !npu.buf<4x128xbf16, ddr>
    %x = npu.alloc {offset = 0 : i64} : !npu.buf<4x64xbf16, ocm>
    %t = npu.alloc {offset = 512 : i64} : !npu.buf<128x64xi8, ocm>
    %st = npu.alloc {offset = 8704 : i64} : !npu.buf<128x1xf16, ocm>
    %y = npu.alloc {offset = 8960 : i64} : !npu.buf<4x128xbf16, ocm>
    npu.dma_load %input[0 : 4x64] -> %x : tensor<1x4x64xbf16>, !npu.buf<4x64xbf16, ocm>
    npu.dma_load %w -> %t : tensor<128x64xi8>, !npu.buf<128x64xi8, ocm>
    npu.dma_load %s[0 : 128x1] -> %st : tensor<128xf16>, !npu.buf<128x1xf16, ocm>
    npu.matmul %x, %t scales(%st) -> %y {format = "s8", transpose_b} : !npu.buf<4x64xbf16, ocm>, !npu.buf<128x64xi8, ocm>, !npu.buf<128x1xf16, ocm>, !npu.buf<4x128xbf16, ocm>
    npu.dma_store %y -> %spill : !npu.buf<4x128xbf16, ocm>, !npu.buf<4x128xbf16, ddr>
    npu.dma_load %spill -> %y : !npu.buf<4x128xbf16, ddr>, !npu.buf<4x128xbf16, ocm>
    npu.act %y -> %y {kind = "silu"} : !npu.buf<4x128xbf16, ocm>, !npu.buf<4x128xbf16, ocm>
    npu.dma_store %y -> %out[0 : 4x128] : !npu.buf<4x128xbf16, ocm>, !npu.buf<1x4x128xbf16, ddr>
    %r = npu.to_tensor %out : !npu.buf<1x4x128xbf16, ddr> -> tensor<1x4x128xbf16>
    func.return %r : tensor<1x4x128xbf16>
  }
  func.func @layer_1_g0(%input: tensor<1x1x64xbf16>) -> tensor<1x1x128xbf16> attributes {axc.input_names = ["input"], axc.output_names = ["output"], axc.layer = 1 : i64, axc.group = 0 : i64, axc.tokens = 1 : i64, axc.history = 16 : i64} {
    %w = axc.param <"axc"::"model.layers.1.w"> : tensor<128x64xi8>
    %s = axc.param <"axc"::"model.layers.1.s"> : tensor<128xf16>
    %out = npu.alloc : !npu.buf<1x1x128xbf16, ddr>
    %x = npu.alloc {offset = 0 : i64} : !npu.buf<1x64xbf16, ocm>
    %t = npu.alloc {offset = 128 : i64} : !npu.buf<32x64xi8, ocm>
    %st = npu.alloc {offset = 2176 : i64} : !npu.buf<32x1xf16, ocm>
    %y = npu.alloc {offset = 2240 : i64} : !npu.buf<1x128xbf16, ocm>
    npu.dma_load %input[0 : 1x64] -> %x : tensor<1x1x64xbf16>, !npu.buf<1x64xbf16, ocm>
    npu.loop %n = 1 to 8 step 2 {
      npu.dma_load %w[1024 * %n + -1024 : 32x64] -> %t : tensor<128x64xi8>, !npu.buf<32x64xi8, ocm>
      npu.dma_load %s[16 * %n + -16 : 32x1] -> %st : tensor<128xf16>, !npu.buf<32x1xf16, ocm>
      npu.matmul %x, %t scales(%st) -> %y[16 * %n + -16 : 1x32 : 128x1] {format = "s8", transpose_b} : !npu.buf<1x64xbf16, ocm>, !npu.buf<32x64xi8, ocm>, !npu.buf<32x1xf16, ocm>, !npu.buf<1x128xbf16, ocm>
    }
    npu.barrier
    npu.dma_store %y -> %out[0 : 1x128] : !npu.buf<1x128xbf16, ocm>, !npu.buf<1x1x128xbf16, ddr>
    %r = npu.to_tensor %out : !npu.buf<1x1x128xbf16, ddr> -> tensor<1x1x128xbf16>
    func.return %r : tensor<1x1x128xbf16>
  }
}

// Addresses are bytes; the loop `%n = 1 to 8 step 2` becomes `l0 = 0 to 4` with the
// offsets rebased and strided per trip. The weight tile streams on its own DMA channel
// and waits (token 3) for the previous trip's matmul to release its buffer.
// CHECK:      ax650.model @layer_0 {chip = "AX650", npu_mode = "NPU1"} {
// CHECK-NEXT:   ax650.segment <"axc"::"model.layers.0.w"> at 0 : tensor<128x64xi8>
// CHECK-NEXT:   ax650.segment <"axc"::"model.layers.0.s"> at 8192 : tensor<128xf16>
// CHECK-NEXT:   ax650.group "decode" (input : tensor<1x1x64xbf16>) -> (output : tensor<1x1x128xbf16>) scratch 0 {
// CHECK-NEXT:     ax650.dma_load c0.dma0 signal 0 src = in0[0 : 1x64 : 128x2] : bf16, dst = ocm[0 : 1x64 : 128x2] : bf16
// CHECK-NEXT:     ax650.loop l0 = 0 to 4 {
// CHECK-NEXT:       ax650.dma_load c0.dma1 wait [3] signal 1 src = params[0 + 2048 * l0 : 32x64 : 64x1] : i8, dst = ocm[128 : 32x64 : 64x1] : i8
// CHECK-NEXT:       ax650.dma_load c0.dma2 wait [3] signal 2 src = params[8192 + 64 * l0 : 32x1 : 2x2] : f16, dst = ocm[2176 : 32x1 : 2x2] : f16
// CHECK-NEXT:       ax650.matmul c0.mx wait [0, 1, 2] signal 3 lhs = ocm[0 : 1x64 : 128x2] : bf16, rhs = ocm[128 : 32x64 : 64x1] : i8, scales = ocm[2176 : 32x1 : 2x2] : f16, out = ocm[2240 + 64 * l0 : 1x32 : 256x2] : bf16 {format = "s8", transpose_b}
// CHECK-NEXT:     }
// CHECK-NEXT:     ax650.dma_store c0.dma3 wait [3] src = ocm[2240 : 1x128 : 256x2] : bf16, dst = out0[0 : 1x128 : 256x2] : bf16
// CHECK-NEXT:   }

// The prefill group reads the same segments at the same offsets; its DDR spill gets an
// aligned place in the group's scratch.
// CHECK-NEXT:   ax650.group "prefill_1" (input : tensor<1x4x64xbf16>) -> (output : tensor<1x4x128xbf16>) scratch 1024 {
// CHECK-NEXT:     ax650.dma_load c0.dma0 signal 0 src = in0[0 : 4x64 : 128x2] : bf16, dst = ocm[0 : 4x64 : 128x2] : bf16
// CHECK-NEXT:     ax650.dma_load c0.dma1 signal 1 src = params[0 : 128x64 : 64x1] : i8, dst = ocm[512 : 128x64 : 64x1] : i8
// CHECK-NEXT:     ax650.dma_load c0.dma2 signal 2 src = params[8192 : 128x1 : 2x2] : f16, dst = ocm[8704 : 128x1 : 2x2] : f16
// CHECK-NEXT:     ax650.matmul c0.mx wait [0, 1, 2] signal 3
// CHECK-NEXT:     ax650.dma_store c0.dma3 wait [3] signal 4 src = ocm[8960 : 4x128 : 256x2] : bf16, dst = scratch[0 : 4x128 : 256x2] : bf16
// CHECK-NEXT:     ax650.dma_load c0.dma0 wait [3, 4] signal 5 src = scratch[0 : 4x128 : 256x2] : bf16, dst = ocm[8960 : 4x128 : 256x2] : bf16
// CHECK-NEXT:     ax650.act c0.vx wait [3, 4, 5] signal 6 input = ocm[8960 : 4x128 : 256x2] : bf16, out = ocm[8960 : 4x128 : 256x2] : bf16 {kind = "silu"}
// CHECK-NEXT:     ax650.dma_store c0.dma3 wait [3, 5, 6] src = ocm[8960 : 4x128 : 256x2] : bf16, dst = out0[0 : 4x128 : 256x2] : bf16
// CHECK-NEXT:   }
// CHECK-NEXT: }

// Layer 1: the same program, re-bound to its own parameters.
// CHECK-NEXT: ax650.model @layer_1 {chip = "AX650", npu_mode = "NPU1"} {
// CHECK-NEXT:   ax650.segment <"axc"::"model.layers.1.w"> at 0 : tensor<128x64xi8>
// CHECK-NEXT:   ax650.segment <"axc"::"model.layers.1.s"> at 8192 : tensor<128xf16>
// CHECK-NEXT:   ax650.group "decode" (input : tensor<1x1x64xbf16>) -> (output : tensor<1x1x128xbf16>) scratch 0 {
// CHECK:          ax650.matmul c0.mx wait [0, 1, 2] signal 3 lhs = ocm[0 : 1x64 : 128x2] : bf16, rhs = ocm[128 : 32x64 : 64x1] : i8

// ERR: axc-opt: error: lower-to-ax620e: the module was tiled for AX650 (AX650 family); run lower-to-ax650 or tile{target=AX620E}
