// RUN: axc-translate --import-hf %fixtures/gptq/qwen2-tiny-gptq-int4-actorder | FileCheck %s --check-prefix=TFM
// RUN: axc-translate --import-hf %fixtures/gptq/qwen2-tiny-gptq-int4-actorder | axc-opt -p import-gptq --params-out %t.safetensors | FileCheck %s
// RUN: axc-translate --import-hf %fixtures/gptq/qwen2-tiny-gptq-int8 | axc-opt -p 'import-gptq,quantize-weights' --params-out %t8.safetensors | FileCheck %s --check-prefix=INT8

// The import gives a GPTQ linear its logical fp32 weight (dequantized exactly on read).
// TFM:      %[[W:.*]] = axc.param <"model"::"model.layers.0.self_attn.q_proj.weight"> : tensor<256x256xf32>
// TFM:      tfm.linear %{{.*}}, %[[W]], %{{.*}} : (tensor<1x?x256xf32>, tensor<256x256xf32>, tensor<256xf16>) -> tensor<1x?x256xf32>

// import-gptq keeps the codes: 4-bit sym groups of 128 with the checkpoint's fp16 scales;
// act-order adds the input permutation that makes every group contiguous.
// CHECK:      axc.scopes = {model = "{{.*}}qwen2-tiny-gptq-int4-actorder", axc = "{{.*}}.safetensors"}
// CHECK:      func.func @layer_0(
// CHECK-NOT:  axc.param <"model"::"model.layers.0.self_attn.q_proj.weight">
// CHECK:      %[[W:.*]] = quant.weight <"axc"::"model.layers.0.self_attn.q_proj.s4"> scales <"axc"::"model.layers.0.self_attn.q_proj.s4.scales"> perm <"axc"::"model.layers.0.self_attn.q_proj.s4.perm"> : !quant.w<s4, 256x256, group = 128, sym, scale = f16>
// CHECK-NEXT: quant.linear %{{.*}}, %[[W]], %{{.*}} : (tensor<1x?x256xf32>, !quant.w<s4, 256x256, group = 128, sym, scale = f16>, tensor<256xf16>) -> tensor<1x?x256xf32>
// CHECK:      quant.weight <"axc"::"model.layers.0.mlp.down_proj.s4"> {{.*}} : !quant.w<s4, 256x512, group = 128, sym, scale = f16>
// The tied lm_head is not GPTQ: it stays a tfm.linear over the embedding.
// CHECK:      func.func @post(
// CHECK:      tfm.linear %{{.*}}, %{{.*}} : (tensor<1x?x256xf32>, tensor<512x256xf16>) -> tensor<1x?x512xf32>

// quantize-weights afterwards leaves the GPTQ weights alone and stores the lm_head as s8.
// INT8:       quant.weight <"axc"::"model.layers.1.mlp.up_proj.s8"> scales <"axc"::"model.layers.1.mlp.up_proj.s8.scales"> : !quant.w<s8, 512x256, group = 128, sym, scale = f16>
// INT8:       func.func @post(
// INT8:       quant.weight <"axc"::"lm_head.s8"> scales <"axc"::"lm_head.s8.scales"> : !quant.w<s8, 512x256, channel, sym, scale = f16>
