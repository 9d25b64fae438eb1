"""The `llm_build` job: the runtime's output directory and the build driver."""
