// RUN: axc-opt %s | axc-opt | FileCheck %s
// RUN: axc-opt %s --print-op-generic | axc-opt | FileCheck %s

builtin.module attributes {axc.scopes = {model = "/models/qwen", axc = "/tmp/q.safetensors"}} {
  %w = axc.param <"model"::"model.layers.0.mlp.up_proj.weight"> : tensor<4864x896xbf16>
  %s = axc.param <"axc"::"layers.0.up.scales"> : tensor<4864xf32>
}

// CHECK: builtin.module attributes {axc.scopes = {model = "/models/qwen", axc = "/tmp/q.safetensors"}}
// CHECK: %w = axc.param <"model"::"model.layers.0.mlp.up_proj.weight"> : tensor<4864x896xbf16>
// CHECK: %s = axc.param <"axc"::"layers.0.up.scales"> : tensor<4864xf32>
