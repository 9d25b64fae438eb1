// RUN: cd %fixtures && axc-opt %s -p quantize-weights --params-out %t.safetensors | FileCheck %s
// RUN: %python -c "from safetensors import safe_open; f = safe_open('%t.safetensors', 'np'); ks = sorted(f.keys()); print(len(ks)); [print(k, f.get_tensor(k).dtype, f.get_tensor(k).shape) for k in ks[:2]]" | FileCheck %s --check-prefix=PARAMS
// RUN: cd %fixtures && axc-opt %s -p 'quantize-weights{weight-type=s4 post-weight-type=bf16}' --params-out %t-s4.safetensors | FileCheck %s --check-prefix=S4
// RUN: cd %fixtures && axc-opt %s -p 'quantize-weights{weight-type=fp8_e4m3 post-weight-type=fp8_e5m2}' --params-out %t-fp8.safetensors | FileCheck %s --check-prefix=FP8

// The import level, its parameters bound to a checkpoint (the tiny Qwen2 fixture, relative
// to the fixtures folder): one symbolic layer's q projection (with a bias) and MLP down
// projection, and @post, whose lm_head is the tied embedding.
builtin.module attributes {axc.scopes = {model = "tiny-qwen2"}, axc.model_type = "qwen2", axc.num_layers = 1 : i64} {
  func.func @layer_0(%input: tensor<1x?x16xf32>, %act: tensor<1x?x32xf32>) -> (tensor<1x?x16xf32>, tensor<1x?x16xf32>) attributes {axc.layer = 0 : i64} {
    %wq = axc.param <"model"::"model.layers.0.self_attn.q_proj.weight"> : tensor<16x16xbf16>
    %bq = axc.param <"model"::"model.layers.0.self_attn.q_proj.bias"> : tensor<16xbf16>
    %q = tfm.linear %input, %wq, %bq : (tensor<1x?x16xf32>, tensor<16x16xbf16>, tensor<16xbf16>) -> tensor<1x?x16xf32>
    %wd = axc.param <"model"::"model.layers.0.mlp.down_proj.weight"> : tensor<16x32xbf16>
    %down = tfm.linear %act, %wd : (tensor<1x?x32xf32>, tensor<16x32xbf16>) -> tensor<1x?x16xf32>
    func.return %q, %down : tensor<1x?x16xf32>, tensor<1x?x16xf32>
  }
  func.func @post(%input: tensor<1x?x16xf32>) -> tensor<1x?x32xf32> {
    %nw = axc.param <"model"::"model.norm.weight"> : tensor<16xbf16>
    %h = tfm.rms_norm %input, %nw {eps = 1.000000e-06 : f64} : (tensor<1x?x16xf32>, tensor<16xbf16>) -> tensor<1x?x16xf32>
    %we = axc.param <"model"::"model.embed_tokens.weight"> : tensor<32x16xbf16>
    %logits = tfm.linear %h, %we : (tensor<1x?x16xf32>, tensor<32x16xbf16>) -> tensor<1x?x32xf32>
    func.return %logits : tensor<1x?x32xf32>
  }
}

// Defaults: s8 decoder weights with one f16 scale per output channel, s8 lm_head; the
// created parameters live in the scope `axc`, bound to the --params-out file. The bias and
// the norm weight stay checkpoint parameters.
// CHECK:      builtin.module attributes {axc.scopes = {model = "tiny-qwen2", axc = "{{.*}}.safetensors"}
// CHECK:      func.func @layer_0(
// CHECK:        %bq = axc.param <"model"::"model.layers.0.self_attn.q_proj.bias"> : tensor<16xbf16>
// CHECK-NEXT:   %[[W:.*]] = quant.weight <"axc"::"model.layers.0.self_attn.q_proj.s8"> scales <"axc"::"model.layers.0.self_attn.q_proj.s8.scales"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
// CHECK-NEXT:   %{{.*}} = quant.linear %input, %[[W]], %bq : (tensor<1x?x16xf32>, !quant.w<s8, 16x16, channel, sym, scale = f16>, tensor<16xbf16>) -> tensor<1x?x16xf32>
// CHECK-NOT:    tfm.linear
// CHECK:        quant.weight <"axc"::"model.layers.0.mlp.down_proj.s8"> scales <"axc"::"model.layers.0.mlp.down_proj.s8.scales"> : !quant.w<s8, 16x32, channel, sym, scale = f16>
// CHECK:      func.func @post(
// CHECK:        axc.param <"model"::"model.norm.weight">
// CHECK-NEXT:   %h = tfm.rms_norm
// CHECK-NEXT:   %[[H:.*]] = quant.weight <"axc"::"lm_head.s8"> scales <"axc"::"lm_head.s8.scales"> : !quant.w<s8, 32x16, channel, sym, scale = f16>
// CHECK-NEXT:   %{{.*}} = quant.linear %h, %[[H]] : (tensor<1x?x16xf32>, !quant.w<s8, 32x16, channel, sym, scale = f16>) -> tensor<1x?x32xf32>

// 2 linears + the lm_head, each with codes and scales.
// PARAMS:      6
// PARAMS-NEXT: lm_head.s8 int8 (32, 16)
// PARAMS-NEXT: lm_head.s8.scales float16 (32,)

// s4 groups are capped at the input size; a bf16 lm_head of a bf16 checkpoint reads the
// checkpoint itself (here the tied embedding).
// S4:      quant.weight <"axc"::"model.layers.0.self_attn.q_proj.s4"> scales <"axc"::"model.layers.0.self_attn.q_proj.s4.scales"> : !quant.w<s4, 16x16, group = 16, sym, scale = f16>
// S4:      quant.weight <"axc"::"model.layers.0.mlp.down_proj.s4"> scales <"axc"::"model.layers.0.mlp.down_proj.s4.scales"> : !quant.w<s4, 16x32, group = 32, sym, scale = f16>
// S4:      func.func @post(
// S4:        quant.weight <"model"::"model.embed_tokens.weight"> : !quant.w<bf16, 32x16>

// FP8:     quant.weight <"axc"::"model.layers.0.mlp.down_proj.fp8_e4m3"> scales <"axc"::"model.layers.0.mlp.down_proj.fp8_e4m3.scales"> : !quant.w<fp8_e4m3, 16x32, channel, scale = bf16>
// FP8:     quant.weight <"axc"::"lm_head.fp8_e5m2"> scales <"axc"::"lm_head.fp8_e5m2.scales"> : !quant.w<fp8_e5m2, 32x16, channel, scale = bf16>
