// RUN: axc-opt %s | axc-opt | FileCheck %s
// RUN: axc-opt %s --print-op-generic | axc-opt | FileCheck %s

// Qwen3 normalises each head of q and k before RoPE, HunYuan after; the op is the same.
builtin.module {
  func.func @qk(%q: tensor<1x?x96xbf16>, %k: tensor<1x?x32xbf16>, %idx: tensor<1x?xui32>) -> (tensor<1x?x96xbf16>, tensor<1x?x32xbf16>) {
    %wq = axc.param <"model"::"model.layers.0.self_attn.q_norm.weight"> : tensor<16xbf16>
    %wk = axc.param <"model"::"model.layers.0.self_attn.k_norm.weight"> : tensor<16xbf16>
    %qn = tfm.head_norm %q, %wq {head_dim = 16 : i64, eps = 1.0e-06 : f64} : (tensor<1x?x96xbf16>, tensor<16xbf16>) -> tensor<1x?x96xbf16>
    %qr = tfm.rope %qn, %idx {num_heads = 6 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 1000000.0>} : (tensor<1x?x96xbf16>, tensor<1x?xui32>) -> tensor<1x?x96xbf16>
    %kr = tfm.rope %k, %idx {num_heads = 2 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 1000000.0>} : (tensor<1x?x32xbf16>, tensor<1x?xui32>) -> tensor<1x?x32xbf16>
    %kn = tfm.head_norm %kr, %wk {head_dim = 16 : i64, eps = 1.0e-05 : f64} : (tensor<1x?x32xbf16>, tensor<16xbf16>) -> tensor<1x?x32xbf16>
    func.return %qr, %kn : tensor<1x?x96xbf16>, tensor<1x?x32xbf16>
  }
}

// CHECK:      %qn = tfm.head_norm %q, %wq {head_dim = 16 : i64, eps = 1.000000e-06 : f64} : (tensor<1x?x96xbf16>, tensor<16xbf16>) -> tensor<1x?x96xbf16>
// CHECK-NEXT: %qr = tfm.rope %qn, %idx
// CHECK:      %kn = tfm.head_norm %kr, %wk {head_dim = 16 : i64, eps = 1.000000e-05 : f64} : (tensor<1x?x32xbf16>, tensor<16xbf16>) -> tensor<1x?x32xbf16>
