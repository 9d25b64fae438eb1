// RUN: axc-opt %s -p 'specialize-groups{kv-cache-len=31 prefill-len=8 last-kv-cache-len=8,16}' | FileCheck %s
// RUN: axc-opt %s -p 'specialize-groups{kv-cache-len=31 prefill-len=8}' | FileCheck %s --check-prefix=NOLAST
// RUN: axc-opt %s -p 'specialize-groups{kv-cache-len=31}' | FileCheck %s --check-prefix=DECODE
// RUN: not axc-opt %s -p 'specialize-groups{kv-cache-len=31 prefill-len=8 last-kv-cache-len=8,24}' 2>&1 | FileCheck %s --check-prefix=TOOLONG
// RUN: not axc-opt %s -p 'specialize-groups{kv-cache-len=31 prefill-len=8 last-kv-cache-len=16,8}' 2>&1 | FileCheck %s --check-prefix=ORDER

// The import level: one symbolic decoder layer (any number of tokens over any history;
// here only its attention, kv_dim 8, hidden 16) and @post, computing in fp32.
builtin.module attributes {axc.model_type = "qwen2", axc.num_layers = 1 : i64} {
  func.func @layer_0(%K_cache: tensor<1x?x8xf32>, %V_cache: tensor<1x?x8xf32>, %indices: tensor<1x?xui32>, %input: tensor<1x?x16xf32>, %mask: tensor<1x?x?xf32>) -> (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x16xf32>) attributes {axc.input_names = ["K_cache", "V_cache", "indices", "input", "mask"], axc.output_names = ["K_cache_out", "V_cache_out", "output"], axc.layer = 0 : i64} {
    %wq = axc.param <"model"::"model.layers.0.self_attn.q_proj.weight"> : tensor<16x16xbf16>
    %q = tfm.linear %input, %wq : (tensor<1x?x16xf32>, tensor<16x16xbf16>) -> tensor<1x?x16xf32>
    %wk = axc.param <"model"::"model.layers.0.self_attn.k_proj.weight"> : tensor<8x16xbf16>
    %k = tfm.linear %input, %wk : (tensor<1x?x16xf32>, tensor<8x16xbf16>) -> tensor<1x?x8xf32>
    %wv = axc.param <"model"::"model.layers.0.self_attn.v_proj.weight"> : tensor<8x16xbf16>
    %v = tfm.linear %input, %wv : (tensor<1x?x16xf32>, tensor<8x16xbf16>) -> tensor<1x?x8xf32>
    %qr = tfm.rope %q, %indices {num_heads = 2 : i64, head_dim = 8 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 1000000.0>} : (tensor<1x?x16xf32>, tensor<1x?xui32>) -> tensor<1x?x16xf32>
    %kr = tfm.rope %k, %indices {num_heads = 1 : i64, head_dim = 8 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 1000000.0>} : (tensor<1x?x8xf32>, tensor<1x?xui32>) -> tensor<1x?x8xf32>
    %a = tfm.attention %qr, %kr, %v, %K_cache, %V_cache, %mask {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, scale = 0.35355339059327373 : f64} : (tensor<1x?x16xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x?xf32>) -> tensor<1x?x16xf32>
    %out = tfm.add %input, %a : (tensor<1x?x16xf32>, tensor<1x?x16xf32>) -> tensor<1x?x16xf32>
    func.return %kr, %v, %out : tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x16xf32>
  }
  func.func @post(%input: tensor<1x?x16xf32>) -> tensor<1x?x32xf32> attributes {axc.input_names = ["input"], axc.output_names = ["output"]} {
    %w = axc.param <"model"::"lm_head.weight"> : tensor<32x16xbf16>
    %logits = tfm.linear %input, %w : (tensor<1x?x16xf32>, tensor<32x16xbf16>) -> tensor<1x?x32xf32>
    func.return %logits : tensor<1x?x32xf32>
  }
}

// The vendor's ladder: decode, the history-0 group, one group per last-kv-cache-len value
// whose history IS that value. Each group is a static copy; the layer boundary is bf16.
// CHECK:      builtin.module attributes {{{.*}}axc.kv_cache_len = 31 : i64, axc.prefill_len = 8 : i64, axc.histories = [31 : i64, 0 : i64, 8 : i64, 16 : i64]}

