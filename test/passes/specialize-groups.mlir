// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=31 prefill-len=8 last-kv-cache-len=8,16}' | FileCheck %s
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=31 prefill-len=8}' | FileCheck %s --check-prefix=NOLAST
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=31}' | FileCheck %s --check-prefix=DECODE
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | not axc-opt -p 'specialize-groups{kv-cache-len=31 prefill-len=8 last-kv-cache-len=8,24}' 2>&1 | FileCheck %s --check-prefix=TOOLONG
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | not axc-opt -p 'specialize-groups{kv-cache-len=31 prefill-len=8 last-kv-cache-len=16,8}' 2>&1 | FileCheck %s --check-prefix=ORDER

// The vendor's ladder: decode, the history-0 group, one group per last-kv-cache-len value
// whose history IS that value (kv_dim 8, hidden 16 in the tiny model).
// CHECK:      builtin.module attributes {{{.*}}axc.kv_cache_len = 31 : i64, axc.prefill_len = 8 : i64, axc.histories = [31 : i64, 0 : i64, 8 : i64, 16 : i64]}

// Group 0, decode: one token over kv-cache-len rows; mask has kv-cache-len + 1 columns.
// CHECK:      func.func @layer_0_g0(%K_cache: tensor<1x31x8xbf16>, %V_cache: tensor<1x31x8xbf16>, %indices: tensor<1x1xui32>, %input: tensor<1x1x16xbf16>, %mask: tensor<1x1x32xbf16>) -> (tensor<1x1x8xbf16>, tensor<1x1x8xbf16>, tensor<1x1x16xbf16>)
// CHECK-SAME:   axc.group = 0 : i64, axc.tokens = 1 : i64, axc.history = 31 : i64
// CHECK-NEXT:   %{{.*}} = tfm.cast %K_cache : (tensor<1x31x8xbf16>) -> tensor<1x31x8xf32>
// CHECK:        tfm.attention %{{.*}}, %{{.*}}, %{{.*}}, %K_cache_1, %V_cache_1, %mask_1 {{.*}} -> tensor<1x1x16xf32>
// CHECK:        %[[OUT:.*]] = tfm.cast %{{.*}} : (tensor<1x1x16xf32>) -> tensor<1x1x16xbf16>
// CHECK-NEXT:   func.return %{{.*}}, %{{.*}}, %[[OUT]]

// Group 1, history 0: the caches are a [1, 1, hidden] dummy, never read (no cast, no use);
// attention sees the chunk alone and the mask is [1, P, P].
// CHECK:      func.func @layer_0_g1(%K_cache: tensor<1x1x16xbf16>, %V_cache: tensor<1x1x16xbf16>, %indices: tensor<1x8xui32>, %input: tensor<1x8x16xbf16>, %mask: tensor<1x8x8xbf16>) -> (tensor<1x8x8xbf16>, tensor<1x8x8xbf16>, tensor<1x8x16xbf16>)
// CHECK-SAME:   axc.group = 1 : i64, axc.tokens = 8 : i64, axc.history = 0 : i64
// CHECK-NOT:    %K_cache
// CHECK-NOT:    %V_cache
// CHECK:        tfm.attention %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %mask_1 {{.*}} : (tensor<1x8x16xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>) -> tensor<1x8x16xf32>
// CHECK-NOT:    %K_cache
// CHECK:        func.return

// Groups 2 and 3: histories 8 and 16 (the flag's values), mask [1, P, h + P].
// CHECK:      func.func @layer_0_g2(%K_cache: tensor<1x8x8xbf16>, %V_cache: tensor<1x8x8xbf16>, %indices: tensor<1x8xui32>, %input: tensor<1x8x16xbf16>, %mask: tensor<1x8x16xbf16>)
// CHECK-SAME:   axc.group = 2 : i64, axc.tokens = 8 : i64, axc.history = 8 : i64
// CHECK:        tfm.attention {{.*}}, %K_cache_1, %V_cache_1, %mask_1 {{.*}} : (tensor<1x8x16xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16xf32>
// CHECK:      func.func @layer_0_g3(%K_cache: tensor<1x16x8xbf16>, %V_cache: tensor<1x16x8xbf16>, %indices: tensor<1x8xui32>, %input: tensor<1x8x16xbf16>, %mask: tensor<1x8x24xbf16>)
// CHECK-SAME:   axc.group = 3 : i64, axc.tokens = 8 : i64, axc.history = 16 : i64
// CHECK-NOT:  @layer_0_g4
// CHECK:      func.func @layer_1_g0(
// CHECK:      func.func @layer_1_g1(
// CHECK:      func.func @layer_1_g2(
// CHECK:      func.func @layer_1_g3(
// CHECK:      func.func @post(%input: tensor<1x1x16xbf16>) -> tensor<1x1x32xf32>

// No last-kv-cache-len: decode and the history-0 group only.
// NOLAST:     axc.histories = [31 : i64, 0 : i64]
// NOLAST:     func.func @layer_0_g0(
// NOLAST:     func.func @layer_0_g1(%K_cache: tensor<1x1x16xbf16>, %V_cache: tensor<1x1x16xbf16>, %indices: tensor<1x8xui32>, %input: tensor<1x8x16xbf16>, %mask: tensor<1x8x8xbf16>)
// NOLAST-NOT: @layer_0_g2

// Prefill-len 0 builds a decode-only model.
// DECODE:     axc.histories = [31 : i64]
// DECODE:     func.func @layer_0_g0(
// DECODE-NOT: @layer_0_g1
// DECODE:     func.func @layer_1_g0(

// A chunk's rows are written after its history into the decode cache: h + P <= kv-cache-len.
// TOOLONG: axc-opt: error: last-kv-cache-len 24 + prefill-len 8 exceeds kv-cache-len = 31
// ORDER:   axc-opt: error: last-kv-cache-len values must be strictly increasing and at least 1, got [16, 8]
