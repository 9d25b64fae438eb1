"""Target code generation: lowering npu IR to the instruction set (`axc.isa`), and the .axmodel payload."""
