// RUN: axc-opt %s --parsing-diagnostics --verify-diagnostics --split-input-file | FileCheck %s

%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> : !quant.w<s3, 16x16, channel, sym, scale = bf16>
// CHECK: unknown weight kind 's3' (known: s8, s4, fp8_e4m3, fp8_e5m2, bf16, fp16, fp32)

// -----

%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> : !quant.w<s8, 16, channel, sym, scale = bf16>
// CHECK: expected the static weight shape OUTxIN

// -----

%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> : !quant.w<s8, 16x16, channel, sym>
// CHECK: !quant.w: s8 weights need a scale type (f16, bf16, f32)

// -----

%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> : !quant.w<s8, 16x16, channel, sym, scale = i8>
// CHECK: !quant.w: scale type i8 is not one of f16, bf16, f32

// -----

%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> zeros <"axc"::"z"> : !quant.w<fp8_e4m3, 16x16, group = 8, asym, scale = bf16>
// CHECK: !quant.w: fp8_e4m3 weights have symmetric per-channel scales only

// -----

%w = quant.weight <"axc"::"w"> : !quant.w<bf16, 16x16, scale = bf16>
// CHECK: !quant.w: bf16 weights are stored plain: no group, zero point or scale

// -----

%w = quant.weight <"axc"::"w"> : !quant.w<s4, 16x16, group = 8, sym, scale = f16>
// CHECK: 'quant.weight' op s4 weights need scales

// -----

%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> : !quant.w<bf16, 16x16>
// CHECK: 'quant.weight' op bf16 weights take no scales

// -----

%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> : !quant.w<s4, 16x16, group = 8, asym, scale = f16>
// CHECK: 'quant.weight' op asym weights need zeros

// -----

%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> zeros <"axc"::"z"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
// CHECK: 'quant.weight' op sym and plain weights take no zeros

// -----

%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> perm <"axc"::"p"> : !quant.w<s4, 16x16, channel, sym, scale = f16>
// CHECK: 'quant.weight' op an input permutation needs group-wise scales

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x32xf32>
%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
%y = quant.linear %x, %w : (tensor<1x4x32xf32>, !quant.w<s8, 16x16, channel, sym, scale = f16>) -> tensor<1x4x16xf32>
// CHECK: 'quant.linear' op input has 32 features but the weight expects 16

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x16xf32>
%b = axc.param <"m"::"b"> : tensor<8xf32>
%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
%y = quant.linear %x, %w, %b : (tensor<1x4x16xf32>, !quant.w<s8, 16x16, channel, sym, scale = f16>, tensor<8xf32>) -> tensor<1x4x16xf32>
// CHECK: 'quant.linear' op bias has shape 8, expected 16

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x16xf32>
%w = quant.weight <"axc"::"w"> scales <"axc"::"s"> : !quant.w<s8, 16x16, channel, sym, scale = f16>
%y = quant.linear %x, %w : (tensor<1x4x16xf32>, !quant.w<s8, 16x16, channel, sym, scale = f16>) -> tensor<1x4x8xf32>
// CHECK: 'quant.linear' op result has shape 1x4x8, expected 1x4x16

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x16xf32>
%y = quant.linear %x, %x : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
// CHECK: tensor<1x4x16xf32> should be of base attribute quant.w

// -----

%w = quant.weight <"axc"::"w"> : !quant.w<bf16, 16x16>
%d = quant.dequant %w : (!quant.w<bf16, 16x16>) -> tensor<16x8xf32>
// CHECK: 'quant.dequant' op result has shape 16x8, expected 16x16
