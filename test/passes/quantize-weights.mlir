// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=15 prefill-len=4 last-kv-cache-len=4},quantize-weights' --params-out %t.safetensors | FileCheck %s
// RUN: %python -c "from safetensors import safe_open; f = safe_open('%t.safetensors', 'np'); ks = sorted(f.keys()); print(len(ks)); [print(k, f.get_tensor(k).dtype, f.get_tensor(k).shape) for k in ks[:2]]" | FileCheck %s --check-prefix=PARAMS
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'quantize-weights{weight-type=s4 post-weight-type=bf16}' --params-out %t-s4.safetensors | FileCheck %s --check-prefix=S4
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'quantize-weights{weight-type=fp8_e4m3 post-weight-type=fp8_e5m2}' --params-out %t-fp8.safetensors | FileCheck %s --check-prefix=FP8

// Defaults: s8 decoder weights with one f16 scale per output channel, s8 lm_head; the
// created parameters live in the scope `axc`, bound to the --params-out file.
// CHECK:      builtin.module attributes {axc.scopes = {model = "{{.*}}tiny-qwen2", axc = "{{.*}}.safetensors"}
// CHECK:      func.func @layer_0_g0(
// CHECK:        %[[W:.*]] = quant.weight <"axc"::"model.layers.0.self_attn.q_proj.s8"> scales <"axc"::"model.layers.0.self_attn.q_proj.s8.scales"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
// CHECK-NEXT:   %{{.*}} = quant.linear %{{.*}}, %[[W]], %{{.*}} : (tensor<1x1x16xf32>, !quant.w<s8, 16x16, channel, sym, scale = f16>, tensor<16xbf16>) -> tensor<1x1x16xf32>
// CHECK-NOT:    tfm.linear
// CHECK:        quant.weight <"axc"::"model.layers.0.mlp.down_proj.s8"> scales <"axc"::"model.layers.0.mlp.down_proj.s8.scales"> : !quant.w<s8, 16x32, channel, sym, scale = f16>
// The prefill group reads the same parameters (each weight is quantized once).
// CHECK:      func.func @layer_0_g1(
// CHECK:        quant.weight <"axc"::"model.layers.0.self_attn.q_proj.s8">
// CHECK:      func.func @post(
// CHECK:        axc.param <"model"::"model.norm.weight">
// CHECK-NEXT:   tfm.rms_norm
// CHECK-NEXT:   %[[H:.*]] = quant.weight <"axc"::"lm_head.s8"> scales <"axc"::"lm_head.s8.scales"> : !quant.w<s8, 32x16, channel, sym, scale = f16>
// CHECK-NEXT:   quant.linear %{{.*}}, %[[H]] : (tensor<1x1x16xf32>, !quant.w<s8, 32x16, channel, sym, scale = f16>) -> tensor<1x1x32xf32>

// 2 layers x 7 linears + the lm_head, each with codes and scales.
// PARAMS:      30
// PARAMS-NEXT: lm_head.s8 int8 (32, 16)
// PARAMS-NEXT: lm_head.s8.scales float16 (32,)

// s4 groups are capped at the input size; a bf16 lm_head of a bf16 checkpoint reads the
// checkpoint itself (here the tied embedding).
// S4:      quant.weight <"axc"::"model.layers.0.mlp.gate_proj.s4"> scales <"axc"::"model.layers.0.mlp.gate_proj.s4.scales"> : !quant.w<s4, 32x16, group = 16, sym, scale = f16>
// S4:      quant.weight <"axc"::"model.layers.0.mlp.down_proj.s4"> scales <"axc"::"model.layers.0.mlp.down_proj.s4.scales"> : !quant.w<s4, 16x32, group = 32, sym, scale = f16>
// S4:      func.func @post(
// S4:        quant.weight <"model"::"model.embed_tokens.weight"> : !quant.w<bf16, 32x16>

// FP8:     quant.weight <"axc"::"model.layers.1.mlp.up_proj.fp8_e4m3"> scales <"axc"::"model.layers.1.mlp.up_proj.fp8_e4m3.scales"> : !quant.w<fp8_e4m3, 32x16, channel, scale = bf16>
// FP8:     quant.weight <"axc"::"lm_head.fp8_e5m2"> scales <"axc"::"lm_head.fp8_e5m2.scales"> : !quant.w<fp8_e5m2, 32x16, channel, scale = bf16>
