// RUN: axc-opt %s -p 'tile{target=AX650}' | FileCheck %s
// RUN: axc-opt %s -p 'tile{target=AX620E ocm-bytes=1024}' | FileCheck %s --check-prefix=SMALL
// RUN: axc-opt %s -p 'tile{target=AX620E ocm-bytes=384}' | FileCheck %s --check-prefix=TINY
// RUN: not axc-opt %S/specialize-groups.mlir -p tile 2>&1 | FileCheck %s --check-prefix=DYN

// The activation-typed quant level (after set-activation-type): one Qwen2 layer of the tiny
// fixture's shapes (hidden 16, 2 query heads and 1 KV head of 8, MLP 32, s8 weights) as its
// decode group and its history-0 prefill group of 4 tokens, and @post.
builtin.module attributes {axc.model_type = "qwen2", axc.num_layers = 1 : i64, axc.kv_cache_len = 15 : i64, axc.prefill_len = 4 : i64, axc.histories = [15 : i64, 0 : i64], axc.activation_type = "bf16"} {
  func.func @layer_0_g0(%K_cache: tensor<1x15x8xbf16>, %V_cache: tensor<1x15x8xbf16>, %indices: tensor<1x1xui32>, %input: tensor<1x1x16xbf16>, %mask: tensor<1x1x16xbf16>) -> (tensor<1x1x8xbf16>, tensor<1x1x8xbf16>, tensor<1x1x16xbf16>) attributes {axc.input_names = ["K_cache", "V_cache", "indices", "input", "mask"], axc.output_names = ["K_cache_out", "V_cache_out", "output"], axc.layer = 0 : i64, axc.group = 0 : i64, axc.tokens = 1 : i64, axc.history = 15 : i64} {
    %mask_1 = tfm.cast %mask : (tensor<1x1x16xbf16>) -> tensor<1x1x16xf32>
    %0 = axc.param <"model"::"model.layers.0.input_layernorm.weight"> : tensor<16xbf16>
    %1 = tfm.rms_norm %input, %0 {eps = 1.000000e-06 : f64} : (tensor<1x1x16xbf16>, tensor<16xbf16>) -> tensor<1x1x16xbf16>
    %2 = axc.param <"model"::"model.layers.0.self_attn.q_proj.bias"> : tensor<16xbf16>
    %3 = quant.weight <"axc"::"model.layers.0.self_attn.q_proj.s8"> scales <"axc"::"model.layers.0.self_attn.q_proj.s8.scales"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
    %4 = quant.linear %1, %3, %2 : (tensor<1x1x16xbf16>, !quant.w<s8, 16x16, channel, sym, scale = f16>, tensor<16xbf16>) -> tensor<1x1x16xbf16>
    %5 = axc.param <"model"::"model.layers.0.self_attn.k_proj.bias"> : tensor<8xbf16>
    %6 = quant.weight <"axc"::"model.layers.0.self_attn.k_proj.s8"> scales <"axc"::"model.layers.0.self_attn.k_proj.s8.scales"> : !quant.w<s8, 8x16, channel, sym, scale = f16>
    %7 = quant.linear %1, %6, %5 : (tensor<1x1x16xbf16>, !quant.w<s8, 8x16, channel, sym, scale = f16>, tensor<8xbf16>) -> tensor<1x1x8xbf16>
    %8 = axc.param <"model"::"model.layers.0.self_attn.v_proj.bias"> : tensor<8xbf16>
    %9 = quant.weight <"axc"::"model.layers.0.self_attn.v_proj.s8"> scales <"axc"::"model.layers.0.self_attn.v_proj.s8.scales"> : !quant.w<s8, 8x16, channel, sym, scale = f16>
    %10 = quant.linear %1, %9, %8 : (tensor<1x1x16xbf16>, !quant.w<s8, 8x16, channel, sym, scale = f16>, tensor<8xbf16>) -> tensor<1x1x8xbf16>
    %11 = tfm.rope %4, %indices {num_heads = 2 : i64, head_dim = 8 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 1000000.0>} : (tensor<1x1x16xbf16>, tensor<1x1xui32>) -> tensor<1x1x16xbf16>
    %12 = tfm.rope %7, %indices {num_heads = 1 : i64, head_dim = 8 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 1000000.0>} : (tensor<1x1x8xbf16>, tensor<1x1xui32>) -> tensor<1x1x8xbf16>
    %13 = tfm.attention %11, %12, %10, %K_cache, %V_cache, %mask_1 {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, scale = 0.35355339059327373 : f64} : (tensor<1x1x16xbf16>, tensor<1x1x8xbf16>, tensor<1x1x8xbf16>, tensor<1x15x8xbf16>, tensor<1x15x8xbf16>, tensor<1x1x16xf32>) -> tensor<1x1x16xbf16>
    %14 = quant.weight <"axc"::"model.layers.0.self_attn.o_proj.s8"> scales <"axc"::"model.layers.0.self_attn.o_proj.s8.scales"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
    %15 = quant.linear %13, %14 : (tensor<1x1x16xbf16>, !quant.w<s8, 16x16, channel, sym, scale = f16>) -> tensor<1x1x16xbf16>
    %16 = tfm.add %input, %15 : (tensor<1x1x16xbf16>, tensor<1x1x16xbf16>) -> tensor<1x1x16xbf16>
    %17 = axc.param <"model"::"model.layers.0.post_attention_layernorm.weight"> : tensor<16xbf16>
    %18 = tfm.rms_norm %16, %17 {eps = 1.000000e-06 : f64} : (tensor<1x1x16xbf16>, tensor<16xbf16>) -> tensor<1x1x16xbf16>
    %19 = quant.weight <"axc"::"model.layers.0.mlp.gate_proj.s8"> scales <"axc"::"model.layers.0.mlp.gate_proj.s8.scales"> : !quant.w<s8, 32x16, channel, sym, scale = f16>
    %20 = quant.linear %18, %19 : (tensor<1x1x16xbf16>, !quant.w<s8, 32x16, channel, sym, scale = f16>) -> tensor<1x1x32xbf16>
    %21 = quant.weight <"axc"::"model.layers.0.mlp.up_proj.s8"> scales <"axc"::"model.layers.0.mlp.up_proj.s8.scales"> : !quant.w<s8, 32x16, channel, sym, scale = f16>
    %22 = quant.linear %18, %21 : (tensor<1x1x16xbf16>, !quant.w<s8, 32x16, channel, sym, scale = f16>) -> tensor<1x1x32xbf16>
    %23 = tfm.act %20 {kind = "silu"} : (tensor<1x1x32xbf16>) -> tensor<1x1x32xbf16>
    %24 = tfm.mul %23, %22 : (tensor<1x1x32xbf16>, tensor<1x1x32xbf16>) -> tensor<1x1x32xbf16>
    %25 = quant.weight <"axc"::"model.layers.0.mlp.down_proj.s8"> scales <"axc"::"model.layers.0.mlp.down_proj.s8.scales"> : !quant.w<s8, 16x32, channel, sym, scale = f16>
    %26 = quant.linear %24, %25 : (tensor<1x1x32xbf16>, !quant.w<s8, 16x32, channel, sym, scale = f16>) -> tensor<1x1x16xbf16>
    %27 = tfm.add %16, %26 : (tensor<1x1x16xbf16>, tensor<1x1x16xbf16>) -> tensor<1x1x16xbf16>
    func.return %12, %10, %27 : tensor<1x1x8xbf16>, tensor<1x1x8xbf16>, tensor<1x1x16xbf16>
  }
  func.func @layer_0_g1(%K_cache: tensor<1x1x16xbf16>, %V_cache: tensor<1x1x16xbf16>, %indices: tensor<1x4xui32>, %input: tensor<1x4x16xbf16>, %mask: tensor<1x4x4xbf16>) -> (tensor<1x4x8xbf16>, tensor<1x4x8xbf16>, tensor<1x4x16xbf16>) attributes {axc.input_names = ["K_cache", "V_cache", "indices", "input", "mask"], axc.output_names = ["K_cache_out", "V_cache_out", "output"], axc.layer = 0 : i64, axc.group = 1 : i64, axc.tokens = 4 : i64, axc.history = 0 : i64} {
    %mask_1 = tfm.cast %mask : (tensor<1x4x4xbf16>) -> tensor<1x4x4xf32>
    %0 = axc.param <"model"::"model.layers.0.input_layernorm.weight"> : tensor<16xbf16>
    %1 = tfm.rms_norm %input, %0 {eps = 1.000000e-06 : f64} : (tensor<1x4x16xbf16>, tensor<16xbf16>) -> tensor<1x4x16xbf16>
    %2 = axc.param <"model"::"model.layers.0.self_attn.q_proj.bias"> : tensor<16xbf16>
    %3 = quant.weight <"axc"::"model.layers.0.self_attn.q_proj.s8"> scales <"axc"::"model.layers.0.self_attn.q_proj.s8.scales"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
    %4 = quant.linear %1, %3, %2 : (tensor<1x4x16xbf16>, !quant.w<s8, 16x16, channel, sym, scale = f16>, tensor<16xbf16>) -> tensor<1x4x16xbf16>
    %5 = axc.param <"model"::"model.layers.0.self_attn.k_proj.bias"> : tensor<8xbf16>
    %6 = quant.weight <"axc"::"model.layers.0.self_attn.k_proj.s8"> scales <"axc"::"model.layers.0.self_attn.k_proj.s8.scales"> : !quant.w<s8, 8x16, channel, sym, scale = f16>
    %7 = quant.linear %1, %6, %5 : (tensor<1x4x16xbf16>, !quant.w<s8, 8x16, channel, sym, scale = f16>, tensor<8xbf16>) -> tensor<1x4x8xbf16>
    %8 = axc.param <"model"::"model.layers.0.self_attn.v_proj.bias"> : tensor<8xbf16>
    %9 = quant.weight <"axc"::"model.layers.0.self_attn.v_proj.s8"> scales <"axc"::"model.layers.0.self_attn.v_proj.s8.scales"> : !quant.w<s8, 8x16, channel, sym, scale = f16>
    %10 = quant.linear %1, %9, %8 : (tensor<1x4x16xbf16>, !quant.w<s8, 8x16, channel, sym, scale = f16>, tensor<8xbf16>) -> tensor<1x4x8xbf16>
    %11 = tfm.rope %4, %indices {num_heads = 2 : i64, head_dim = 8 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 1000000.0>} : (tensor<1x4x16xbf16>, tensor<1x4xui32>) -> tensor<1x4x16xbf16>
    %12 = tfm.rope %7, %indices {num_heads = 1 : i64, head_dim = 8 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 1000000.0>} : (tensor<1x4x8xbf16>, tensor<1x4xui32>) -> tensor<1x4x8xbf16>
    %13 = tfm.attention %11, %12, %10, %mask_1 {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 8 : i64, scale = 0.35355339059327373 : f64} : (tensor<1x4x16xbf16>, tensor<1x4x8xbf16>, tensor<1x4x8xbf16>, tensor<1x4x4xf32>) -> tensor<1x4x16xbf16>
    %14 = quant.weight <"axc"::"model.layers.0.self_attn.o_proj.s8"> scales <"axc"::"model.layers.0.self_attn.o_proj.s8.scales"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
    %15 = quant.linear %13, %14 : (tensor<1x4x16xbf16>, !quant.w<s8, 16x16, channel, sym, scale = f16>) -> tensor<1x4x16xbf16>
    %16 = tfm.add %input, %15 : (tensor<1x4x16xbf16>, tensor<1x4x16xbf16>) -> tensor<1x4x16xbf16>
    %17 = axc.param <"model"::"model.layers.0.post_attention_layernorm.weight"> : tensor<16xbf16>
    %18 = tfm.rms_norm %16, %17 {eps = 1.000000e-06 : f64} : (tensor<1x4x16xbf16>, tensor<16xbf16>) -> tensor<1x4x16xbf16>
    %19 = quant.weight <"axc"::"model.layers.0.mlp.gate_proj.s8"> scales <"axc"::"model.layers.0.mlp.gate_proj.s8.scales"> : !quant.w<s8, 32x16, channel, sym, scale = f16>
    %20 = quant.linear %18, %19 : (tensor<1x4x16xbf16>, !quant.w<s8, 32x16, channel, sym, scale = f16>) -> tensor<1x4x32xbf16>
    %21 = quant.weight <"axc"::"model.layers.0.mlp.up_proj.s8"> scales <"axc"::"model.layers.0.mlp.up_proj.s8.scales"> : !quant.w<s8, 32x16, channel, sym, scale = f16>
    %22 = quant.linear %18, %21 : (tensor<1x4x16xbf16>, !quant.w<s8, 32x16, channel, sym, scale = f16>) -> tensor<1x4x32xbf16>
    %23 = tfm.act %20 {kind = "silu"} : (tensor<1x4x32xbf16>) -> tensor<1x4x32xbf16>
    %24 = tfm.mul %23, %22 : (tensor<1x4x32xbf16>, tensor<1x4x32xbf16>) -> tensor<1x4x32xbf16>
    %25 = quant.weight <"axc"::"model.layers.0.mlp.down_proj.s8"> scales <"axc"::"model.layers.0.mlp.down_proj.s8.scales"> : !quant.w<s8, 16x32, channel, sym, scale = f16>
    %26 = quant.linear %24, %25 : (tensor<1x4x32xbf16>, !quant.w<s8, 16x32, channel, sym, scale = f16>) -> tensor<1x4x16xbf16>
    %27 = tfm.add %16, %26 : (tensor<1x4x16xbf16>, tensor<1x4x16xbf16>) -> tensor<1x4x16xbf16>
    func.return %12, %10, %27 : tensor<1x4x8xbf16>, tensor<1x4x8xbf16>, tensor<1x4x16xbf16>
  }
  func.func @post(%input: tensor<1x1x16xbf16>) -> tensor<1x1x32xf32> attributes {axc.input_names = ["input"], axc.output_names = ["output"]} {
    %0 = axc.param <"model"::"model.norm.weight"> : tensor<16xbf16>
    %1 = tfm.rms_norm %input, %0 {eps = 1.000000e-06 : f64} : (tensor<1x1x16xbf16>, tensor<16xbf16>) -> tensor<1x1x16xbf16>
    %2 = quant.weight <"axc"::"lm_head.s8"> scales <"axc"::"lm_head.s8.scales"> : !quant.w<s8, 32x16, channel, sym, scale = f16>
    %3 = quant.linear %1, %2 : (tensor<1x1x16xbf16>, !quant.w<s8, 32x16, channel, sym, scale = f16>) -> tensor<1x1x32xf32>
    func.return %3 : tensor<1x1x32xf32>
  }
}

