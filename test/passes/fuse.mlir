// RUN: axc-opt %s -p fuse | FileCheck %s

func.func @mlp(%x: tensor<1x1x64xbf16>, %r: tensor<1x1x64xbf16>, %nw: tensor<64xbf16>, %wg: tensor<128x64xi8>, %sg: tensor<128xf16>, %wu: tensor<128x64xi8>, %su: tensor<128xf16>) -> tensor<1x1x128xbf16> {
  %xb = npu.alloc : !npu.buf<1x64xbf16, ocm>
  %rb = npu.alloc : !npu.buf<1x64xbf16, ocm>
  %sum = npu.alloc : !npu.buf<1x64xbf16, ocm>
  %w = npu.alloc : !npu.buf<64xbf16, ocm>
  %h = npu.alloc : !npu.buf<1x64xbf16, ocm>
  %gate = npu.alloc : !npu.buf<1x128xbf16, ocm>
  %up = npu.alloc : !npu.buf<1x128xbf16, ocm>
  %a = npu.alloc : !npu.buf<1x128xbf16, ocm>
  %y = npu.alloc : !npu.buf<1x128xbf16, ocm>
  %t = npu.alloc : !npu.buf<32x64xi8, ocm>
  %s = npu.alloc : !npu.buf<32x1xf16, ocm>
  %t2 = npu.alloc : !npu.buf<32x64xi8, ocm>
  %s2 = npu.alloc : !npu.buf<32x1xf16, ocm>
  %out = npu.alloc : !npu.buf<1x1x128xbf16, ddr>
  npu.dma_load %x -> %xb : tensor<1x1x64xbf16>, !npu.buf<1x64xbf16, ocm>
  npu.dma_load %r -> %rb : tensor<1x1x64xbf16>, !npu.buf<1x64xbf16, ocm>
  npu.add %xb, %rb -> %sum : !npu.buf<1x64xbf16, ocm>, !npu.buf<1x64xbf16, ocm>, !npu.buf<1x64xbf16, ocm>
  npu.dma_load %nw -> %w : tensor<64xbf16>, !npu.buf<64xbf16, ocm>
  npu.rms_norm %sum, %w -> %h {eps = 1.0e-06 : f64} : !npu.buf<1x64xbf16, ocm>, !npu.buf<64xbf16, ocm>, !npu.buf<1x64xbf16, ocm>
  npu.loop %n = 0 to 4 {
    npu.dma_load %wg[2048 * %n : 32x64] -> %t : tensor<128x64xi8>, !npu.buf<32x64xi8, ocm>
    npu.dma_load %sg[32 * %n : 32x1] -> %s : tensor<128xf16>, !npu.buf<32x1xf16, ocm>
    npu.matmul %h, %t scales(%s) -> %gate[32 * %n : 1x32] {format = "s8", transpose_b} : !npu.buf<1x64xbf16, ocm>, !npu.buf<32x64xi8, ocm>, !npu.buf<32x1xf16, ocm>, !npu.buf<1x128xbf16, ocm>
  }
  npu.loop %n = 0 to 4 {
    npu.dma_load %wu[2048 * %n : 32x64] -> %t2 : tensor<128x64xi8>, !npu.buf<32x64xi8, ocm>
    npu.dma_load %su[32 * %n : 32x1] -> %s2 : tensor<128xf16>, !npu.buf<32x1xf16, ocm>
    npu.matmul %h, %t2 scales(%s2) -> %up[32 * %n : 1x32] {format = "s8", transpose_b} : !npu.buf<1x64xbf16, ocm>, !npu.buf<32x64xi8, ocm>, !npu.buf<32x1xf16, ocm>, !npu.buf<1x128xbf16, ocm>
  }
  npu.act %gate -> %a {kind = "silu"} : !npu.buf<1x128xbf16, ocm>, !npu.buf<1x128xbf16, ocm>
  npu.mul %a, %up -> %y : !npu.buf<1x128xbf16, ocm>, !npu.buf<1x128xbf16, ocm>, !npu.buf<1x128xbf16, ocm>
  npu.dma_store %y -> %out : !npu.buf<1x128xbf16, ocm>, !npu.buf<1x1x128xbf16, ddr>
  %res = npu.to_tensor %out : !npu.buf<1x1x128xbf16, ddr> -> tensor<1x1x128xbf16>
  func.return %res : tensor<1x1x128xbf16>
}

// The residual add and the norm become one op after the norm weight's load.
// CHECK-LABEL: func.func @mlp(
// CHECK-NOT:    %a = npu.alloc
// CHECK-NOT:    %gate = npu.alloc
// CHECK:        npu.dma_load %nw -> %w
// CHECK-NEXT:   npu.add_rms_norm %xb, %rb, %w -> %sum, %h {eps = 1.000000e-06 : f64}
// The gate and up loops merge; each tile pair is multiplied as soon as it exists.
// CHECK-NEXT:   npu.loop %[[N:n.*]] = 0 to 4 {
// CHECK-NEXT:     npu.dma_load %wg[2048 * %[[N]] : 32x64] -> %t
// CHECK-NEXT:     npu.dma_load %wu[2048 * %[[N]] : 32x64] -> %t2
// CHECK-NEXT:     npu.dma_load %sg[32 * %[[N]] : 32x1] -> %s
// CHECK-NEXT:     npu.dma_load %su[32 * %[[N]] : 32x1] -> %s2
// CHECK-NEXT:     npu.matmul %h, %t scales(%s) -> %[[G:.*]] {format = "s8", transpose_b} : {{.*}}, !npu.buf<1x32xbf16, ocm>
// CHECK-NEXT:     npu.matmul %h, %t2 scales(%s2) -> %[[U:.*]] {format = "s8", transpose_b} : {{.*}}, !npu.buf<1x32xbf16, ocm>
// CHECK-NEXT:     npu.act_mul %[[G]], %[[U]] -> %y[32 * %[[N]] : 1x32] {kind = "silu"}
// CHECK-NEXT:   }
// CHECK-NEXT:   npu.dma_store %y -> %out
