// RUN: axc-opt %s | axc-opt | FileCheck %s
// RUN: axc-opt %s --print-op-generic | axc-opt | FileCheck %s

builtin.module {
  %x = axc.param <"m"::"x"> : tensor<1x4x256xf32>
  %b = axc.param <"m"::"b"> : tensor<512xf32>
  %s8 = quant.weight <"axc"::"l.s8"> scales <"axc"::"l.s8.scales"> : !quant.w<s8, 512x256, channel, sym, scale = bf16>
  %s8a = quant.weight <"axc"::"l.s8a"> scales <"axc"::"l.s8a.scales"> zeros <"axc"::"l.s8a.zeros"> : !quant.w<s8, 512x256, group = 64, asym, scale = f32>
  %s4 = quant.weight <"axc"::"l.s4"> scales <"axc"::"l.s4.scales"> zeros <"axc"::"l.s4.zeros"> perm <"axc"::"l.s4.perm"> : !quant.w<s4, 512x256, group = 128, asym, scale = f16>
  %e4 = quant.weight <"axc"::"l.fp8"> scales <"axc"::"l.fp8.scales"> : !quant.w<fp8_e4m3, 512x256, channel, scale = bf16>
  %e5 = quant.weight <"axc"::"l.fp8b"> scales <"axc"::"l.fp8b.scales"> : !quant.w<fp8_e5m2, 512x256, channel, scale = f16>
  %bf = quant.weight <"model"::"l.weight"> : !quant.w<bf16, 512x256>
  %h = quant.weight <"axc"::"l.fp16"> : !quant.w<fp16, 512x256>
  %f = quant.weight <"axc"::"l.fp32"> : !quant.w<fp32, 512x256>
  %y = quant.linear %x, %s4 : (tensor<1x4x256xf32>, !quant.w<s4, 512x256, group = 128, asym, scale = f16>) -> tensor<1x4x512xf32>
  %yb = quant.linear %x, %s8, %b : (tensor<1x4x256xf32>, !quant.w<s8, 512x256, channel, sym, scale = bf16>, tensor<512xf32>) -> tensor<1x4x512xbf16>
  %d = quant.dequant %e4 : (!quant.w<fp8_e4m3, 512x256, channel, scale = bf16>) -> tensor<512x256xf32>
}

// CHECK:      %s8 = quant.weight <"axc"::"l.s8"> scales <"axc"::"l.s8.scales"> : !quant.w<s8, 512x256, channel, sym, scale = bf16>
// CHECK-NEXT: %s8a = quant.weight <"axc"::"l.s8a"> scales <"axc"::"l.s8a.scales"> zeros <"axc"::"l.s8a.zeros"> : !quant.w<s8, 512x256, group = 64, asym, scale = f32>
// CHECK-NEXT: %s4 = quant.weight <"axc"::"l.s4"> scales <"axc"::"l.s4.scales"> zeros <"axc"::"l.s4.zeros"> perm <"axc"::"l.s4.perm"> : !quant.w<s4, 512x256, group = 128, asym, scale = f16>
// CHECK-NEXT: %e4 = quant.weight <"axc"::"l.fp8"> scales <"axc"::"l.fp8.scales"> : !quant.w<fp8_e4m3, 512x256, channel, scale = bf16>
// CHECK-NEXT: %e5 = quant.weight <"axc"::"l.fp8b"> scales <"axc"::"l.fp8b.scales"> : !quant.w<fp8_e5m2, 512x256, channel, scale = f16>
// CHECK-NEXT: %bf = quant.weight <"model"::"l.weight"> : !quant.w<bf16, 512x256>
// CHECK-NEXT: %h = quant.weight <"axc"::"l.fp16"> : !quant.w<fp16, 512x256>
// CHECK-NEXT: %f = quant.weight <"axc"::"l.fp32"> : !quant.w<fp32, 512x256>
// CHECK-NEXT: %y = quant.linear %x, %s4 : (tensor<1x4x256xf32>, !quant.w<s4, 512x256, group = 128, asym, scale = f16>) -> tensor<1x4x512xf32>
// CHECK-NEXT: %yb = quant.linear %x, %s8, %b : (tensor<1x4x256xf32>, !quant.w<s8, 512x256, channel, sym, scale = bf16>, tensor<512xf32>) -> tensor<1x4x512xbf16>
// CHECK-NEXT: %d = quant.dequant %e4 : (!quant.w<fp8_e4m3, 512x256, channel, scale = bf16>) -> tensor<512x256xf32>