// The module records the target; weights are named parameters the DMA reads as stored.
// Each function records its fit level (0: the first attempt fit) and one schedule per
// tiled op: tiles [M, N, K] (attention: query rows, key rows), loop order, where the
// operands live and the DDR bytes the schedule moves.
// CHECK:      axc.target = "AX650", axc.npu_mode = "NPU1", npu.ocm_capacity = 4194304 : i64
// CHECK:      func.func @layer_0_g0(%K_cache: tensor<1x15x8xbf16>, %V_cache: tensor<1x15x8xbf16>, %indices: tensor<1x1xui32>, %input: tensor<1x1x16xbf16>, %mask: tensor<1x1x16xbf16>)
// CHECK-SAME:   npu.schedules = [{kind = "linear", op = "quant.linear", tiles = array<i64: 1, 16, 16>, order = "n,m", in = "ocm", out = "ocm", ddr_bytes = 320 : i64},
// CHECK-SAME:   {kind = "attention", op = "tfm.attention", tiles = array<i64: 1, 15>, order = "q,h,kv", in = "ocm", out = "ocm", mask = "rows", ddr_bytes = 512 : i64},
// CHECK-SAME:   {kind = "gated_mlp", op = "tfm.mul", tiles = array<i64: 1, 32, 16>, order = "n,m", in = "ocm", out = "ocm", ddr_bytes = 1152 : i64},
// CHECK-SAME:   npu.fit_level = 0 : i64
// CHECK:        %[[WQ:.*]] = axc.param <"axc"::"model.layers.0.self_attn.q_proj.s8"> : tensor<16x16xi8>
// CHECK-NEXT:   %[[SQ:.*]] = axc.param <"axc"::"model.layers.0.self_attn.q_proj.s8.scales"> : tensor<16xf16>
// CHECK:        %[[OUT:.*]] = npu.alloc : !npu.buf<1x1x16xbf16, ddr>
// The decode activation stays in OCM; each linear streams its weight, scales and bias.
// CHECK:        npu.dma_load %input[0 : 1x16] -> %[[X:.*]] : tensor<1x1x16xbf16>, !npu.buf<1x16xbf16, ocm>
// CHECK:        npu.rms_norm %[[X]], %{{.*}} -> %[[H:.*]] {eps = 1.000000e-06 : f64}
// CHECK-NEXT:   npu.dma_load %[[WQ]] -> %[[W:.*]] : tensor<16x16xi8>, !npu.buf<16x16xi8, ocm>
// CHECK-NEXT:   npu.dma_load %[[SQ]][0 : 16x1] -> %[[S:.*]] : tensor<16xf16>, !npu.buf<16x1xf16, ocm>
// CHECK-NEXT:   npu.dma_load %{{.*}}[0 : 1x16] -> %[[B:.*]] : tensor<16xbf16>, !npu.buf<1x16xbf16, ocm>
// CHECK-NEXT:   npu.matmul %[[H]], %[[W]] scales(%[[S]]) bias(%[[B]]) -> %{{.*}} {transpose_b, format = "s8"}
// Attention: online softmax over the cache tile, then over the new row; GQA heads batch.
// CHECK:        npu.rope
// CHECK:        npu.fill -> %[[M:.*]] {value = -1.000000e+30 : f64}
// CHECK:        npu.dma_load %K_cache[0 : 15x8] -> %[[K:.*]] : tensor<1x15x8xbf16>, !npu.buf<15x8xbf16, ocm>
// CHECK-NEXT:   npu.dma_load %V_cache[0 : 15x8] -> %[[V:.*]] : tensor<1x15x8xbf16>, !npu.buf<15x8xbf16, ocm>
// CHECK-NEXT:   npu.matmul %{{.*}}[0 : 2x1x8 : 8x16x1], %[[K]] -> %[[SC:.*]] {transpose_b, alpha = 0.35355339059327373 : f64}
// CHECK-NEXT:   npu.add %[[SC]], %{{.*}}[0 : 1x15 : 16x1] -> %[[SC]]
// CHECK-NEXT:   npu.online_softmax %[[SC]] -> %[[SC]], %[[M]], %[[L:.*]], %[[C:.*]] :
// CHECK-NEXT:   npu.mul %[[ACC:.*]], %[[C]] -> %[[ACC]]
// CHECK-NEXT:   npu.matmul %[[SC]], %[[V]] -> %[[ACC]] {accumulate}
// CHECK:        npu.div %[[ACC]], %[[L]] -> %{{.*}}[0 : 2x1x8 : 8x16x1]
// The gated MLP is one schedule: gate and up tiles, then their product. The residuals
// stay on chip; results go to DDR outputs.
// CHECK:        npu.rms_norm %{{.*}}, %{{.*}} -> %[[H2:.*]] {eps
// CHECK:        npu.matmul %[[H2]], %{{.*}} scales(%{{.*}}) -> %[[G:.*]] {transpose_b, format = "s8"}
// CHECK-NEXT:   npu.matmul %[[H2]], %{{.*}} scales(%{{.*}}) -> %[[U:.*]] {transpose_b, format = "s8"}
// CHECK-NEXT:   npu.act_mul %[[G]], %[[U]] -> %{{.*}} {kind = "silu"}
// CHECK:        npu.dma_store %{{.*}} -> %[[OUT]][0 : 1x16] : !npu.buf<1x16xbf16, ocm>, !npu.buf<1x1x16xbf16, ddr>
// CHECK:        func.return
// CHECK:      func.func @layer_0_g1(
// CHECK-SAME:   npu.fit_level = 0 : i64
// The logits are produced straight into their DDR output.
// CHECK:      func.func @post(
// CHECK-SAME:   npu.schedules = [{kind = "linear", op = "quant.linear", tiles = array<i64: 1, 32, 16>, order = "n,m", in = "ocm", out = "ddr", ddr_bytes = 704 : i64}], npu.fit_level = 0 : i64
// CHECK:        npu.matmul %{{.*}}, %{{.*}} scales(%{{.*}}) -> %[[Y:.*]] {transpose_b, format = "s8"} : {{.*}}, !npu.buf<1x32xf32, ocm>
// CHECK-NEXT:   npu.dma_store %[[Y]] -> %{{.*}}[0 : 1x32] : !npu.buf<1x32xf32, ocm>, !npu.buf<1x1x32xf32, ddr>

