// RUN: axc-opt %s -p 'post-topk{k=4}' | FileCheck %s
// RUN: axc-opt %s -p post-topk | FileCheck %s --check-prefix=ZERO
// RUN: not axc-opt %s -p 'post-topk{k=33}' 2>&1 | FileCheck %s --check-prefix=BIG

// The activation-typed level: @post returns fp32 logits over a 32-token vocabulary.
builtin.module attributes {axc.model_type = "qwen2", axc.num_layers = 1 : i64, axc.activation_type = "bf16"} {
  func.func @post(%input: tensor<1x1x16xbf16>) -> tensor<1x1x32xf32> attributes {axc.input_names = ["input"], axc.output_names = ["output"]} {
    %nw = axc.param <"model"::"model.norm.weight"> : tensor<16xbf16>
    %h = tfm.rms_norm %input, %nw {eps = 1.000000e-06 : f64} : (tensor<1x1x16xbf16>, tensor<16xbf16>) -> tensor<1x1x16xbf16>
    %w = quant.weight <"axc"::"lm_head.s8"> scales <"axc"::"lm_head.s8.scales"> : !quant.w<s8, 32x16, channel, sym, scale = f16>
    %logits = quant.linear %h, %w : (tensor<1x1x16xbf16>, !quant.w<s8, 32x16, channel, sym, scale = f16>) -> tensor<1x1x32xf32>
    func.return %logits : tensor<1x1x32xf32>
  }
}

// @post returns the top-4 ids (int32, argmax first) and their probabilities (fp32), in the
// vendor's order; the logits feeding the top-k stay fp32.
// CHECK:      func.func @post(%input: tensor<1x1x16xbf16>) -> (tensor<1x1x4xi32>, tensor<1x1x4xf32>) attributes {axc.input_names = ["input"], axc.output_names = ["indices", "probs"]}
// CHECK:        %logits = quant.linear {{.*}} -> tensor<1x1x32xf32>
// CHECK-NEXT:   %probs, %indices = tfm.topk %logits {k = 4 : i64} : (tensor<1x1x32xf32>) -> (tensor<1x1x4xf32>, tensor<1x1x4xi32>)
// CHECK-NEXT:   func.return %indices, %probs : tensor<1x1x4xi32>, tensor<1x1x4xf32>

// k=0 (the default) keeps the logits.
// ZERO:       func.func @post(%input: tensor<1x1x16xbf16>) -> tensor<1x1x32xf32>
// ZERO-NOT:   tfm.topk

// BIG: post-topk: k=33 exceeds the vocabulary of 32 tokens
