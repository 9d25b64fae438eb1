// RUN: cd %fixtures && axc-opt %s -p import-gptq --params-out %t.safetensors | FileCheck %s
// RUN: sed 's|qwen2-tiny-gptq-int4-actorder|qwen2-tiny-gptq-int8|' %s > %t8.mlir
// RUN: cd %fixtures && axc-opt %t8.mlir -p 'import-gptq,quantize-weights' --params-out %t8.safetensors | FileCheck %s --check-prefix=INT8

// The import level over a GPTQ checkpoint (4-bit, groups of 128, act-order; relative to the
// fixtures folder): each GPTQ linear reads its logical fp32 weight, dequantized exactly on
// read. The tied lm_head is the checkpoint's fp16 embedding.
builtin.module attributes {axc.scopes = {model = "gptq/qwen2-tiny-gptq-int4-actorder"}, axc.model_type = "qwen2", axc.num_layers = 1 : i64} {
  func.func @layer_0(%input: tensor<1x?x256xf32>, %act: tensor<1x?x512xf32>) -> (tensor<1x?x256xf32>, tensor<1x?x512xf32>, tensor<1x?x256xf32>) attributes {axc.layer = 0 : i64} {
    %wq = axc.param <"model"::"model.layers.0.self_attn.q_proj.weight"> : tensor<256x256xf32>
    %bq = axc.param <"model"::"model.layers.0.self_attn.q_proj.bias"> : tensor<256xf16>
    %q = tfm.linear %input, %wq, %bq : (tensor<1x?x256xf32>, tensor<256x256xf32>, tensor<256xf16>) -> tensor<1x?x256xf32>
    %wu = axc.param <"model"::"model.layers.0.mlp.up_proj.weight"> : tensor<512x256xf32>
    %up = tfm.linear %input, %wu : (tensor<1x?x256xf32>, tensor<512x256xf32>) -> tensor<1x?x512xf32>
    %wd = axc.param <"model"::"model.layers.0.mlp.down_proj.weight"> : tensor<256x512xf32>
    %down = tfm.linear %act, %wd : (tensor<1x?x512xf32>, tensor<256x512xf32>) -> tensor<1x?x256xf32>
    func.return %q, %up, %down : tensor<1x?x256xf32>, tensor<1x?x512xf32>, tensor<1x?x256xf32>
  }
  func.func @post(%input: tensor<1x?x256xf32>) -> tensor<1x?x512xf32> {
    %we = axc.param <"model"::"model.embed_tokens.weight"> : tensor<512x256xf16>
    %logits = tfm.linear %input, %we : (tensor<1x?x256xf32>, tensor<512x256xf16>) -> tensor<1x?x512xf32>
    func.return %logits : tensor<1x?x512xf32>
  }
}

// import-gptq keeps the codes: 4-bit sym groups of 128 with the checkpoint's fp16 scales;
// act-order adds the input permutation that makes every group contiguous.
// CHECK:      axc.scopes = {model = "gptq/qwen2-tiny-gptq-int4-actorder", axc = "{{.*}}.safetensors"}
// CHECK:      func.func @layer_0(
// CHECK-NOT:  axc.param <"model"::"model.layers.0.self_attn.q_proj.weight">
// CHECK:      %[[W:.*]] = quant.weight <"axc"::"model.layers.0.self_attn.q_proj.s4"> scales <"axc"::"model.layers.0.self_attn.q_proj.s4.scales"> perm <"axc"::"model.layers.0.self_attn.q_proj.s4.perm"> : !quant.w<s4, 256x256, group = 128, sym, scale = f16>
// CHECK-NEXT: quant.linear %input, %[[W]], %bq : (tensor<1x?x256xf32>, !quant.w<s4, 256x256, group = 128, sym, scale = f16>, tensor<256xf16>) -> tensor<1x?x256xf32>
// CHECK:      quant.weight <"axc"::"model.layers.0.mlp.down_proj.s4"> {{.*}} : !quant.w<s4, 256x512, group = 128, sym, scale = f16>
// The lm_head is not GPTQ: it stays a tfm.linear over the embedding.
// CHECK:      func.func @post(
// CHECK:      tfm.linear %input, %we : (tensor<1x?x256xf32>, tensor<512x256xf16>) -> tensor<1x?x512xf32>

// quantize-weights afterwards leaves the GPTQ weights alone and stores the lm_head as s8.
// INT8:       quant.weight <"axc"::"model.layers.0.mlp.up_proj.s8"> scales <"axc"::"model.layers.0.mlp.up_proj.s8.scales"> : !quant.w<s8, 512x256, group = 128, sym, scale = f16>
// INT8:       func.func @post(
// INT8:       quant.weight <"axc"::"lm_head.s8"> scales <"axc"::"lm_head.s8.scales"> : !quant.w<s8, 512x256, channel, sym, scale = f16>
