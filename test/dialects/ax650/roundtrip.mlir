// RUN: axc-opt %s | axc-opt | FileCheck %s
// RUN: axc-opt %s --print-op-generic | FileCheck %s --check-prefix=CHECK-GENERIC
// RUN: axc-opt %s --print-op-generic | axc-opt | FileCheck %s

// One layer file: parameters placed once in the blob, two shape groups, a loop with
// per-iteration byte strides, DMA channels, the matrix and vector engines, tokens, and an
// NPU3 matmul split over the three cores (they share OCM; core 1 works in its own slice).
builtin.module {
  ax650.model @layer_0 {chip = "AX650N", npu_mode = "NPU3", metadata = {build_options = "{\"w\": \"s8\"}"}} {
    ax650.segment <"axc"::"norm"> at 0 : tensor<64xf32>
    ax650.segment <"axc"::"w"> at 256 : tensor<192x64xi8>
    ax650.segment <"axc"::"s"> at 12544 : tensor<192xf16>
    ax650.group "decode" (input : tensor<1x1x64xbf16>, indices : tensor<1x1xui32>) -> (output : tensor<1x1x192xbf16>) scratch 0 {
      ax650.dma_load c0.dma0 signal 0 src = in0[0 : 1x64 : 128x2] : bf16, dst = ocm[0 : 1x64 : 128x2] : bf16
      ax650.dma_load c0.dma1 signal 1 src = params[0 : 64 : 4] : f32, dst = ocm[256 : 64 : 4] : f32
      ax650.rms_norm c0.vx wait [0, 1] signal 2 input = ocm[0 : 1x64 : 128x2] : bf16, weight = ocm[256 : 64 : 4] : f32, out = ocm[512 : 1x64 : 128x2] : bf16 {eps = 1.000000e-06 : f64}
      ax650.loop l0 = 0 to 3 {
        ax650.dma_load c0.dma0 wait [3] signal 4 src = params[256 + 4096 * l0 : 64x64 : 64x1] : i8, dst = ocm[1024 : 64x64 : 64x1] : i8
        ax650.dma_load c0.dma1 wait [3] signal 5 src = params[12544 + 128 * l0 : 64x1 : 2x2] : f16, dst = ocm[5120 : 64x1 : 2x2] : f16
        ax650.matmul c0.mx wait [2, 4, 5] signal 3 lhs = ocm[512 : 1x64 : 128x2] : bf16, rhs = ocm[1024 : 64x64 : 64x1] : i8, scales = ocm[5120 : 64x1 : 2x2] : f16, out = ocm[6144 + 128 * l0 : 1x64 : 384x2] : bf16 {format = "s8", transpose_b}
      }
      ax650.dma_store c0.dma3 wait [3] src = ocm[6144 : 1x192 : 384x2] : bf16, dst = out0[0 : 1x192 : 384x2] : bf16
    }
    ax650.group "prefill_1" (input : tensor<1x2x64xbf16>, indices : tensor<1x2xui32>) -> (output : tensor<1x2x192xbf16>) scratch 768 {
      ax650.dma_load c0.dma2 signal 0 src = in0[0 : 2x64 : 128x2] : bf16, dst = ocm[0 : 2x64 : 128x2] : bf16
      ax650.dma_load c0.dma1 signal 1 src = params[256 : 192x64 : 64x1] : i8, dst = ocm[1024 : 192x64 : 64x1] : i8
      ax650.dma_load c0.dma1 signal 2 src = params[12544 : 192x1 : 2x2] : f16, dst = ocm[13312 : 192x1 : 2x2] : f16
      ax650.matmul c0.mx wait [0, 1, 2] signal 3 lhs = ocm[0 : 2x64 : 128x2] : bf16, rhs = ocm[1024 : 64x64 : 64x1] : i8, scales = ocm[13312 : 64x1 : 2x2] : f16, out = ocm[14336 : 2x64 : 384x2] : bf16 {format = "s8", transpose_b}
      ax650.matmul c1.mx wait [0, 1, 2] signal 4 lhs = ocm[0 : 2x64 : 128x2] : bf16, rhs = ocm[5120 : 64x64 : 64x1] : i8, scales = ocm[13440 : 64x1 : 2x2] : f16, out = ocm[14464 : 2x64 : 384x2] : bf16 {format = "s8", transpose_b}
      ax650.matmul c2.mx wait [0, 1, 2] signal 5 lhs = ocm[0 : 2x64 : 128x2] : bf16, rhs = ocm[9216 : 64x64 : 64x1] : i8, scales = ocm[13568 : 64x1 : 2x2] : f16, out = ocm[14592 : 2x64 : 384x2] : bf16 {format = "s8", transpose_b}
      ax650.fill c1.vx out = ocm[4194304 : 4x4 : 16x4] : f32 {value = 0.000000e+00 : f64}
      ax650.dma_store c0.dma3 wait [3, 4, 5] src = ocm[14336 : 2x192 : 384x2] : bf16, dst = scratch[0 : 2x192 : 384x2] : bf16
      ax650.dma_load c0.dma0 signal 6 src = scratch[0 : 2x192 : 384x2] : bf16, dst = ocm[14336 : 2x192 : 384x2] : bf16
      ax650.dma_store c0.dma3 wait [6] src = ocm[14336 : 2x192 : 384x2] : bf16, dst = out0[0 : 2x192 : 384x2] : bf16
    }
  }
}

