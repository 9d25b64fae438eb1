// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=15},quantize-weights,set-activation-type,post-topk{k=4}' --params-out %t.safetensors | FileCheck %s
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | axc-opt -p 'specialize-groups{kv-cache-len=15},post-topk' | FileCheck %s --check-prefix=ZERO
// RUN: axc-translate --import-hf %fixtures/tiny-qwen2 | not axc-opt -p 'specialize-groups{kv-cache-len=15},post-topk{k=33}' 2>&1 | FileCheck %s --check-prefix=BIG

// @post returns the top-4 ids (int32, argmax first) and their probabilities (fp32), in the
// vendor's order; the logits feeding the top-k stay fp32.
// CHECK:      func.func @post(%input: tensor<1x1x16xbf16>) -> (tensor<1x1x4xi32>, tensor<1x1x4xf32>) attributes {axc.input_names = ["input"], axc.output_names = ["indices", "probs"]}
// CHECK:        %[[L:.*]] = quant.linear {{.*}} -> tensor<1x1x32xf32>
// CHECK-NEXT:   %probs, %indices = tfm.topk %[[L]] {k = 4 : i64} : (tensor<1x1x32xf32>) -> (tensor<1x1x4xf32>, tensor<1x1x4xi32>)
// CHECK-NEXT:   func.return %indices, %probs : tensor<1x1x4xi32>, tensor<1x1x4xf32>

// k=0 (the default) keeps the logits.
// ZERO:       func.func @post(%input: tensor<1x1x16xbf16>) -> tensor<1x1x32xf32>
// ZERO-NOT:   tfm.topk

// BIG: post-topk: k=33 exceeds the vocabulary of 32 tokens
