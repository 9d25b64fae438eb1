// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | FileCheck %s
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt | FileCheck %s

// CHECK:      builtin.module attributes {axc.scopes = {model = "{{.*}}tiny-qwen2"}, axc.model_type = "qwen2", axc.num_layers = 2 : i64}
// CHECK:      func.func @embed(%input_ids: tensor<1x?xui32>) -> tensor<1x?x16xf32>
// CHECK-NEXT:   %{{.*}} = axc.param <"model"::"model.embed_tokens.weight"> : tensor<32x16xbf16>
// CHECK-NEXT:   %{{.*}} = tfm.embedding %input_ids,
// CHECK:      func.func @layer_0(%K_cache: tensor<1x?x8xf32>, %V_cache: tensor<1x?x8xf32>, %indices: tensor<1x?xui32>, %input: tensor<1x?x16xf32>, %mask: tensor<1x?x?xf32>) -> (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x16xf32>)
// CHECK-SAME:   axc.input_names = ["K_cache", "V_cache", "indices", "input", "mask"], axc.output_names = ["K_cache_out", "V_cache_out", "output"], axc.layer = 0 : i64
// CHECK:        %[[LN:.*]] = axc.param <"model"::"model.layers.0.input_layernorm.weight"> : tensor<16xbf16>
// CHECK-NEXT:   %[[H:.*]] = tfm.rms_norm %input, %[[LN]] {eps = 1.000000e-06 : f64}
// CHECK:        %[[Q:.*]] = tfm.linear %[[H]], %{{.*}}, %{{.*}} : (tensor<1x?x16xf32>, tensor<16x16xbf16>, tensor<16xbf16>) -> tensor<1x?x16xf32>
// CHECK:        %[[K:.*]] = tfm.linear %[[H]], %{{.*}}, %{{.*}} : (tensor<1x?x16xf32>, tensor<8x16xbf16>, tensor<8xbf16>) -> tensor<1x?x8xf32>
// CHECK:        %[[V:.*]] = tfm.linear %[[H]]
// CHECK:        %[[QR:.*]] = tfm.rope %[[Q]], %indices {num_heads = 2 : i64, head_dim = 8 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 1000000.0>}
// CHECK:        %[[KR:.*]] = tfm.rope %[[K]], %indices {num_heads = 1 : i64
// CHECK:        tfm.attention %[[QR]], %[[KR]], %[[V]], %K_cache, %V_cache, %mask {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, scale = 0.35355339059327373 : f64}
// CHECK:        tfm.act %{{.*}} {kind = "silu"}
// CHECK:        func.return %[[KR]], %[[V]], %{{.*}} : tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x16xf32>
// CHECK:      func.func @layer_1(
// CHECK:      func.func @post(%input: tensor<1x?x16xf32>) -> tensor<1x?x32xf32>
// CHECK-NEXT:   axc.param <"model"::"model.norm.weight">
// CHECK-NEXT:   tfm.rms_norm
// CHECK-NEXT:   axc.param <"model"::"model.embed_tokens.weight"> : tensor<32x16xbf16>
// CHECK-NEXT:   tfm.linear