// Group 0, decode: one token over kv-cache-len rows; mask has kv-cache-len + 1 columns.
// CHECK:      func.func @layer_0_g0(%K_cache: tensor<1x31x8xbf16>, %V_cache: tensor<1x31x8xbf16>, %indices: tensor<1x1xui32>, %input: tensor<1x1x16xbf16>, %mask: tensor<1x1x32xbf16>) -> (tensor<1x1x8xbf16>, tensor<1x1x8xbf16>, tensor<1x1x16xbf16>)
// CHECK-SAME:   axc.group = 0 : i64, axc.tokens = 1 : i64, axc.history = 31 : i64
// CHECK-NEXT:   %K_cache_1 = tfm.cast %K_cache : (tensor<1x31x8xbf16>) -> tensor<1x31x8xf32>
// CHECK-NEXT:   %V_cache_1 = tfm.cast %V_cache
// CHECK-NEXT:   %input_1 = tfm.cast %input : (tensor<1x1x16xbf16>) -> tensor<1x1x16xf32>
// CHECK-NEXT:   %mask_1 = tfm.cast %mask : (tensor<1x1x32xbf16>) -> tensor<1x1x32xf32>
// CHECK:        %q = tfm.linear %input_1, %wq : (tensor<1x1x16xf32>, tensor<16x16xbf16>) -> tensor<1x1x16xf32>
// CHECK:        %a = tfm.attention %qr, %kr, %v, %K_cache_1, %V_cache_1, %mask_1 {{.*}} : (tensor<1x1x16xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x31x8xf32>, tensor<1x31x8xf32>, tensor<1x1x32xf32>) -> tensor<1x1x16xf32>
// CHECK:        %[[OUT:.*]] = tfm.cast %out : (tensor<1x1x16xf32>) -> tensor<1x1x16xbf16>
// CHECK-NEXT:   func.return %{{.*}}, %{{.*}}, %[[OUT]]

// Group 1, history 0: the caches are a [1, 1, hidden] dummy, never read (no cast, no use);
// attention sees the chunk alone and the mask is [1, P, P].
// CHECK:      func.func @layer_0_g1(%K_cache: tensor<1x1x16xbf16>, %V_cache: tensor<1x1x16xbf16>, %indices: tensor<1x8xui32>, %input: tensor<1x8x16xbf16>, %mask: tensor<1x8x8xbf16>) -> (tensor<1x8x8xbf16>, tensor<1x8x8xbf16>, tensor<1x8x16xbf16>)
// CHECK-SAME:   axc.group = 1 : i64, axc.tokens = 8 : i64, axc.history = 0 : i64
// CHECK-NOT:    %K_cache
// CHECK:        %a = tfm.attention %qr, %kr, %v, %mask_1 {{.*}} : (tensor<1x8x16xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>) -> tensor<1x8x16xf32>
// CHECK-NOT:    %K_cache
// CHECK:        func.return

// Groups 2 and 3: histories 8 and 16 (the flag's values), mask [1, P, h + P].
// CHECK:      func.func @layer_0_g2(%K_cache: tensor<1x8x8xbf16>, %V_cache: tensor<1x8x8xbf16>, %indices: tensor<1x8xui32>, %input: tensor<1x8x16xbf16>, %mask: tensor<1x8x16xbf16>)
// CHECK-SAME:   axc.group = 2 : i64, axc.tokens = 8 : i64, axc.history = 8 : i64
// CHECK:        tfm.attention {{.*}}, %K_cache_1, %V_cache_1, %mask_1 {{.*}} : (tensor<1x8x16xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16xf32>
// CHECK:      func.func @layer_0_g3(%K_cache: tensor<1x16x8xbf16>, %V_cache: tensor<1x16x8xbf16>, %indices: tensor<1x8xui32>, %input: tensor<1x8x16xbf16>, %mask: tensor<1x8x24xbf16>)
// CHECK-SAME:   axc.group = 3 : i64, axc.tokens = 8 : i64, axc.history = 16 : i64
// CHECK-NOT:  @layer_0_g4
// @post runs on the last token only; the logits stay fp32.
// CHECK:      func.func @post(%input: tensor<1x1x16xbf16>) -> tensor<1x1x32xf32>
// CHECK-NEXT:   %input_1 = tfm.cast %input : (tensor<1x1x16xbf16>) -> tensor<1x1x16xf32>

// No last-kv-cache-len: decode and the history-0 group only.
// NOLAST:     axc.histories = [31 : i64, 0 : i64]
// NOLAST:     func.func @layer_0_g0(
// NOLAST:     func.func @layer_0_g1(%K_cache: tensor<1x1x16xbf16>, %V_cache: tensor<1x1x16xbf16>, %indices: tensor<1x8xui32>, %input: tensor<1x8x16xbf16>, %mask: tensor<1x8x8xbf16>)
// NOLAST-NOT: @layer_0_g2

// Prefill-len 0 builds a decode-only model.
// DECODE:     axc.histories = [31 : i64]
// DECODE:     func.func @layer_0_g0(
// DECODE-NOT: @layer_0_g1
// DECODE:     func.func @post(

// A chunk's rows are written after its history into the decode cache: h + P <= kv-cache-len.
// TOOLONG: axc-opt: error: last-kv-cache-len 24 + prefill-len 8 exceeds kv-cache-len = 31
// ORDER:   axc-opt: error: last-kv-cache-len values must be strictly increasing and at least 1, got [16, 8]
