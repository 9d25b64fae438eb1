// RUN: axc-opt %s -p 'lower-to-ax650{float-matmul-use-conv-eu=true}' | FileCheck %s
// RUN: axc-opt %s -p 'lower-to-ax650{float-matmul-use-conv-eu=true}' | axc-opt | FileCheck %s
// RUN: axc-opt %s -p lower-to-ax650 | FileCheck %s --check-prefix=OFF

// FLOAT_MATMUL_USE_CONV_EU=1: the float matmul (activation x activation, here a query
// row times cached keys) is assigned to the convolution units `c0.cv`; the weight matmul
// (s8 weights) stays on the matrix engine `c0.mx`. Without it both run on `c0.mx`. The
// instructions and operands are the same; on its own queue the float matmul now waits on
// the weight matmul's token (token 4), which the in-order matrix queue implied before.
builtin.module attributes {axc.target = "AX650", axc.npu_mode = "NPU1", npu.ocm_capacity = 65536 : i64} {
  func.func @layer_0_g0(%input: tensor<1x1x64xbf16>, %keys: tensor<1x16x64xbf16>) -> tensor<1x1x16xbf16> attributes {axc.input_names = ["input", "keys"], axc.output_names = ["output"], axc.layer = 0 : i64, axc.group = 0 : i64, axc.tokens = 1 : i64, axc.history = 16 : i64} {
    %w = axc.param <"axc"::"model.layers.0.q.s8"> : tensor<64x64xi8>
    %s = axc.param <"axc"::"model.layers.0.q.s8.scales"> : tensor<64xf16>
    %out = npu.alloc : !npu.buf<1x1x16xbf16, ddr>
    %x = npu.alloc {offset = 0 : i64} : !npu.buf<1x64xbf16, ocm>
    %t = npu.alloc {offset = 128 : i64} : !npu.buf<64x64xi8, ocm>
    %st = npu.alloc {offset = 4224 : i64} : !npu.buf<64x1xf16, ocm>
    %q = npu.alloc {offset = 4352 : i64} : !npu.buf<1x64xbf16, ocm>
    %k = npu.alloc {offset = 4480 : i64} : !npu.buf<16x64xbf16, ocm>
    %sc = npu.alloc {offset = 6528 : i64} : !npu.buf<1x16xbf16, ocm>
    npu.dma_load %input[0 : 1x64] -> %x : tensor<1x1x64xbf16>, !npu.buf<1x64xbf16, ocm>
    npu.dma_load %w -> %t : tensor<64x64xi8>, !npu.buf<64x64xi8, ocm>
    npu.dma_load %s[0 : 64x1] -> %st : tensor<64xf16>, !npu.buf<64x1xf16, ocm>
    npu.matmul %x, %t scales(%st) -> %q {format = "s8", transpose_b} : !npu.buf<1x64xbf16, ocm>, !npu.buf<64x64xi8, ocm>, !npu.buf<64x1xf16, ocm>, !npu.buf<1x64xbf16, ocm>
    npu.dma_load %keys[0 : 16x64] -> %k : tensor<1x16x64xbf16>, !npu.buf<16x64xbf16, ocm>
    npu.matmul %q, %k -> %sc {transpose_b, alpha = 0.125 : f64} : !npu.buf<1x64xbf16, ocm>, !npu.buf<16x64xbf16, ocm>, !npu.buf<1x16xbf16, ocm>
    npu.dma_store %sc -> %out[0 : 1x16] : !npu.buf<1x16xbf16, ocm>, !npu.buf<1x1x16xbf16, ddr>
    %r = npu.to_tensor %out : !npu.buf<1x1x16xbf16, ddr> -> tensor<1x1x16xbf16>
    func.return %r : tensor<1x1x16xbf16>
  }
}

// CHECK:      ax650.group "decode" (input : tensor<1x1x64xbf16>, keys : tensor<1x16x64xbf16>) -> (output : tensor<1x1x16xbf16>) scratch 0 {
// CHECK:        ax650.matmul c0.mx wait [0, 1, 2] signal 4 lhs = ocm[0 : 1x64 : 128x2] : bf16, rhs = ocm[128 : 64x64 : 64x1] : i8, {{.*}} {format = "s8", transpose_b}
// CHECK-NEXT:   ax650.matmul c0.cv wait [3, 4] signal 5 lhs = ocm[4352 : 1x64 : 128x2] : bf16, rhs = ocm[4480 : 16x64 : 128x2] : bf16, out = ocm[6528 : 1x16 : 32x2] : bf16 {alpha = 1.250000e-01 : f64, transpose_b}
// CHECK-NEXT:   ax650.dma_store c0.dma3 wait [5]

// OFF-NOT:    c0.cv
// OFF:        ax650.matmul c0.mx wait [0, 1, 2] lhs = ocm[0 : 1x64 : 128x2] : bf16, {{.*}} {format = "s8", transpose_b}
// OFF-NEXT:   ax650.matmul c0.mx wait [3] signal 4 lhs = ocm[4352 : 1x64 : 128x2] : bf16, rhs = ocm[4480 : 16x64 : 128x2] : bf16, {{.*}} {alpha = 1.250000e-01 : f64, transpose_b}
