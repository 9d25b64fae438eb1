// RUN: not axc-opt %s -p lower-to-ax620e 2>&1 | FileCheck %s

// The npu level is target independent; the target descriptor decides legality when the
// program is lowered: AX620E has no fp8 weights.
builtin.module attributes {axc.target = "AX630C", axc.npu_mode = "NPU1"} {
  func.func @post(%input: tensor<1x1x64xbf16>) -> tensor<1x1x64xbf16> attributes {axc.input_names = ["input"], axc.output_names = ["output"]} {
    %w = axc.param <"axc"::"lm_head.fp8_e4m3"> : tensor<64x64xf8E4M3FN>
    %s = axc.param <"axc"::"lm_head.fp8_e4m3.scales"> : tensor<64xbf16>
    %out = npu.alloc : !npu.buf<1x1x64xbf16, ddr>
    %x = npu.alloc {offset = 0 : i64} : !npu.buf<1x64xbf16, ocm>
    %t = npu.alloc {offset = 128 : i64} : !npu.buf<64x64xf8E4M3FN, ocm>
    %st = npu.alloc {offset = 4224 : i64} : !npu.buf<64x1xbf16, ocm>
    %y = npu.alloc {offset = 4352 : i64} : !npu.buf<1x64xbf16, ocm>
    npu.dma_load %input[0 : 1x64] -> %x : tensor<1x1x64xbf16>, !npu.buf<1x64xbf16, ocm>
    npu.dma_load %w -> %t : tensor<64x64xf8E4M3FN>, !npu.buf<64x64xf8E4M3FN, ocm>
    npu.dma_load %s[0 : 64x1] -> %st : tensor<64xbf16>, !npu.buf<64x1xbf16, ocm>
    npu.matmul %x, %t scales(%st) -> %y {format = "fp8_e4m3", transpose_b} : !npu.buf<1x64xbf16, ocm>, !npu.buf<64x64xf8E4M3FN, ocm>, !npu.buf<64x1xbf16, ocm>, !npu.buf<1x64xbf16, ocm>
    npu.dma_store %y -> %out[0 : 1x64] : !npu.buf<1x64xbf16, ocm>, !npu.buf<1x1x64xbf16, ddr>
    %r = npu.to_tensor %out : !npu.buf<1x1x64xbf16, ddr> -> tensor<1x1x64xbf16>
    func.return %r : tensor<1x1x64xbf16>
  }
}

// CHECK: axc-opt: error: lower-to-ax620e: @post: group 0: instruction 3 (matmul): AX630C cannot store fp8_e4m3 weights (supported: s8, s4, bf16, fp16); choose --weight-type s8 or --weight-type s4
