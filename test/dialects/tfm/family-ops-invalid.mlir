// RUN: axc-opt %s --parsing-diagnostics --verify-diagnostics --split-input-file | FileCheck %s

%q = axc.param <"m"::"q"> : tensor<1x2x64xf32>
%k = axc.param <"m"::"k"> : tensor<1x2x32xf32>
%c = axc.param <"m"::"c"> : tensor<1x6x32xf32>
%m = axc.param <"m"::"m"> : tensor<1x2x8xf32>
%a = tfm.attention %q, %k, %k, %c, %c, %m {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, sliding_window = 4 : i64} : (tensor<1x2x64xf32>, tensor<1x2x32xf32>, tensor<1x2x32xf32>, tensor<1x6x32xf32>, tensor<1x6x32xf32>, tensor<1x2x8xf32>) -> tensor<1x2x64xf32>
// CHECK: 'tfm.attention' op a sliding_window needs the positions operand (before the mask)

// -----

%q = axc.param <"m"::"q"> : tensor<1x2x64xf32>
%k = axc.param <"m"::"k"> : tensor<1x2x32xf32>
%c = axc.param <"m"::"c"> : tensor<1x6x32xf32>
%m = axc.param <"m"::"m"> : tensor<1x2x8xf32>
%p = axc.param <"m"::"p"> : tensor<1x3xui32>
%a = tfm.attention %q, %k, %k, %c, %c, %p, %m {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, sliding_window = 4 : i64} : (tensor<1x2x64xf32>, tensor<1x2x32xf32>, tensor<1x2x32xf32>, tensor<1x6x32xf32>, tensor<1x6x32xf32>, tensor<1x3xui32>, tensor<1x2x8xf32>) -> tensor<1x2x64xf32>
// CHECK: 'tfm.attention' op positions has shape 1x3, expected 1x2

// -----

%q = axc.param <"m"::"q"> : tensor<1x2x64xf32>
%k = axc.param <"m"::"k"> : tensor<1x2x32xf32>
%c = axc.param <"m"::"c"> : tensor<1x6x32xf32>
%m = axc.param <"m"::"m"> : tensor<1x2x8xf32>
%a = tfm.attention %q, %k, %k, %c, %c, %m {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, softcap = -1.0 : f64} : (tensor<1x2x64xf32>, tensor<1x2x32xf32>, tensor<1x2x32xf32>, tensor<1x6x32xf32>, tensor<1x6x32xf32>, tensor<1x2x8xf32>) -> tensor<1x2x64xf32>
// CHECK: 'tfm.attention' op softcap -1.0 must be positive (0: none)

// -----

%x = axc.param <"m"::"x"> : tensor<1x1x64xf32>
%y = tfm.softcap %x {cap = 0.0 : f64} : (tensor<1x1x64xf32>) -> tensor<1x1x64xf32>
// CHECK: 'tfm.softcap' op cap 0.0 must be positive

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%p = axc.param <"m"::"p"> : tensor<1x4xui32>
%r = tfm.rope %x, %p {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, scaling = "longrope">} : (tensor<1x4x64xf32>, tensor<1x4xui32>) -> tensor<1x4x64xf32>
// CHECK: 'tfm.rope' op longrope needs the ext_factors operand, and only longrope takes one

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%p = axc.param <"m"::"p"> : tensor<1x4xui32>
%e = axc.param <"m"::"e"> : tensor<16xf32>
%r = tfm.rope %x, %p, %e {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, scaling = "longrope">} : (tensor<1x4x64xf32>, tensor<1x4xui32>, tensor<16xf32>) -> tensor<1x4x64xf32>
// CHECK: 'tfm.rope' op ext_factors has shape 16, expected 8
