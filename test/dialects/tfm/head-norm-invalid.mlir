// RUN: axc-opt %s --parsing-diagnostics --verify-diagnostics --split-input-file | FileCheck %s

%x = axc.param <"m"::"x"> : tensor<1x4x96xf32>
%w = axc.param <"m"::"w"> : tensor<32xf32>
%y = tfm.head_norm %x, %w {head_dim = 16 : i64, eps = 1.0e-06 : f64} : (tensor<1x4x96xf32>, tensor<32xf32>) -> tensor<1x4x96xf32>
// CHECK: 'tfm.head_norm' op weight has shape 32, expected 16

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x96xf32>
%w = axc.param <"m"::"w"> : tensor<40xf32>
%y = tfm.head_norm %x, %w {head_dim = 40 : i64, eps = 1.0e-06 : f64} : (tensor<1x4x96xf32>, tensor<40xf32>) -> tensor<1x4x96xf32>
// CHECK: 'tfm.head_norm' op input 1x4x96 is not [1, tokens, heads*40]

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x96xf32>
%w = axc.param <"m"::"w"> : tensor<16xf32>
%y = tfm.head_norm %x, %w {head_dim = 16 : i64, eps = 0.0 : f64} : (tensor<1x4x96xf32>, tensor<16xf32>) -> tensor<1x4x96xf32>
// CHECK: 'tfm.head_norm' op eps must be positive

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x96xf32>
%w = axc.param <"m"::"w"> : tensor<16xf32>
%y = tfm.head_norm %x, %w {head_dim = 16 : i64, eps = 1.0e-06 : f64} : (tensor<1x4x96xf32>, tensor<16xf32>) -> tensor<1x4x64xf32>
// CHECK: 'tfm.head_norm' op result has shape 1x4x64, expected 1x4x96

// -----

%x = axc.param <"m"::"x"> : tensor<1x4x96xf32>
%w = axc.param <"m"::"w"> : tensor<16xf32>
%y = tfm.head_norm %x, %w {head_dim = 16 : i64} : (tensor<1x4x96xf32>, tensor<16xf32>) -> tensor<1x4x96xf32>
// CHECK: property 'eps' expected in operation 'tfm.head_norm'
