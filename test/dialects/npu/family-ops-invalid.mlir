// RUN: axc-opt %s --parsing-diagnostics --verify-diagnostics --split-input-file | FileCheck %s

func.func @f() {
  %sc = npu.alloc : !npu.buf<2x2x8xf32, ocm>
  %pos = npu.alloc : !npu.buf<3xui32, ocm>
  %kp = npu.alloc : !npu.buf<8xui32, ocm>
  npu.window_mask %sc, %pos, %kp -> %sc {window = 4 : i64} : !npu.buf<2x2x8xf32, ocm>, !npu.buf<3xui32, ocm>, !npu.buf<8xui32, ocm>, !npu.buf<2x2x8xf32, ocm>
  func.return
}
// CHECK: 'npu.window_mask' op query_positions view 3 is not [2]

// -----

func.func @f() {
  %kp = npu.alloc : !npu.buf<2x8xui32, ocm>
  npu.iota -> %kp : !npu.buf<2x8xui32, ocm>
  func.return
}
// CHECK: 'npu.iota' op numbers 1-D views, got 2x8

// -----

func.func @f() {
  %sc = npu.alloc : !npu.buf<2x8xf32, ocm>
  npu.softcap %sc -> %sc {cap = -2.0 : f64} : !npu.buf<2x8xf32, ocm>, !npu.buf<2x8xf32, ocm>
  func.return
}
// CHECK: 'npu.softcap' op cap -2.0 must be positive

// -----

func.func @f() {
  %x = npu.alloc : !npu.buf<2x32xf32, ocm>
  %pos = npu.alloc : !npu.buf<2xui32, ocm>
  %e = npu.alloc : !npu.buf<4xf32, ocm>
  npu.rope %x, %pos ext_factors(%e) -> %x {num_heads = 2 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, scaling = "longrope">} : !npu.buf<2x32xf32, ocm>, !npu.buf<2xui32, ocm>, !npu.buf<4xf32, ocm>, !npu.buf<2x32xf32, ocm>
  func.return
}
// CHECK: 'npu.rope' op ext_factors view 4 is not [8]
