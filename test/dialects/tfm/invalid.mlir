// RUN: axc-opt %s --parsing-diagnostics --verify-diagnostics --split-input-file | FileCheck %s

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%w = axc.param <"m"::"w"> : tensor<32xf32>
%h = tfm.rms_norm %x, %w {eps = 1.0e-06 : f64} : (tensor<1x4x64xf32>, tensor<32xf32>) -> tensor<1x4x64xf32>
// CHECK: 'tfm.rms_norm' op weight has shape 32, expected 64

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%w = axc.param <"m"::"w"> : tensor<32x48xf32>
%y = tfm.linear %x, %w : (tensor<1x4x64xf32>, tensor<32x48xf32>) -> tensor<1x4x32xf32>
// CHECK: 'tfm.linear' op input has 64 features but weight 32x48 expects 48

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%w = axc.param <"m"::"w"> : tensor<32x64xf32>
%b = axc.param <"m"::"b"> : tensor<64xf32>
%y = tfm.linear %x, %w, %b : (tensor<1x4x64xf32>, tensor<32x64xf32>, tensor<64xf32>) -> tensor<1x4x32xf32>
// CHECK: 'tfm.linear' op bias has shape 64, expected 32

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%a = tfm.act %x {kind = "swoosh"} : (tensor<1x4x64xf32>) -> tensor<1x4x64xf32>
// CHECK: 'tfm.act' op unknown activation 'swoosh' (supported: silu, gelu, gelu_tanh, relu)

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%p = axc.param <"m"::"p"> : tensor<1x4xui32>
%r = tfm.rope %x, %p {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 7, theta = 10000.0>} : (tensor<1x4x64xf32>, tensor<1x4xui32>) -> tensor<1x4x64xf32>
// CHECK: 'tfm.rope' op rotary_dim 7 must be even and in (0, 16]

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%p = axc.param <"m"::"p"> : tensor<1x4xui32>
%r = tfm.rope %x, %p {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, scaling = "ntk">} : (tensor<1x4x64xf32>, tensor<1x4xui32>) -> tensor<1x4x64xf32>
// CHECK: unknown scaling 'ntk' (supported: default, linear, llama3, longrope)

// -----

%q = axc.param <"m"::"q"> : tensor<1x2x64xf32>
%k = axc.param <"m"::"k"> : tensor<1x2x32xf32>
%c = axc.param <"m"::"c"> : tensor<1x6x32xf32>
%m = axc.param <"m"::"m"> : tensor<1x2x6xf32>
%a = tfm.attention %q, %k, %k, %c, %c, %m {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<1x2x64xf32>, tensor<1x2x32xf32>, tensor<1x2x32xf32>, tensor<1x6x32xf32>, tensor<1x6x32xf32>, tensor<1x2x6xf32>) -> tensor<1x2x64xf32>
// CHECK: 'tfm.attention' op mask has shape 1x2x6, expected 1x2x8

// -----

%q = axc.param <"m"::"q"> : tensor<1x2x48xf32>
%k = axc.param <"m"::"k"> : tensor<1x2x32xf32>
%c = axc.param <"m"::"c"> : tensor<1x6x32xf32>
%m = axc.param <"m"::"m"> : tensor<1x2x8xf32>
%a = tfm.attention %q, %k, %k, %c, %c, %m {num_heads = 3 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<1x2x48xf32>, tensor<1x2x32xf32>, tensor<1x2x32xf32>, tensor<1x6x32xf32>, tensor<1x6x32xf32>, tensor<1x2x8xf32>) -> tensor<1x2x48xf32>
// CHECK: 'tfm.attention' op num_heads 3 must be a positive multiple of num_kv_heads 2

// -----

// Without caches (a history-0 group) the mask covers the new rows only.
%q = axc.param <"m"::"q"> : tensor<1x2x64xf32>
%k = axc.param <"m"::"k"> : tensor<1x2x32xf32>
%m = axc.param <"m"::"m"> : tensor<1x2x3xf32>
%a = tfm.attention %q, %k, %k, %m {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<1x2x64xf32>, tensor<1x2x32xf32>, tensor<1x2x32xf32>, tensor<1x2x3xf32>) -> tensor<1x2x64xf32>
// CHECK: 'tfm.attention' op mask has shape 1x2x3, expected 1x2x2

// -----

%q = axc.param <"m"::"q"> : tensor<1x2x64xf32>
%k = axc.param <"m"::"k"> : tensor<1x2x32xf32>
%c = axc.param <"m"::"c"> : tensor<1x6x32xf32>
%m = axc.param <"m"::"m"> : tensor<1x2x8xf32>
%a = tfm.attention %q, %k, %k, %c, %m {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<1x2x64xf32>, tensor<1x2x32xf32>, tensor<1x2x32xf32>, tensor<1x6x32xf32>, tensor<1x2x8xf32>) -> tensor<1x2x64xf32>
// CHECK: 'tfm.attention' op takes a key and a value cache or none, got 1 cache operands

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%y = axc.param <"m"::"y"> : tensor<1x4x32xf32>
%s = tfm.add %x, %y : (tensor<1x4x64xf32>, tensor<1x4x32xf32>) -> tensor<1x4x64xf32>
// CHECK: 'tfm.add' op rhs has shape 1x4x32, expected 1x4x64

// -----

%i = axc.param <"m"::"i"> : tensor<1x4xf32>
%t = axc.param <"m"::"t"> : tensor<32x16xf32>
%e = tfm.embedding %i, %t : (tensor<1x4xf32>, tensor<32x16xf32>) -> tensor<1x4x16xf32>
// CHECK: 'tfm.embedding' op ids must be integers

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%v, %i = tfm.topk %x {k = 100 : i64} : (tensor<1x4x64xf32>) -> (tensor<1x4x100xf32>, tensor<1x4x100xi32>)
// CHECK: 'tfm.topk' op k = 100 must be in [1, 64]

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%y = tfm.rms_norm %x {eps = 1.0e-06 : f64} : (tensor<1x4x64xf32>) -> tensor<1x4x64xf32>
// CHECK: Expected 2 operands, but got 1

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%p = axc.param <"m"::"p"> : tensor<1x4xui32>
%r = tfm.rope %x, %p {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, beta_fast = 32.0>} : (tensor<1x4x64xf32>, tensor<1x4xui32>) -> tensor<1x4x64xf32>
// CHECK: #tfm.rope has no parameter 'beta_fast'

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%p = axc.param <"m"::"p"> : tensor<1x4xui32>
%r = tfm.rope %x, %p {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<rotary_dim = 16, theta = 10000.0, interleaved = 1>} : (tensor<1x4x64xf32>, tensor<1x4xui32>) -> tensor<1x4x64xf32>
// CHECK: #tfm.rope parameter interleaved must be a bool

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x64xf32>
%p = axc.param <"m"::"p"> : tensor<1x4xui32>
%r = tfm.rope %x, %p {num_heads = 4 : i64, head_dim = 16 : i64, rope = #tfm.rope<theta = 10000.0>} : (tensor<1x4x64xf32>, tensor<1x4xui32>) -> tensor<1x4x64xf32>
// CHECK: #tfm.rope lacks rotary_dim
