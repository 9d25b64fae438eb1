"""Target code generation: the instruction set, lowering to it, and the .axmodel payload."""
