// RUN: axc-opt %s | axc-opt | FileCheck %s
// RUN: axc-opt %s --print-op-generic | axc-opt | FileCheck %s

// One attention step of a soft-capped, windowed layer: cap the scores, add the mask,
// hide keys outside the window (cache keys numbered by iota, new keys by their positions).
builtin.module {
  func.func @f(%mask: tensor<1x2x10xf32>, %idx: tensor<1x2xui32>) {
    %sc = npu.alloc : !npu.buf<2x2x8xf32, ocm>
    %pos = npu.alloc : !npu.buf<2xui32, ocm>
    %kp = npu.alloc : !npu.buf<8xui32, ocm>
    %mt = npu.alloc : !npu.buf<2x8xf32, ocm>
    npu.iota -> %kp : !npu.buf<8xui32, ocm>
    npu.softcap %sc -> %sc {cap = 5.000000e+01 : f64} : !npu.buf<2x2x8xf32, ocm>, !npu.buf<2x2x8xf32, ocm>
    npu.add %sc, %mt -> %sc : !npu.buf<2x2x8xf32, ocm>, !npu.buf<2x8xf32, ocm>, !npu.buf<2x2x8xf32, ocm>
    npu.window_mask %sc, %pos, %kp -> %sc {window = 4 : i64} : !npu.buf<2x2x8xf32, ocm>, !npu.buf<2xui32, ocm>, !npu.buf<8xui32, ocm>, !npu.buf<2x2x8xf32, ocm>
    %x = npu.alloc : !npu.buf<2x32xf32, ocm>
    %e = npu.alloc : !npu.buf<8xf32, ocm>
    npu.rope %x, %pos ext_factors(%e) -> %x {num_heads = 2 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, scaling = "longrope", mscale = 1.19>} : !npu.buf<2x32xf32, ocm>, !npu.buf<2xui32, ocm>, !npu.buf<8xf32, ocm>, !npu.buf<2x32xf32, ocm>
    func.return
  }
}

// CHECK:      npu.iota -> %kp : !npu.buf<8xui32, ocm>
// CHECK-NEXT: npu.softcap %sc -> %sc {cap = 5.000000e+01 : f64}
// CHECK-NEXT: npu.add %sc, %mt -> %sc
// CHECK-NEXT: npu.window_mask %sc, %pos, %kp -> %sc {window = 4 : i64}
// CHECK:      npu.rope %x, %pos ext_factors(%e) -> %x {num_heads = 2 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, scaling = "longrope", mscale = 1.19>}
