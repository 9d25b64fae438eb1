// RUN: axc-opt %s --parsing-diagnostics --verify-diagnostics --split-input-file | FileCheck %s

%w = axc.param <"model"> : tensor<4xf32>
// CHECK: Expected ':'

// -----

%w = axc.param <"model"::"w"> : i32
// CHECK: i32 should be of base attribute tensor

// -----

%w = axc.param <model::"w"> : tensor<4xf32>
// CHECK: string literal expected{{.*}}parameter scope
