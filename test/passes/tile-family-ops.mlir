// RUN: axc-opt %s -p 'tile{target=AX650}' | FileCheck %s
// RUN: axc-opt %s -p 'tile{target=AX620E},fuse,double-buffer,allocate-ocm,lower-to-ax620e' | FileCheck %s --check-prefix=TARGET
// RUN: axc-opt %s -p 'tile{target=AX650},fuse,double-buffer,allocate-ocm,lower-to-ax650' | FileCheck %s --check-prefix=AX650

// A soft-capped attention with a sliding window of 4: per KV tile the scores are capped,
// masked by the runtime's mask, then by the window (cache keys numbered by one iota, new
// keys by their positions); a longrope reads its factor table; @post caps the logits.
builtin.module {
  func.func @layer_0_g0(%K_cache: tensor<1x8x16xf32>, %V_cache: tensor<1x8x16xf32>, %indices: tensor<1x1xui32>, %input: tensor<1x1x32xf32>, %mask: tensor<1x1x9xf32>, %kv: tensor<1x1x16xf32>) -> tensor<1x1x32xf32> attributes {axc.group = 0 : i64} {
    %a = tfm.attention %input, %kv, %kv, %K_cache, %V_cache, %indices, %mask {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 16 : i64, scale = 0.25 : f64, softcap = 50.0 : f64, sliding_window = 4 : i64} : (tensor<1x1x32xf32>, tensor<1x1x16xf32>, tensor<1x1x16xf32>, tensor<1x8x16xf32>, tensor<1x8x16xf32>, tensor<1x1xui32>, tensor<1x1x9xf32>) -> tensor<1x1x32xf32>
    func.return %a : tensor<1x1x32xf32>
  }
  func.func @layer_1_g0(%indices: tensor<1x1xui32>, %input: tensor<1x1x32xf32>) -> tensor<1x1x32xf32> attributes {axc.group = 0 : i64} {
    %ext = axc.param <"model"::"model.layers.1.self_attn.rotary_emb.ext_factors"> : tensor<8xf32>
    %r = tfm.rope %input, %indices, %ext {num_heads = 2 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, scaling = "longrope", mscale = 1.19>} : (tensor<1x1x32xf32>, tensor<1x1xui32>, tensor<8xf32>) -> tensor<1x1x32xf32>
    func.return %r : tensor<1x1x32xf32>
  }
  func.func @post(%input: tensor<1x1x32xf32>) -> tensor<1x1x32xf32> {
    %c = tfm.softcap %input {cap = 30.0 : f64} : (tensor<1x1x32xf32>) -> tensor<1x1x32xf32>
    func.return %c : tensor<1x1x32xf32>
  }
}

// CHECK:      npu.dma_load %indices[0 : 1] -> %[[POS:.*]] : tensor<1x1xui32>, !npu.buf<1xui32, ocm>
// CHECK-NEXT: npu.iota -> %[[KP:.*]] : !npu.buf<8xui32, ocm>
// CHECK:      npu.matmul %{{.*}}, %[[K:.*]] -> %[[SC:.*]] {transpose_b, alpha = 2.500000e-01 : f64}
// CHECK-NEXT: npu.softcap %[[SC]] -> %[[SC]] {cap = 5.000000e+01 : f64}
// CHECK-NEXT: npu.add %[[SC]], %{{.*}} -> %[[SC]]
// CHECK-NEXT: npu.window_mask %[[SC]], %[[POS]], %[[KP]] -> %[[SC]] {window = 4 : i64}
// CHECK-NEXT: npu.online_softmax %[[SC]]
// The new row's key position is its own position.
// CHECK:      npu.softcap %[[SC]][0 : 2x1x1 : 8x8x1]
// CHECK:      npu.window_mask %[[SC]][0 : 2x1x1 : 8x8x1], %[[POS]], %[[POS]] -> %[[SC]][0 : 2x1x1 : 8x8x1] {window = 4 : i64}
// A longrope loads its factor table once, beside the positions.
// CHECK:      func.func @layer_1_g0
// CHECK:      npu.dma_load %ext -> %[[EXT:.*]] : tensor<8xf32>, !npu.buf<8xf32, ocm>
// CHECK:      npu.rope %{{.*}}, %{{.*}} ext_factors(%[[EXT]]) -> %{{.*}} {{{.*}}rope = #tfm.rope<{{.*}}scaling = "longrope", mscale = 1.19>}
// CHECK:      func.func @post
// CHECK:      npu.softcap %{{.*}} -> %{{.*}} {cap = 3.000000e+01 : f64} : !npu.buf<1x32xf32, ocm>, !npu.buf<1x32xf32, ocm>

// TARGET:     ax620e.iota c0.vx out = ocm[{{.*}} : 8 : 4] : ui32
// TARGET:     ax620e.softcap c0.vx {{.*}} {cap = 5.000000e+01 : f64}
// TARGET:     ax620e.window_mask c0.vx {{.*}} scores = ocm[{{.*}} : 2x1x8 : 32x32x4] : f32, query_positions = ocm[{{.*}} : 1 : 4] : ui32, key_positions = ocm[{{.*}} : 8 : 4] : ui32, {{.*}} {window = 4 : i64}
// TARGET:     ax620e.rope c0.vx {{.*}} ext_factors = ocm[{{.*}} : 8 : 4] : f32, {{.*}}mscale = 1.190000e+00 : f64
// TARGET:     ax620e.softcap c0.vx {{.*}} {cap = 3.000000e+01 : f64}

// AX650 has the same vector ops.
// AX650:      ax650.iota c0.vx out = ocm[{{.*}} : 8 : 4] : ui32
// AX650:      ax650.softcap c0.vx {{.*}} {cap = 5.000000e+01 : f64}
// AX650:      ax650.window_mask c0.vx {{.*}} scores = ocm[{{.*}} : 2x1x8 : 32x32x4] : f32, query_positions = ocm[{{.*}} : 1 : 4] : ui32, key_positions = ocm[{{.*}} : 8 : 4] : ui32, {{.*}} {window = 4 : i64}
// AX650:      ax650.rope c0.vx {{.*}} ext_factors = ocm[{{.*}} : 8 : 4] : f32, {{.*}}mscale = 1.190000e+00 : f64
// AX650:      ax650.softcap c0.vx {{.*}} {cap = 3.000000e+01 : f64}
