// RUN: not axc-opt %s -p 'tile{target=AX620E}' 2>&1 | FileCheck %s

// A weight type the chip cannot store is one line.
builtin.module {
  func.func @post(%input: tensor<1x1x16xbf16>) -> tensor<1x1x32xf32> {
    %w = quant.weight <"axc"::"lm_head.fp8_e4m3"> scales <"axc"::"lm_head.fp8_e4m3.scales"> : !quant.w<fp8_e4m3, 32x16, channel, scale = bf16>
    %logits = quant.linear %input, %w : (tensor<1x1x16xbf16>, !quant.w<fp8_e4m3, 32x16, channel, scale = bf16>) -> tensor<1x1x32xf32>
    func.return %logits : tensor<1x1x32xf32>
  }
}
// CHECK: axc-opt: error: AX620E cannot store fp8_e4m3 weights (lm_head.fp8_e4m3) (supported: s8, s4, bf16, fp16); choose -w s8 or -w s4
