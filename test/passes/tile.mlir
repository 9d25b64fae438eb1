// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=15 prefill-len=4 last-kv-cache-len=4},quantize-weights,set-activation-type,tile{target=AX650}' --params-out %t.safetensors | FileCheck %s
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=15 prefill-len=4 last-kv-cache-len=4},quantize-weights,set-activation-type,tile{target=AX620E ocm-bytes=1024}' --params-out %t2.safetensors | FileCheck %s --check-prefix=SMALL
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | not axc-opt -p 'specialize-groups,quantize-weights{weight-type=fp8_e4m3},tile{target=AX620E}' --params-out %t3.safetensors 2>&1 | FileCheck %s --check-prefix=ERR
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | not axc-opt -p tile 2>&1 | FileCheck %s --check-prefix=DYN

// The module records the target; weights are named parameters the DMA reads as stored.
// CHECK:      axc.target = "AX650", axc.npu_mode = "NPU1", npu.ocm_capacity = 4194304 : i64
// CHECK:      func.func @layer_0_g0(%K_cache: tensor<1x15x8xbf16>, %V_cache: tensor<1x15x8xbf16>, %indices: tensor<1x1xui32>, %input: tensor<1x1x16xbf16>, %mask: tensor<1x1x16xbf16>)
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
// CHECK:      func.func @layer_1_g0(
// CHECK:        axc.param <"axc"::"model.layers.1.self_attn.q_proj.s8"> : tensor<16x16xi8>
// CHECK:      func.func @post(
// CHECK:        npu.matmul %{{.*}}, %{{.*}} scales(%{{.*}}) -> %[[Y:.*]] {transpose_b, format = "s8"} : {{.*}}, !npu.buf<1x32xf32, ocm>
// CHECK-NEXT:   npu.dma_store %[[Y]] -> %{{.*}}[0 : 1x32] : !npu.buf<1x32xf32, ocm>, !npu.buf<1x1x32xf32, ddr>

// With 1 KiB of OCM the prefill input lives in DDR, weights stream in narrow N tiles,
// and the gated MLP's product goes to DDR tile by tile; the down projection then keeps
// its whole input block on chip while its weight streams past (M outer).
// SMALL:      func.func @layer_0_g1(
// SMALL:        npu.dma_load %input[0 : 4x16] -> %{{.*}} : tensor<1x4x16xbf16>, !npu.buf<4x16xbf16, ocm>
// SMALL:        npu.loop %[[N:.*]] = 0 to 10 {
// SMALL:          npu.act_mul %[[G:.*]], %[[U:.*]] -> %[[P:.*]] {kind = "silu"}
// SMALL-NEXT:     npu.dma_store %[[P]] -> %[[MUL:.*]][3 * %[[N]] : 4x3 : 32x1] : !npu.buf<4x3xbf16, ocm>, !npu.buf<4x32xbf16, ddr>
// SMALL-NEXT:   }
// SMALL:        npu.dma_load %[[MUL]] -> %[[X:.*]] : !npu.buf<4x32xbf16, ddr>, !npu.buf<4x32xbf16, ocm>
// SMALL-NEXT:   npu.loop %{{.*}} = 0 to 8 {
// SMALL:          npu.matmul %[[X]], %{{.*}} scales(%{{.*}}) -> %{{.*}}

// A weight type the chip cannot store is one line.
// ERR: axc-opt: error: AX620E cannot store fp8_e4m3 weights (model.layers.0.self_attn.q_proj.fp8_e4m3) (supported: s8, s4, bf16, fp16); choose -w s8 or -w s4

// Tiling needs the static shapes of the shape groups.
// DYN: axc-opt: error: tile: @post has dynamic shapes; run specialize-groups first
