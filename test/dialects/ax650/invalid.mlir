// RUN: axc-opt %s --parsing-diagnostics --verify-diagnostics --split-input-file | FileCheck %s

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.fill c0.tpu out = ocm[0 : 64 : 4] : f32 {value = 0.0 : f64}
  }
}
// CHECK: unknown queue 'c0.tpu' (c<core>.dma<0-3>, c<core>.mx, c<core>.vx or c<core>.cv)

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.fill c0.vx out = dram[0 : 64 : 4] : f32 {value = 0.0 : f64}
  }
}
// CHECK: unknown memory space 'dram' (ocm, params, scratch, in<k>, out<k>)

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.matmul c0.dma0 lhs = ocm[0 : 1x64 : 256x4] : f32, rhs = ocm[256 : 64x64 : 256x4] : f32, out = ocm[16640 : 1x64 : 256x4] : f32
  }
}
// CHECK: 'ax650.matmul' op runs on the matrix engine, not queue 0

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.matmul c0.mx lhs = ocm[0 : 1x64 : 256x4] : f32, out = ocm[16640 : 1x64 : 256x4] : f32
  }
}
// CHECK: 'ax650.matmul' op lacks its rhs operand

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.add c0.vx lhs = ocm[0 : 64 : 4] : f32, rhs = in0[0 : 64 : 4] : f32, out = ocm[0 : 64 : 4] : f32
  }
}
// CHECK: 'ax650.add' op: rhs must be in OCM (the engines work on on-chip memory)

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.rms_norm c0.vx input = ocm[0 : 1x64 : 256x4] : f32, weight = ocm[256 : 64 : 4] : f32, out = ocm[512 : 1x64 : 256x4] : f32
  }
}
// CHECK: 'ax650.rms_norm' op needs eps

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.fill c0.vx wait [64] out = ocm[0 : 64 : 4] : f32 {value = 0.0 : f64}
  }
}
// CHECK: 'ax650.fill' op waits on a token outside 0..63

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.dma_load c0.dma0 src = in0[0 : 64 : 4] : f32, dst = ocm[0 : 32 : 4] : f32
  }
}
// CHECK: 'ax650.dma_load' op: moves 256 bytes into 128

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.dma_load c0.dma0 src = in0[0 : 64 : 4] : f32, dst = ocm[4194304 : 64 : 4] : f32
  }
}
// CHECK: 'ax650.model' op: group 0: instruction 0 (dma_load): dst reaches bytes [4194304, 4194560) of ocm (size 4194304): out-of-range address

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.loop l0 = 0 to 2 {
      ax650.dma_load c0.dma0 src = in0[0 + 256 * l0 : 64 : 4] : f32, dst = ocm[0 : 64 : 4] : f32
    }
  }
}
// CHECK: 'ax650.model' op: group 0: instruction 0 (dma_load): src reaches bytes [0, 512) of in (size 256): out-of-range address

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xbf16>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.dma_load c0.dma0 src = in0[0 : 32 : 4] : f32, dst = ocm[0 : 32 : 4] : f32
  }
}
// CHECK: 'ax650.model' op: group 0: instruction 0 (dma_load): src reads f32 from a bf16 tensor

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU2"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.fill c2.vx out = ocm[0 : 64 : 4] : f32 {value = 0.0 : f64}
  }
}
// CHECK: 'ax650.model' op: group 0: instruction 0 (fill): core 2 is not one of the 2 cores of NPU2

// -----

ax650.model @m {chip = "AX630C", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
  }
}
// CHECK: 'ax650.model' op is for the AX650 family, not chip AX630C (AX620E)

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU4"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
  }
}
// CHECK: 'ax650.model' op: AX650 has no npu_mode 'NPU4' (valid: NPU1, NPU2, NPU3); pass one of these

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.segment <"axc"::"a"> at 0 : tensor<64xf32>
  ax650.segment <"axc"::"b"> at 128 : tensor<64xf32>
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
  }
}
// CHECK: 'ax650.model' op: segment b at 128 overlaps the previous one or is not 64-byte aligned

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.segment <"axc"::"a"> at 0 : tensor<64xf32>
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.dma_load c0.dma0 src = params[128 : 64 : 4] : f32, dst = ocm[0 : 64 : 4] : f32
  }
}
// CHECK: 'ax650.model' op: group 0: instruction 0 (dma_load): src reaches bytes [128, 384) of params (size 256): out-of-range address

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.dma_store c0.dma3 src = ocm[0 : 64 : 4] : f32, dst = in0[0 : 64 : 4] : f32
  }
}
// CHECK: 'ax650.dma_store' op: dst writes the read-only in space

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.loop l0 = 0 to 2 {
      ax650.loop l1 = 0 to 2 {
        ax650.loop l2 = 0 to 2 {
          ax650.loop l3 = 0 to 2 {
            ax650.loop l4 = 0 to 2 {
            }
          }
        }
      }
    }
  }
}
// CHECK: 'ax650.loop' op nested deeper than 4 loops

// -----

// The convolution units take float (activation x activation) matmuls only.
ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.matmul c0.cv lhs = ocm[0 : 1x64 : 128x2] : bf16, rhs = ocm[256 : 64x64 : 64x1] : i8, scales = ocm[4352 : 64x1 : 2x2] : f16, out = ocm[4608 : 1x64 : 128x2] : bf16 {format = "s8", transpose_b}
  }
}
// CHECK: 'ax650.matmul' op: only float (activation x activation) matmuls run on the convolution units; s8 weights run on c0.mx

// -----

ax650.model @m {chip = "AX650", npu_mode = "NPU1"} {
  ax650.group "g" (x : tensor<64xf32>) -> (y : tensor<64xf32>) scratch 0 {
    ax650.fill c0.cv out = ocm[0 : 64 : 4] : f32 {value = 0.0 : f64}
  }
}
// CHECK: 'ax650.fill' op runs on the vector engine, not queue 6
