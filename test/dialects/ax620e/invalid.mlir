// RUN: axc-opt %s --parsing-diagnostics --verify-diagnostics --split-input-file | FileCheck %s

// The descriptor decides legality: AX620E stores no fp8 weights, has two cores, 1 MiB of
// OCM per core and no fourth core's queues; the same ops are legal in ax650.

ax620e.model @m {chip = "AX630C", npu_mode = "NPU1"} {
  ax620e.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax620e.matmul c0.mx lhs = ocm[0 : 1x64 : 128x2] : bf16, rhs = ocm[256 : 64x64 : 64x1] : f8E4M3FN, scales = ocm[4352 : 64x1 : 2x2] : bf16, out = ocm[4608 : 1x64 : 128x2] : bf16 {format = "fp8_e4m3", transpose_b}
  }
}
// CHECK: 'ax620e.matmul' op: AX620E cannot store fp8_e4m3 weights (supported: s8, s4, bf16, fp16); choose --weight-type s8 or --weight-type s4

// -----

ax620e.model @m {chip = "AX620E", npu_mode = "NPU2"} {
  ax620e.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax620e.fill c2.vx out = ocm[0 : 64 : 4] : f32 {value = 0.0 : f64}
  }
}
// CHECK: 'ax620e.fill' op: core 2 does not exist on AX620E (2 cores)

// -----

ax620e.model @m {chip = "AX620E", npu_mode = "NPU2"} {
  ax620e.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax620e.fill c1.vx out = ocm[2097152 : 64 : 4] : f32 {value = 0.0 : f64}
  }
}
// CHECK: 'ax620e.model' op: group 0: instruction 0 (fill): out reaches bytes [2097152, 2097408) of ocm (size 2097152): out-of-range address

// -----

ax620e.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax620e.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
  }
}
// CHECK: 'ax620e.model' op is for the AX620E family, not chip AX650 (AX650)

// -----

ax620e.model @m {chip = "AX620E", npu_mode = "NPU1"} {
  ax620e.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax620e.matmul c0.mx lhs = ocm[0 : 1x64 : 256x4] : f32, rhs = ocm[256 : 64x32 : 32x1] : ui8, out = ocm[4352 : 1x64 : 256x4] : f32 {format = "s4", transpose_b}
  }
}
// CHECK: 'ax620e.matmul' op: s4 weights need scales

// -----

// No convolution units take matmuls on AX620E (FLOAT_MATMUL_USE_CONV_EU is ignored there).
ax620e.model @m {chip = "AX630C", npu_mode = "NPU1"} {
  ax620e.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax620e.matmul c0.cv lhs = ocm[0 : 1x64 : 128x2] : bf16, rhs = ocm[256 : 16x64 : 128x2] : bf16, out = ocm[4352 : 1x16 : 32x2] : bf16 {transpose_b}
  }
}
// CHECK: 'ax620e.matmul' op: AX620E has no convolution units that take matmuls (c0.cv); run it on c0.mx
