// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=31 prefill-len=8 last-kv-cache-len=8,16}' | FileCheck %s
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=31}' | FileCheck %s --check-prefix=DECODE

// The decode group: one token over kv-cache-len rows; mask has kv-cache-len + 1 columns.
// CHECK:      func.func @layer_0_g0(%K_cache: tensor<1x31x8xbf16>, %V_cache: tensor<1x31x8xbf16>, %indices: tensor<1x1xui32>, %input: tensor<1x1x16xbf16>, %mask: tensor<1x1x32xbf16>) -> (tensor<1x1x8xbf16>, tensor<1x1x8xbf16>, tensor<1x1x16xbf16>)
// CHECK-SAME:   axc.group = 0 : i64, axc.tokens = 1 : i64, axc.history = 31 : i64
// CHECK-NEXT:   %{{.*}} = tfm.cast %K_cache : (tensor<1x31x8xbf16>) -> tensor<1x31x8xf32>
// CHECK:        tfm.attention {{.*}} -> tensor<1x1x16xf32>
// CHECK:        %[[OUT:.*]] = tfm.cast %{{.*}} : (tensor<1x1x16xf32>) -> tensor<1x1x16xbf16>
// CHECK-NEXT:   func.return %{{.*}}, %{{.*}}, %[[OUT]]
// The first prefill group has a one-row dummy history; the second sees 8 cached rows.
// CHECK:      func.func @layer_0_g1(%K_cache: tensor<1x1x8xbf16>, %V_cache: tensor<1x1x8xbf16>, %indices: tensor<1x8xui32>, %input: tensor<1x8x16xbf16>, %mask: tensor<1x8x9xbf16>)
// CHECK-SAME:   axc.group = 1 : i64, axc.tokens = 8 : i64, axc.history = 1 : i64
// CHECK:      func.func @layer_0_g2(%K_cache: tensor<1x8x8xbf16>, %V_cache: tensor<1x8x8xbf16>, %indices: tensor<1x8xui32>, %input: tensor<1x8x16xbf16>, %mask: tensor<1x8x16xbf16>)
// CHECK-SAME:   axc.group = 2 : i64, axc.tokens = 8 : i64, axc.history = 8 : i64
// CHECK:      func.func @layer_1_g0(
// CHECK:      func.func @layer_1_g1(
// CHECK:      func.func @layer_1_g2(
// CHECK:      func.func @post(%input: tensor<1x1x16xbf16>) -> tensor<1x1x32xf32>

// Prefill-len 0 builds a decode-only model.
// DECODE:     func.func @layer_0_g0(
// DECODE-NOT: @layer_0_g1
// DECODE:     func.func @layer_1_g0(
