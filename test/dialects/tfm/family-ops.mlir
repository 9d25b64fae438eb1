// RUN: axc-opt %s | axc-opt | FileCheck %s
// RUN: axc-opt %s --print-op-generic | FileCheck %s --check-prefix=CHECK-GENERIC
// RUN: axc-opt %s --print-op-generic | axc-opt | FileCheck %s

// Gemma2-style attention: scores soft-capped before the mask, a sliding window kept
// from the layer's positions; logits soft-capped; a longrope with its factor table.
builtin.module {
  func.func @layer(%q: tensor<1x?x64xf32>, %k: tensor<1x?x32xf32>, %kc: tensor<1x?x32xf32>, %mask: tensor<1x?x?xf32>, %idx: tensor<1x?xui32>) -> tensor<1x?x64xf32> {
    %a = tfm.attention %q, %k, %k, %kc, %kc, %idx, %mask {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, softcap = 50.0 : f64, sliding_window = 4096 : i64} : (tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?xui32>, tensor<1x?x?xf32>) -> tensor<1x?x64xf32>
    %b = tfm.attention %q, %k, %k, %kc, %kc, %mask {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, softcap = 50.0 : f64} : (tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x?xf32>) -> tensor<1x?x64xf32>
    %c = tfm.softcap %b {cap = 30.0 : f64} : (tensor<1x?x64xf32>) -> tensor<1x?x64xf32>
    %ext = axc.param <"model"::"model.layers.0.self_attn.rotary_emb.ext_factors"> : tensor<8xf32>
    %r = tfm.rope %c, %idx, %ext {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, scaling = "longrope", mscale = 1.19>} : (tensor<1x?x64xf32>, tensor<1x?xui32>, tensor<8xf32>) -> tensor<1x?x64xf32>
    func.return %r : tensor<1x?x64xf32>
  }
}

// CHECK:      %a = tfm.attention %q, %k, %k, %kc, %kc, %idx, %mask {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 2.500000e-01 : f64, softcap = 5.000000e+01 : f64, sliding_window = 4096 : i64}
// CHECK-NEXT: %b = tfm.attention %q, %k, %k, %kc, %kc, %mask {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 2.500000e-01 : f64, softcap = 5.000000e+01 : f64}
// CHECK-NEXT: %c = tfm.softcap %b {cap = 3.000000e+01 : f64} : (tensor<1x?x64xf32>) -> tensor<1x?x64xf32>

// CHECK-NEXT: %ext = axc.param
// CHECK-NEXT: %r = tfm.rope %c, %idx, %ext {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, scaling = "longrope", mscale = 1.19>}

// CHECK-GENERIC: "tfm.attention"(%q, %k, %k, %kc, %kc, %idx, %mask) <{{.*}}sliding_window = 4096 : i64
// CHECK-GENERIC: "tfm.softcap"(%b) <{cap = 3.000000e+01 : f64}>
