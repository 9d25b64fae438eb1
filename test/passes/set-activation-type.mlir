// RUN: axc-opt %s -p 'set-activation-type{hidden=fp16}' | FileCheck %s
// RUN: axc-opt %s -p set-activation-type | FileCheck %s --check-prefix=BF16
// RUN: axc-opt %s -p 'set-activation-type{hidden=fp16 compute=fp32}' | FileCheck %s --check-prefix=COMPUTE

// The quant level after specialize-groups: a decode group that computes in fp32 between
// bf16 boundary casts (here a layer's attention half: kv_dim 8, hidden 16), and @post.
builtin.module attributes {axc.model_type = "qwen2", axc.num_layers = 1 : i64, axc.kv_cache_len = 15 : i64, axc.prefill_len = 0 : i64, axc.histories = [15 : i64]} {
  func.func @layer_0_g0(%K_cache: tensor<1x15x8xbf16>, %V_cache: tensor<1x15x8xbf16>, %indices: tensor<1x1xui32>, %input: tensor<1x1x16xbf16>, %mask: tensor<1x1x16xbf16>) -> (tensor<1x1x8xbf16>, tensor<1x1x8xbf16>, tensor<1x1x16xbf16>) attributes {axc.input_names = ["K_cache", "V_cache", "indices", "input", "mask"], axc.output_names = ["K_cache_out", "V_cache_out", "output"], axc.layer = 0 : i64, axc.group = 0 : i64, axc.tokens = 1 : i64, axc.history = 15 : i64} {
    %K_cache_1 = tfm.cast %K_cache : (tensor<1x15x8xbf16>) -> tensor<1x15x8xf32>
    %V_cache_1 = tfm.cast %V_cache : (tensor<1x15x8xbf16>) -> tensor<1x15x8xf32>
    %input_1 = tfm.cast %input : (tensor<1x1x16xbf16>) -> tensor<1x1x16xf32>
    %mask_1 = tfm.cast %mask : (tensor<1x1x16xbf16>) -> tensor<1x1x16xf32>
    %nw = axc.param <"model"::"model.layers.0.input_layernorm.weight"> : tensor<16xbf16>
    %h = tfm.rms_norm %input_1, %nw {eps = 1.000000e-06 : f64} : (tensor<1x1x16xf32>, tensor<16xbf16>) -> tensor<1x1x16xf32>
    %wq = quant.weight <"axc"::"model.layers.0.self_attn.q_proj.s8"> scales <"axc"::"model.layers.0.self_attn.q_proj.s8.scales"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
    %q = quant.linear %h, %wq : (tensor<1x1x16xf32>, !quant.w<s8, 16x16, channel, sym, scale = f16>) -> tensor<1x1x16xf32>
    %wk = quant.weight <"axc"::"model.layers.0.self_attn.k_proj.s8"> scales <"axc"::"model.layers.0.self_attn.k_proj.s8.scales"> : !quant.w<s8, 8x16, channel, sym, scale = f16>
    %k = quant.linear %h, %wk : (tensor<1x1x16xf32>, !quant.w<s8, 8x16, channel, sym, scale = f16>) -> tensor<1x1x8xf32>
    %wv = quant.weight <"axc"::"model.layers.0.self_attn.v_proj.s8"> scales <"axc"::"model.layers.0.self_attn.v_proj.s8.scales"> : !quant.w<s8, 8x16, channel, sym, scale = f16>
    %v = quant.linear %h, %wv : (tensor<1x1x16xf32>, !quant.w<s8, 8x16, channel, sym, scale = f16>) -> tensor<1x1x8xf32>
    %qr = tfm.rope %q, %indices {num_heads = 2 : i64, head_dim = 8 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 1000000.0>} : (tensor<1x1x16xf32>, tensor<1x1xui32>) -> tensor<1x1x16xf32>
    %kr = tfm.rope %k, %indices {num_heads = 1 : i64, head_dim = 8 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 1000000.0>} : (tensor<1x1x8xf32>, tensor<1x1xui32>) -> tensor<1x1x8xf32>
    %a = tfm.attention %qr, %kr, %v, %K_cache_1, %V_cache_1, %mask_1 {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, scale = 0.35355339059327373 : f64} : (tensor<1x1x16xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x15x8xf32>, tensor<1x15x8xf32>, tensor<1x1x16xf32>) -> tensor<1x1x16xf32>
    %out = tfm.add %input_1, %a : (tensor<1x1x16xf32>, tensor<1x1x16xf32>) -> tensor<1x1x16xf32>
    %0 = tfm.cast %kr : (tensor<1x1x8xf32>) -> tensor<1x1x8xbf16>
    %1 = tfm.cast %v : (tensor<1x1x8xf32>) -> tensor<1x1x8xbf16>
    %2 = tfm.cast %out : (tensor<1x1x16xf32>) -> tensor<1x1x16xbf16>
    func.return %0, %1, %2 : tensor<1x1x8xbf16>, tensor<1x1x8xbf16>, tensor<1x1x16xbf16>
  }
  func.func @post(%input: tensor<1x1x16xbf16>) -> tensor<1x1x32xf32> attributes {axc.input_names = ["input"], axc.output_names = ["output"]} {
    %input_1 = tfm.cast %input : (tensor<1x1x16xbf16>) -> tensor<1x1x16xf32>
    %nw = axc.param <"model"::"model.norm.weight"> : tensor<16xbf16>
    %h = tfm.rms_norm %input_1, %nw {eps = 1.000000e-06 : f64} : (tensor<1x1x16xf32>, tensor<16xbf16>) -> tensor<1x1x16xf32>
    %w = quant.weight <"axc"::"lm_head.s8"> scales <"axc"::"lm_head.s8.scales"> : !quant.w<s8, 32x16, channel, sym, scale = f16>
    %logits = quant.linear %h, %w : (tensor<1x1x16xf32>, !quant.w<s8, 32x16, channel, sym, scale = f16>) -> tensor<1x1x32xf32>
    func.return %logits : tensor<1x1x32xf32>
  }
}