// With 1 KiB of OCM the first attempt still fits: weights stream in narrow N tiles; in
// the prefill group the gated MLP's product goes to DDR tile by tile, and the down
// projection then keeps its whole input block on chip while its weight streams past
// (M outer), in 3-row N tiles and a 1-row tail: as many DDR bytes as 2-row tiles, but the
// matrix engine pads 6 tiles to its 16 columns instead of 8, and at this size the MACs,
// not the bytes, take the time.
// SMALL:      func.func @layer_0_g1(
// SMALL-SAME:   {kind = "gated_mlp", op = "tfm.mul", tiles = array<i64: 4, 3, 16>, order = "n,m", in = "ocm", out = "ddr", ddr_bytes = 3968 : i64}, {kind = "linear", op = "quant.linear", tiles = array<i64: 4, 3, 32>, order = "m,n", in = "ddr", out = "ocm", ddr_bytes = 800 : i64}
// SMALL-SAME:   npu.fit_level = 0 : i64
// SMALL:        npu.dma_load %input[0 : 4x16] -> %{{.*}} : tensor<1x4x16xbf16>, !npu.buf<4x16xbf16, ocm>
// SMALL:        npu.loop %[[N:.*]] = 0 to 10 {
// SMALL:          npu.act_mul %[[G:.*]], %[[U:.*]] -> %[[P:.*]] {kind = "silu"}
// SMALL-NEXT:     npu.dma_store %[[P]] -> %[[MUL:.*]][3 * %[[N]] : 4x3 : 32x1] : !npu.buf<4x3xbf16, ocm>, !npu.buf<4x32xbf16, ddr>
// SMALL-NEXT:   }
// SMALL:        npu.dma_load %[[MUL]] -> %[[X:.*]] : !npu.buf<4x32xbf16, ddr>, !npu.buf<4x32xbf16, ocm>
// SMALL-NEXT:   npu.loop %{{.*}} = 0 to 5 {
// SMALL:          npu.matmul %[[X]], %{{.*}} scales(%{{.*}}) -> %{{.*}}
// SMALL:        npu.matmul %[[X]], %{{.*}}[0 : 1x32] scales(%{{.*}}[0 : 1x1]) -> %{{.*}}[15 : 4x1 : 16x1]

