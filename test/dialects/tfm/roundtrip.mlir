// RUN: axc-opt %s | axc-opt | FileCheck %s
// RUN: axc-opt %s --print-op-generic | FileCheck %s --check-prefix=CHECK-GENERIC
// RUN: axc-opt %s --print-op-generic | axc-opt | FileCheck %s

builtin.module {
  func.func @layer(%kc: tensor<1x?x32xbf16>, %vc: tensor<1x?x32xbf16>, %idx: tensor<1x?xui32>, %x: tensor<1x?x64xbf16>, %mask: tensor<1x?x?xbf16>) -> (tensor<1x?x64xbf16>) {
    %w = axc.param <"model"::"model.layers.0.input_layernorm.weight"> : tensor<64xbf16>
    %h = tfm.rms_norm %x, %w {eps = 1.0e-06 : f64} : (tensor<1x?x64xbf16>, tensor<64xbf16>) -> tensor<1x?x64xbf16>
    %hl = tfm.layer_norm %x, %w, %w {eps = 1.0e-05 : f64} : (tensor<1x?x64xbf16>, tensor<64xbf16>, tensor<64xbf16>) -> tensor<1x?x64xbf16>
    %wq = axc.param <"model"::"q.weight"> : tensor<64x64xbf16>
    %bq = axc.param <"model"::"q.bias"> : tensor<64xbf16>
    %wk = axc.param <"model"::"k.weight"> : tensor<32x64xbf16>
    %q = tfm.linear %h, %wq, %bq : (tensor<1x?x64xbf16>, tensor<64x64xbf16>, tensor<64xbf16>) -> tensor<1x?x64xbf16>
    %k = tfm.linear %h, %wk : (tensor<1x?x64xbf16>, tensor<32x64xbf16>) -> tensor<1x?x32xbf16>
    %qr = tfm.rope %q, %idx {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 500000.0, scaling = "llama3", factor = 8.0, original_max_positions = 8192>} : (tensor<1x?x64xbf16>, tensor<1x?xui32>) -> tensor<1x?x64xbf16>
    %a = tfm.attention %qr, %k, %k, %kc, %vc, %mask {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<1x?x64xbf16>, tensor<1x?x32xbf16>, tensor<1x?x32xbf16>, tensor<1x?x32xbf16>, tensor<1x?x32xbf16>, tensor<1x?x?xbf16>) -> tensor<1x?x64xbf16>
    %a0 = tfm.attention %qr, %k, %k, %mask {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<1x?x64xbf16>, tensor<1x?x32xbf16>, tensor<1x?x32xbf16>, tensor<1x?x?xbf16>) -> tensor<1x?x64xbf16>
    %s = tfm.act %a {kind = "gelu_tanh"} : (tensor<1x?x64xbf16>) -> tensor<1x?x64xbf16>
    %m = tfm.mul %s, %hl : (tensor<1x?x64xbf16>, tensor<1x?x64xbf16>) -> tensor<1x?x64xbf16>
    %o = tfm.add %m, %x : (tensor<1x?x64xbf16>, tensor<1x?x64xbf16>) -> tensor<1x?x64xbf16>
    %c = tfm.cast %o : (tensor<1x?x64xbf16>) -> tensor<1x?x64xf32>
    %tv, %ti = tfm.topk %c {k = 4 : i64} : (tensor<1x?x64xf32>) -> (tensor<1x?x4xf32>, tensor<1x?x4xi32>)
    func.return %o : tensor<1x?x64xbf16>
  }
}

// CHECK:      %w = axc.param <"model"::"model.layers.0.input_layernorm.weight"> : tensor<64xbf16>
// CHECK-NEXT: %h = tfm.rms_norm %x, %w {eps = 1.000000e-06 : f64} : (tensor<1x?x64xbf16>, tensor<64xbf16>) -> tensor<1x?x64xbf16>
// CHECK-NEXT: %hl = tfm.layer_norm %x, %w, %w {eps = 1.000000e-05 : f64}
// CHECK:      %q = tfm.linear %h, %wq, %bq : (tensor<1x?x64xbf16>, tensor<64x64xbf16>, tensor<64xbf16>) -> tensor<1x?x64xbf16>
// CHECK-NEXT: %k = tfm.linear %h, %wk : (tensor<1x?x64xbf16>, tensor<32x64xbf16>) -> tensor<1x?x32xbf16>
// CHECK-NEXT: %qr = tfm.rope %q, %idx {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 500000.0, scaling = "llama3", factor = 8.0, original_max_positions = 8192>}
// CHECK-NEXT: %a = tfm.attention %qr, %k, %k, %kc, %vc, %mask {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 2.500000e-01 : f64}
// CHECK-NEXT: %a0 = tfm.attention %qr, %k, %k, %mask {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 2.500000e-01 : f64} : (tensor<1x?x64xbf16>, tensor<1x?x32xbf16>, tensor<1x?x32xbf16>, tensor<1x?x?xbf16>) -> tensor<1x?x64xbf16>
// CHECK-NEXT: %s = tfm.act %a {kind = "gelu_tanh"}
// CHECK-NEXT: %m = tfm.mul %s, %hl
// CHECK-NEXT: %o = tfm.add %m, %x
// CHECK-NEXT: %c = tfm.cast %o : (tensor<1x?x64xbf16>) -> tensor<1x?x64xf32>
// CHECK-NEXT: %tv, %ti = tfm.topk %c {k = 4 : i64} : (tensor<1x?x64xf32>) -> (tensor<1x?x4xf32>, tensor<1x?x4xi32>)

// CHECK-GENERIC: "tfm.rms_norm"(%x, %w) <{eps = 1.000000e-06 : f64}>
// CHECK-GENERIC: "tfm.attention"(%qr, %k, %k, %kc, %vc, %mask)
// CHECK-GENERIC: "tfm.attention"(%qr, %k, %k, %mask)