// CHECK:      ax650.model @layer_0 {chip = "AX650N", npu_mode = "NPU3", metadata = {build_options = "{\22w\22: \22s8\22}"}} {
// CHECK-NEXT:   ax650.segment <"axc"::"norm"> at 0 : tensor<64xf32>
// CHECK-NEXT:   ax650.segment <"axc"::"w"> at 256 : tensor<192x64xi8>
// CHECK-NEXT:   ax650.segment <"axc"::"s"> at 12544 : tensor<192xf16>
// CHECK-NEXT:   ax650.group "decode" (input : tensor<1x1x64xbf16>, indices : tensor<1x1xui32>) -> (output : tensor<1x1x192xbf16>) scratch 0 {
// CHECK-NEXT:     ax650.dma_load c0.dma0 signal 0 src = in0[0 : 1x64 : 128x2] : bf16, dst = ocm[0 : 1x64 : 128x2] : bf16
// CHECK-NEXT:     ax650.dma_load c0.dma1 signal 1 src = params[0 : 64 : 4] : f32, dst = ocm[256 : 64 : 4] : f32
// CHECK-NEXT:     ax650.rms_norm c0.vx wait [0, 1] signal 2 input = ocm[0 : 1x64 : 128x2] : bf16, weight = ocm[256 : 64 : 4] : f32, out = ocm[512 : 1x64 : 128x2] : bf16 {eps = 1.000000e-06 : f64}
// CHECK-NEXT:     ax650.loop l0 = 0 to 3 {
// CHECK-NEXT:       ax650.dma_load c0.dma0 wait [3] signal 4 src = params[256 + 4096 * l0 : 64x64 : 64x1] : i8, dst = ocm[1024 : 64x64 : 64x1] : i8
// CHECK-NEXT:       ax650.dma_load c0.dma1 wait [3] signal 5 src = params[12544 + 128 * l0 : 64x1 : 2x2] : f16, dst = ocm[5120 : 64x1 : 2x2] : f16
// CHECK-NEXT:       ax650.matmul c0.mx wait [2, 4, 5] signal 3 lhs = ocm[512 : 1x64 : 128x2] : bf16, rhs = ocm[1024 : 64x64 : 64x1] : i8, scales = ocm[5120 : 64x1 : 2x2] : f16, out = ocm[6144 + 128 * l0 : 1x64 : 384x2] : bf16 {format = "s8", transpose_b}
// CHECK-NEXT:     }
// CHECK-NEXT:     ax650.dma_store c0.dma3 wait [3] src = ocm[6144 : 1x192 : 384x2] : bf16, dst = out0[0 : 1x192 : 384x2] : bf16
// CHECK-NEXT:   }
// CHECK-NEXT:   ax650.group "prefill_1" (input : tensor<1x2x64xbf16>, indices : tensor<1x2xui32>) -> (output : tensor<1x2x192xbf16>) scratch 768 {
// CHECK:          ax650.matmul c1.mx wait [0, 1, 2] signal 4 lhs = ocm[0 : 2x64 : 128x2] : bf16, rhs = ocm[5120 : 64x64 : 64x1] : i8
// CHECK:          ax650.fill c1.vx out = ocm[4194304 : 4x4 : 16x4] : f32 {value = 0.000000e+00 : f64}
// CHECK:          ax650.dma_load c0.dma0 signal 6 src = scratch[0 : 2x192 : 384x2] : bf16, dst = ocm[14336 : 2x192 : 384x2] : bf16

// CHECK-GENERIC: "ax650.model"() <{sym_name = "layer_0", chip = "AX650N", npu_mode = "NPU3"
// CHECK-GENERIC: "ax650.segment"() <{param = #axc.param<"axc"::"norm">, offset = 0 : i64, type = tensor<64xf32>}> : () -> ()
// CHECK-GENERIC: "ax650.loop"() <{trips = 3 : i64}> ({
// CHECK-GENERIC: "ax650.matmul"() <{core = 0 : i64, queue = 4 : i64, views = [#ax650.view<ocm[512 : 1x64 : 128x2] : bf16>, #ax650.view<ocm[1024 : 64x64 : 64x1] : i8>, #ax650.view<ocm[5120 : 64x1 : 2x2] : f16>, #ax650.view<none>, #ax650.view<none>, #ax650.view<ocm[6144 + 128 * l0 : 1x64 : 384x2] : bf16>], wait = [2 : i64, 4 : i64, 5 : i64], signal = 3 : i64, format = "s8", transpose_b}> : () -> ()