// With 384 bytes the layer fits only at the third attempt (a quarter of OCM for kept
// activations, three quarters of the rest per op): activations move to DDR, norms and
// ropes run over row tiles, and the MLP splits K into one-element fp32 accumulations.
// TINY:       func.func @layer_0_g0(
// TINY-SAME:    {kind = "rows", op = "tfm.rms_norm", tiles = array<i64: 1>, order = "r"}
// TINY-SAME:    {kind = "attention", op = "tfm.attention", tiles = array<i64: 1, 1>, order = "q,h,kv", in = "ocm", out = "ocm", mask = "tiles", ddr_bytes = 1536 : i64}
// TINY-SAME:    {kind = "gated_mlp", op = "tfm.mul", tiles = array<i64: 1, 1, 1>, order = "n,k,m", in = "ocm", out = "ddr", ddr_bytes = 67712 : i64}
// TINY-SAME:    npu.fit_level = 2 : i64
// TINY:       func.func @layer_0_g1(
// TINY-SAME:    {kind = "linear", op = "quant.linear", tiles = array<i64: 2, 2, 16>, order = "m,n", in = "ddr", out = "ddr", ddr_bytes = 2816 : i64}
// TINY-SAME:    npu.fit_level = 2 : i64
// TINY:       func.func @post(
// TINY-SAME:    npu.fit_level = 0 : i64

// Tiling needs the static shapes of the shape groups (here the import level of
// specialize-groups' test).
// DYN: axc-opt: error: tile: @post has dynamic shapes; run specialize-groups first
