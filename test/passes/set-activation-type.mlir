// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=15 prefill-len=4 last-kv-cache-len=4},set-activation-type{hidden=fp16}' | FileCheck %s
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=15},quantize-weights,set-activation-type' --params-out %t.safetensors | FileCheck %s --check-prefix=BF16

// Hidden states and KV rows cross the layer boundary as fp16 and stay fp16 between ops;
// the mask keeps bf16 (its -65536 does not fit fp16) and is widened for the attention.
// CHECK:      builtin.module attributes {{{.*}}axc.activation_type = "fp16"}
// CHECK:      func.func @layer_0_g0(%K_cache: tensor<1x15x8xf16>, %V_cache: tensor<1x15x8xf16>, %indices: tensor<1x1xui32>, %input: tensor<1x1x16xf16>, %mask: tensor<1x1x16xbf16>) -> (tensor<1x1x8xf16>, tensor<1x1x8xf16>, tensor<1x1x16xf16>)
// CHECK-NEXT:   %mask_1 = tfm.cast %mask : (tensor<1x1x16xbf16>) -> tensor<1x1x16xf32>
// CHECK-NEXT:   %0 = axc.param <"model"::"model.layers.0.input_layernorm.weight"> : tensor<16xbf16>
// CHECK-NEXT:   %1 = tfm.rms_norm %input, %0 {eps = 1.000000e-06 : f64} : (tensor<1x1x16xf16>, tensor<16xbf16>) -> tensor<1x1x16xf16>
// CHECK:        tfm.attention {{.*}}%K_cache, %V_cache, %mask_1 {{.*}} -> tensor<1x1x16xf16>
// CHECK-NOT:    tfm.cast
// CHECK:        tfm.add {{.*}} -> tensor<1x1x16xf16>
// CHECK:        %[[OUT:.*]] = tfm.add {{.*}} -> tensor<1x1x16xf16>
// CHECK-NEXT:   func.return %{{.*}}, %{{.*}}, %[[OUT]] : tensor<1x1x8xf16>, tensor<1x1x8xf16>, tensor<1x1x16xf16>
// CHECK:      func.func @layer_0_g1(%K_cache: tensor<1x1x16xf16>, %V_cache: tensor<1x1x16xf16>, %indices: tensor<1x4xui32>, %input: tensor<1x4x16xf16>, %mask: tensor<1x4x4xbf16>)
// CHECK:      func.func @layer_0_g2(%K_cache: tensor<1x4x8xf16>, %V_cache: tensor<1x4x8xf16>, %indices: tensor<1x4xui32>, %input: tensor<1x4x16xf16>, %mask: tensor<1x4x8xbf16>)
// The logits stay fp32.
// CHECK:      func.func @post(%input: tensor<1x1x16xf16>) -> tensor<1x1x32xf32>
// CHECK-NEXT:   axc.param
// CHECK-NEXT:   tfm.rms_norm %input, %{{.*}} -> tensor<1x1x16xf16>
// CHECK-NEXT:   axc.param
// CHECK-NEXT:   %[[L:.*]] = tfm.linear %{{.*}} : (tensor<1x1x16xf16>, tensor<32x16xbf16>) -> tensor<1x1x32xf32>
// CHECK-NEXT:   func.return %[[L]] : tensor<1x1x32xf32>

// bf16 (the default): the boundary casts fold away and quant.linear results are bf16.
// BF16:       func.func @layer_0_g0(%K_cache: tensor<1x15x8xbf16>
// BF16-NOT:   tfm.cast %input
// BF16:       quant.linear {{.*}} -> tensor<1x1x16xbf16>
