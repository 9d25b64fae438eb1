// RUN: axc-opt %s --parsing-diagnostics --verify-diagnostics --split-input-file | FileCheck %s

func.func @f(%w: tensor<128x64xi8>) {
  %t = npu.alloc : !npu.buf<32x64xi8, ocm>
  npu.loop %n = 0 to 5 {
    npu.dma_load %w[2048 * %n : 32x64] -> %t : tensor<128x64xi8>, !npu.buf<32x64xi8, ocm>
  }
  func.return
}
// CHECK: 'npu.dma_load' op view of src reaches elements [0, 10239] outside its 8192 elements

// -----

func.func @f(%w: tensor<32x64xbf16>) {
  %t = npu.alloc : !npu.buf<32x64xf32, ocm>
  npu.dma_load %w -> %t : tensor<32x64xbf16>, !npu.buf<32x64xf32, ocm>
  func.return
}
// CHECK: 'npu.dma_load' op source and destination element types differ (DMA does not convert)

// -----

func.func @f(%w: tensor<32x64xf32>) {
  %t = npu.alloc : !npu.buf<32x64xf32, ddr>
  npu.dma_load %w -> %t : tensor<32x64xf32>, !npu.buf<32x64xf32, ddr>
  func.return
}
// CHECK: 'npu.dma_load' op moves ddr to ocm

// -----

func.func @f() {
  %x = npu.alloc : !npu.buf<1x64xf32, ocm>
  %w = npu.alloc : !npu.buf<32x48xf32, ocm>
  %y = npu.alloc : !npu.buf<1x32xf32, ocm>
  npu.matmul %x, %w -> %y {transpose_b} : !npu.buf<1x64xf32, ocm>, !npu.buf<32x48xf32, ocm>, !npu.buf<1x32xf32, ocm>
  func.return
}
// CHECK: 'npu.matmul' op contracts 1x64 with 32x48: K 64 != 48

// -----

func.func @f() {
  %x = npu.alloc : !npu.buf<1x64xf32, ocm>
  %w = npu.alloc : !npu.buf<32x64xi8, ocm>
  %y = npu.alloc : !npu.buf<1x32xf32, ocm>
  npu.matmul %x, %w -> %y {format = "s8", transpose_b} : !npu.buf<1x64xf32, ocm>, !npu.buf<32x64xi8, ocm>, !npu.buf<1x32xf32, ocm>
  func.return
}
// CHECK: 'npu.matmul' op quantized formats need scales, float needs none

// -----

func.func @f() {
  %x = npu.alloc {alignment = 64 : i64, offset = 96 : i64} : !npu.buf<1x64xf32, ocm>
  func.return
}
// CHECK: 'npu.alloc' op offset 96 is not aligned to 64

// -----

func.func @f() {
  %x = npu.alloc : !npu.buf<1x64xf32, sram>
  func.return
}
// CHECK: buffer space must be ocm or ddr, got sram

// -----

func.func @f(%i: index) {
  %x = npu.alloc : !npu.buf<4x64xf32, ocm>
  %w = npu.alloc : !npu.buf<64xf32, ocm>
  npu.rms_norm %x[64 * %i : 1x64], %w -> %x[0 : 1x64] {eps = 1.0e-06 : f64} : !npu.buf<4x64xf32, ocm>, !npu.buf<64xf32, ocm>, !npu.buf<4x64xf32, ocm>
  func.return
}
// CHECK: 'npu.rms_norm' op view of input: view offsets may only use npu.loop induction variables

// -----

func.func @f() {
  %x = npu.alloc : !npu.buf<4x64xf32, ocm>
  %w = npu.alloc : !npu.buf<32xf32, ocm>
  npu.rms_norm %x, %w -> %x {eps = 1.0e-06 : f64} : !npu.buf<4x64xf32, ocm>, !npu.buf<32xf32, ocm>, !npu.buf<4x64xf32, ocm>
  func.return
}
// CHECK: 'npu.rms_norm' op weight view 32 is not [64]

// -----

func.func @f() {
  %s = npu.alloc : !npu.buf<2x4x8xf32, ocm>
  %m = npu.alloc : !npu.buf<2x4xf32, ocm>
  npu.online_softmax %s -> %s, %m, %m, %m : !npu.buf<2x4x8xf32, ocm>, !npu.buf<2x4x8xf32, ocm>, !npu.buf<2x4xf32, ocm>, !npu.buf<2x4xf32, ocm>, !npu.buf<2x4xf32, ocm>
  func.return
}
// CHECK: 'npu.online_softmax' op max view 2x4 is not [2x4x1]

// -----

func.func @f() {
  %a = npu.alloc : !npu.buf<4x64xf32, ocm>
  %b = npu.alloc : !npu.buf<4x32xf32, ocm>
  npu.add %a, %b -> %a : !npu.buf<4x64xf32, ocm>, !npu.buf<4x32xf32, ocm>, !npu.buf<4x64xf32, ocm>
  func.return
}
// CHECK: 'npu.add' op rhs view 4x32 does not broadcast to 4x64
