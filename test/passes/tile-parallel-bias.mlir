// RUN: axc-opt %s -p 'tile{target=AX650}' | FileCheck %s

// Phi-2's parallel block (one LayerNorm with bias feeds both branches; their sum, then the
// residual) and @post's LayerNorm with bias and lm_head bias, at the level tile reads.
builtin.module {
  func.func @layer_0_g0(%input: tensor<1x1x32xf32>) -> tensor<1x1x32xf32> attributes {axc.group = 0 : i64} {
    %w = axc.param <"model"::"model.layers.0.input_layernorm.weight"> : tensor<32xf32>
    %b = axc.param <"model"::"model.layers.0.input_layernorm.bias"> : tensor<32xf32>
    %wa = axc.param <"model"::"model.layers.0.self_attn.dense.weight"> : tensor<32x32xbf16>
    %ba = axc.param <"model"::"model.layers.0.self_attn.dense.bias"> : tensor<32xf32>
    %wf = axc.param <"model"::"model.layers.0.mlp.fc2.weight"> : tensor<32x32xbf16>
    %bf = axc.param <"model"::"model.layers.0.mlp.fc2.bias"> : tensor<32xf32>
    %h = tfm.layer_norm %input, %w, %b {eps = 1.0e-05 : f64} : (tensor<1x1x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x1x32xf32>
    %a = tfm.linear %h, %wa, %ba : (tensor<1x1x32xf32>, tensor<32x32xbf16>, tensor<32xf32>) -> tensor<1x1x32xf32>
    %f = tfm.linear %h, %wf, %bf : (tensor<1x1x32xf32>, tensor<32x32xbf16>, tensor<32xf32>) -> tensor<1x1x32xf32>
    %s = tfm.add %a, %f : (tensor<1x1x32xf32>, tensor<1x1x32xf32>) -> tensor<1x1x32xf32>
    %o = tfm.add %s, %input : (tensor<1x1x32xf32>, tensor<1x1x32xf32>) -> tensor<1x1x32xf32>
    func.return %o : tensor<1x1x32xf32>
  }
  func.func @post(%input: tensor<1x1x32xf32>) -> tensor<1x1x64xf32> {
    %w = axc.param <"model"::"model.norm.weight"> : tensor<32xf32>
    %b = axc.param <"model"::"model.norm.bias"> : tensor<32xf32>
    %hw = axc.param <"model"::"lm_head.weight"> : tensor<64x32xbf16>
    %hb = axc.param <"model"::"lm_head.bias"> : tensor<64xf32>
    %n = tfm.layer_norm %input, %w, %b {eps = 1.0e-05 : f64} : (tensor<1x1x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x1x32xf32>
    %l = tfm.linear %n, %hw, %hb : (tensor<1x1x32xf32>, tensor<64x32xbf16>, tensor<64xf32>) -> tensor<1x1x64xf32>
    func.return %l : tensor<1x1x64xf32>
  }
}

// CHECK:      func.func @layer_0_g0
// CHECK:      npu.dma_load %input[0 : 1x32] -> %[[X:.*]] : tensor<1x1x32xf32>, !npu.buf<1x32xf32, ocm>
// CHECK:      npu.layer_norm %[[X]], %{{.*}} bias(%{{.*}}) -> %[[H:.*]] {eps = 1.000000e-05 : f64}
// CHECK:      npu.matmul %[[H]], %{{.*}} bias(%{{.*}}) -> %[[A:.*]] {transpose_b}
// CHECK:      npu.matmul %[[H]], %{{.*}} bias(%{{.*}}) -> %[[F:.*]] {transpose_b}
// CHECK-NEXT: npu.add %[[A]], %[[F]] -> %[[S:.*]] :
// CHECK-NEXT: npu.add %[[S]], %[[X]] -> %{{.*}} :
// CHECK:      func.func @post
// CHECK:      npu.layer_norm %{{.*}}, %{{.*}} bias(%{{.*}}) -> %[[N:.*]] {eps = 1.000000e-05 : f64}
// CHECK:      npu.dma_load %hb[0 : 1x64] -> %[[HB:.*]] : tensor<64xf32>, !npu.buf<1x64xf32, ocm>
// CHECK-NEXT: npu.matmul %[[N]], %{{.*}} bias(%[[HB]]) -> %{{.*}} {transpose_b}
