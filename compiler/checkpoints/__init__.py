"""Checkpoints as the parameter store reads them: `open_checkpoint` opens any model
directory or weights file (`axc.params.Checkpoint`), and a GPTQ model directory as the
dequantizing view of `axc.checkpoints.gptq`.

```python
checkpoint = open_checkpoint("Qwen2.5-0.5B-Instruct-GPTQ-Int4")
checkpoint.get("model.layers.0.mlp.up_proj.weight")   # fp32 [out, in], exact
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from axc.checkpoints.gptq import GptqCheckpoint, read_quant_config
from axc.jsonio import read_json
from axc.params import Checkpoint


def open_checkpoint(path: str | Path) -> Checkpoint:
    """`Checkpoint.open`, as a `GptqCheckpoint` when `path` is a GPTQ model directory (its
    `config.json` `quantization_config`, or `quantize_config.json`, says `gptq`)."""
    checkpoint = Checkpoint.open(path)
    directory = Path(path)
    if directory.is_dir() and any(key.endswith(".qweight") for key in checkpoint.keys()):
        config_path = directory / "config.json"
        raw: dict[str, Any] = read_json(config_path, "model config") if config_path.is_file() else {}
        quant = read_quant_config(raw, directory, config_path)
        if quant is not None and quant.method == "gptq":
            return GptqCheckpoint.wrap(checkpoint, quant)
    return checkpoint