// Hidden states and KV rows cross the layer boundary as fp16 and stay fp16 between ops:
// the boundary casts fold away. The mask keeps bf16 (its -65536 does not fit fp16) and is
// widened for the attention.
// CHECK:      builtin.module attributes {{{.*}}axc.activation_type = "fp16"}
// CHECK:      func.func @layer_0_g0(%K_cache: tensor<1x15x8xf16>, %V_cache: tensor<1x15x8xf16>, %indices: tensor<1x1xui32>, %input: tensor<1x1x16xf16>, %mask: tensor<1x1x16xbf16>) -> (tensor<1x1x8xf16>, tensor<1x1x8xf16>, tensor<1x1x16xf16>)
// CHECK-NEXT:   %mask_1 = tfm.cast %mask : (tensor<1x1x16xbf16>) -> tensor<1x1x16xf32>
// CHECK-NEXT:   %nw = axc.param <"model"::"model.layers.0.input_layernorm.weight"> : tensor<16xbf16>
// CHECK-NEXT:   %h = tfm.rms_norm %input, %nw {eps = 1.000000e-06 : f64} : (tensor<1x1x16xf16>, tensor<16xbf16>) -> tensor<1x1x16xf16>
// CHECK:        %q = quant.linear %h, %wq : (tensor<1x1x16xf16>, !quant.w<s8, 16x16, channel, sym, scale = f16>) -> tensor<1x1x16xf16>
// CHECK:        %a = tfm.attention %qr, %kr, %v, %K_cache, %V_cache, %mask_1 {{.*}} -> tensor<1x1x16xf16>
// CHECK-NOT:    tfm.cast
// CHECK:        %out = tfm.add %input, %a : (tensor<1x1x16xf16>, tensor<1x1x16xf16>) -> tensor<1x1x16xf16>
// CHECK-NEXT:   func.return %kr, %v, %out : tensor<1x1x8xf16>, tensor<1x1x8xf16>, tensor<1x1x16xf16>
// The logits stay fp32.
// CHECK:      func.func @post(%input: tensor<1x1x16xf16>) -> tensor<1x1x32xf32>
// CHECK-NEXT:   axc.param
// CHECK-NEXT:   %h = tfm.rms_norm %input, %nw {{.*}} -> tensor<1x1x16xf16>
// CHECK-NEXT:   quant.weight
// CHECK-NEXT:   %logits = quant.linear %h, %w : (tensor<1x1x16xf16>, !quant.w<s8, 32x16, channel, sym, scale = f16>) -> tensor<1x1x32xf32>
// CHECK-NEXT:   func.return %logits : tensor<1x1x32xf32>

// bf16 (the default): the boundary keeps its types and quant.linear results are bf16.
// BF16:       builtin.module attributes {{{.*}}axc.activation_type = "bf16"}
// BF16:       func.func @layer_0_g0(%K_cache: tensor<1x15x8xbf16>
// BF16-NEXT:    %mask_1 = tfm.cast %mask
// BF16-NOT:     tfm.cast %input
// BF16:         %q = quant.linear {{.*}} -> tensor<1x1x16xbf16>
// BF16:       func.func @post(%input: tensor<1x1x16xbf16>)
// BF16:         quant.linear {{.*}} -> tensor<1x1x32xf32>

// compute=fp32 (Gemma2's builds): the boundary takes `hidden`, the values between ops
// stay fp32, so the boundary casts stay and the returned values are narrowed to fp16.
// COMPUTE:      builtin.module attributes {{{.*}}axc.activation_type = "fp16"}
// COMPUTE:      func.func @layer_0_g0(%K_cache: tensor<1x15x8xf16>, %V_cache: tensor<1x15x8xf16>, %indices: tensor<1x1xui32>, %input: tensor<1x1x16xf16>, %mask: tensor<1x1x16xbf16>) -> (tensor<1x1x8xf16>, tensor<1x1x8xf16>, tensor<1x1x16xf16>)
// COMPUTE-NEXT:   %K_cache_1 = tfm.cast %K_cache : (tensor<1x15x8xf16>) -> tensor<1x15x8xf32>
// COMPUTE-NEXT:   %V_cache_1 = tfm.cast %V_cache : (tensor<1x15x8xf16>) -> tensor<1x15x8xf32>
// COMPUTE-NEXT:   %input_1 = tfm.cast %input : (tensor<1x1x16xf16>) -> tensor<1x1x16xf32>
// COMPUTE-NEXT:   %mask_1 = tfm.cast %mask : (tensor<1x1x16xbf16>) -> tensor<1x1x16xf32>
// COMPUTE:        %h = tfm.rms_norm %input_1, %nw {{.*}} -> tensor<1x1x16xf32>
// COMPUTE:        %q = quant.linear %h, %wq : (tensor<1x1x16xf32>, {{.*}}) -> tensor<1x1x16xf32>
// COMPUTE:        %a = tfm.attention {{.*}} -> tensor<1x1x16xf32>
// COMPUTE-NEXT:   %out = tfm.add %input_1, %a : (tensor<1x1x16xf32>, tensor<1x1x16xf32>) -> tensor<1x1x16xf32>
// COMPUTE-NEXT:   %0 = tfm.cast %kr : (tensor<1x1x8xf32>) -> tensor<1x1x8xf16>
// COMPUTE-NEXT:   %1 = tfm.cast %v : (tensor<1x1x8xf32>) -> tensor<1x1x8xf16>
// COMPUTE-NEXT:   %2 = tfm.cast %out : (tensor<1x1x16xf32>) -> tensor<1x1x16xf16>
// COMPUTE-NEXT:   func.return %0, %1, %2 : tensor<1x1x8xf16>, tensor<1x1x8xf16>, tensor<1x1x16xf16>
// COMPUTE:      func.func @post(%input: tensor<1x1x16xf16>) -> tensor<1x1x32xf32>
// COMPUTE-NEXT:   %input_1 = tfm.cast %input : (tensor<1x1x16xf16>) -> tensor<1x1x16xf32>
// COMPUTE:        %h = tfm.rms_norm %input_1, %nw {{.*}} -> tensor<1x1x16xf32>
// COMPUTE:        %logits = quant.linear %h, %w : (tensor<1x1x16xf32>, {{.*}}) -> tensor<1x1x32xf32>
