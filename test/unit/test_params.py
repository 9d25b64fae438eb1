"""Tests for axc.params (Checkpoint, ParamStore) and axc.frontend.checkpoint_check."""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file

from axc.errors import AxcError
from axc.frontend.checkpoint_check import check_checkpoint, expected_tensors
from axc.frontend.config import ModelConfig, load_config
from axc.params import SCOPE_METADATA_KEY, Checkpoint, ParamStore

FIXTURES = Path(__file__).parents[1] / "fixtures" / "gptq"
GPTQ_FIXTURES = sorted(path.name for path in FIXTURES.iterdir() if (path / "config.json").is_file())

TINY = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)


@dataclasses.dataclass(frozen=True)
class Tiny:
    """Tiny checkpoints of one random model, saved in every supported layout."""

    root: Path
    state: dict[str, np.ndarray]
    bf16: dict[str, np.ndarray]

    def dir(self, layout: str) -> Path:
        return self.root / layout


def save_bin_shards(state: dict[str, torch.Tensor], directory: Path) -> None:
    keys = list(state)
    shards = {"pytorch_model-00001-of-00002.bin": keys[::2], "pytorch_model-00002-of-00002.bin": keys[1::2]}
    for name, names in shards.items():
        torch.save({key: state[key].clone() for key in names}, directory / name)
    weight_map = {key: name for name, names in shards.items() for key in names}
    (directory / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tiny]:
    """A llama (attention and MLP biases) and a tied qwen2, each as safetensors/sharded/bin/bin-sharded/bf16."""
    torch.manual_seed(0)
    configs = {
        "llama": transformers.LlamaConfig(**TINY, attention_bias=True, mlp_bias=True),
        "qwen2": transformers.Qwen2Config(**TINY, tie_word_embeddings=True),
    }
    models: dict[str, Tiny] = {}
    for name, hf_config in configs.items():
        root = tmp_path_factory.mktemp(name)
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
        model.save_pretrained(root / "single")
        model.save_pretrained(root / "sharded", max_shard_size="20KB")
        with Checkpoint.open(root / "single") as saved:
            state = {key: value for key, value in model.state_dict().items() if key in saved}
        for layout in ("bin", "bin-sharded"):
            (root / layout).mkdir()
            shutil.copy(root / "single" / "config.json", root / layout)
        torch.save(state, root / "bin" / "pytorch_model.bin")
        save_bin_shards(state, root / "bin-sharded")
        model.to(torch.bfloat16).save_pretrained(root / "bf16")
        models[name] = Tiny(
            root,
            {key: value.numpy().copy() for key, value in state.items()},
            {key: value.float().numpy().astype(ml_dtypes.bfloat16) for key, value in model.state_dict().items()},
        )
    return models


def one_line_error(call: Any, *fragments: str) -> str:
    with pytest.raises(AxcError) as info:
        call()
    message = str(info.value)
    assert len(message.splitlines()) == 1, message  # also no \r, \v, \x1c, \u2028...
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- Checkpoint -------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["single", "sharded", "bin", "bin-sharded"])
@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_checkpoint_layouts_read_the_original(tiny: dict[str, Tiny], name: str, layout: str) -> None:
    model = tiny[name]
    with Checkpoint.open(model.dir(layout)) as checkpoint:
        assert sorted(checkpoint.keys()) == sorted(model.state)
        if layout.endswith("sharded"):
            assert len(checkpoint.files) > 1
        for key, expected in model.state.items():
            assert key in checkpoint
            assert checkpoint.shape(key) == expected.shape
            assert checkpoint.dtype(key) == np.float32
            array = checkpoint.get(key)
            assert array.dtype == np.float32 and not array.flags.writeable
            np.testing.assert_array_equal(array, expected)


def test_checkpoint_bf16(tiny: dict[str, Tiny]) -> None:
    model = tiny["llama"]
    checkpoint = Checkpoint.open(model.dir("bf16"))
    key = "model.layers.0.self_attn.q_proj.weight"
    assert checkpoint.dtype(key) == ml_dtypes.bfloat16
    array = checkpoint.get(key)
    assert array.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(array.view(np.uint16), model.bf16[key].view(np.uint16))


def test_checkpoint_open_file_and_find_key(tiny: dict[str, Tiny]) -> None:
    path = tiny["qwen2"].dir("single") / "model.safetensors"
    checkpoint = Checkpoint.open(path)
    assert checkpoint.files == [path]
    assert checkpoint.find_key("lm_head.weight", "model.embed_tokens.weight") == "model.embed_tokens.weight"
    assert checkpoint.find_key("lm_head.weight") is None
    assert checkpoint.file("model.norm.weight") == path


def test_error_no_weights_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    one_line_error(lambda: Checkpoint.open(tmp_path), "no weights file in", str(tmp_path),
                   "model.safetensors", "pytorch_model.bin.index.json")


def test_error_missing_path(tmp_path: Path) -> None:
    one_line_error(lambda: Checkpoint.open(tmp_path / "nope"), "does not exist", str(tmp_path / "nope"))


def test_error_truncated_safetensors_header(tiny: dict[str, Tiny], tmp_path: Path) -> None:
    data = (tiny["llama"].dir("single") / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[:20])
    one_line_error(lambda: Checkpoint.open(tmp_path), "corrupt or truncated safetensors file:",
                   str(tmp_path / "model.safetensors"), "re-download or re-export it")


def test_error_corrupt_safetensors_header(tiny: dict[str, Tiny], tmp_path: Path) -> None:
    data = bytearray((tiny["llama"].dir("single") / "model.safetensors").read_bytes())
    data[8:40] = b"#" * 32
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    one_line_error(lambda: Checkpoint.open(tmp_path), "corrupt or truncated safetensors file:", "JSON")


def test_error_index_names_missing_shard(tiny: dict[str, Tiny], tmp_path: Path) -> None:
    directory = shutil.copytree(tiny["llama"].dir("sharded"), tmp_path / "m")
    shard = sorted(directory.glob("model-*.safetensors"))[-1]
    shard.unlink()
    one_line_error(lambda: Checkpoint.open(directory), "model.safetensors.index.json", f"names shard {shard.name}",
                   "missing from")


def test_error_bin_with_python_object(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(2), "note": {"a": object()}}, tmp_path / "pytorch_model.bin")
    one_line_error(lambda: Checkpoint.open(tmp_path), "non-tensor Python objects", str(tmp_path / "pytorch_model.bin"))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("name", ["_rebuild\rx", "_rebuild\x0bx", "_rebuild\u2028x"])
def test_error_bin_global_with_line_break_is_one_line(tmp_path: Path, legacy: bool, name: str) -> None:
    """A fuzz finding: a pickled global named with a line break made the refusal two lines."""
    pickled = b"\x80\x02ctorch._utils\n" + name.encode() + b"\n."
    path = tmp_path / "pytorch_model.bin"
    if legacy:
        path.write_bytes(pickled)
    else:
        torch.save({"w": torch.zeros(2)}, path)
        with zipfile.ZipFile(path) as source:
            members = [(info, source.read(info)) for info in source.infolist()]
        with zipfile.ZipFile(path, "w") as target:
            for info, raw in members:
                target.writestr(info, pickled if info.filename.endswith("data.pkl") else raw)
    one_line_error(lambda: Checkpoint.open(tmp_path), f"unsupported global {'torch._utils.' + name!r}", "safetensors")


def test_error_bin_with_non_tensor_value(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(2), "step": 3}, tmp_path / "pytorch_model.bin")
    one_line_error(lambda: Checkpoint.open(tmp_path), "non-tensor value under key 'step'", "(int)")


def test_error_bin_garbage_and_legacy_format(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a checkpoint at all")
    one_line_error(lambda: Checkpoint.open(tmp_path), "corrupt or unreadable PyTorch checkpoint")
    legacy = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    torch.save({"w": legacy}, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    np.testing.assert_array_equal(Checkpoint.open(tmp_path).get("w"), np.arange(6).reshape(2, 3))


def test_error_missing_tensor_key(tiny: dict[str, Tiny]) -> None:
    directory = tiny["llama"].dir("single")
    checkpoint = Checkpoint.open(directory)
    one_line_error(lambda: checkpoint.get("nope"), f"tensor nope not found in {directory}")
    one_line_error(lambda: checkpoint.shape("nope"), f"tensor nope not found in {directory}")


# --- ParamStore -------------------------------------------------------------------------------


def test_param_store_bind_add_get(tiny: dict[str, Tiny]) -> None:
    model = tiny["llama"]
    store = ParamStore()
    store.bind("model", Checkpoint.open(model.dir("single")))
    key = "model.norm.weight"
    np.testing.assert_array_equal(store.get("model", key), model.state[key])
    assert store.shape("model", key) == (32,) and store.dtype("model", key) == np.float32
    store.add("model", key, np.full(32, 2.0, np.float32))
    assert store.get("model", key)[0] == 2.0 and store.has("model", key)
    assert list(store.created()) == ["model"] and store.created()["model"][key].shape == (32,)
    assert not store.has("model", "nope") and not store.has("other", key)
    one_line_error(lambda: store.get("model", "nope"), "tensor nope not found")
    one_line_error(lambda: store.get("other", key), "scope 'other' is not bound")
    store.close()


def test_param_store_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "w.bf16": rng.standard_normal((3, 5)).astype(ml_dtypes.bfloat16),
        "w.fp8": rng.standard_normal(8).astype(ml_dtypes.float8_e4m3fn),
        "w.s8": rng.integers(-128, 128, (4, 4), dtype=np.int8),
        "w.i32": rng.integers(0, 1 << 30, 7, dtype=np.int32),
        "w.f16": rng.standard_normal((2, 2)).astype(np.float16)[:, ::-1],
        "w.scalar": np.float32(1.5),
    }
    store = ParamStore()
    for key, array in arrays.items():
        store.add("packed", key, array)
    path = store.save(tmp_path / "params.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.safetensors"]
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata()[SCOPE_METADATA_KEY] == "packed"
        assert sorted(handle.keys()) == sorted(arrays)
    loaded = ParamStore()
    loaded.load_created(path, "packed")
    for key, array in arrays.items():
        got = loaded.get("packed", key)
        assert got.dtype == array.dtype and got.shape == np.shape(array)
        assert got.tobytes() == np.asarray(array).tobytes()


def test_param_store_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ParamStore()
    store.add("a", "x", np.zeros(3, np.float32))
    path = store.save(tmp_path / "p.safetensors")
    before = path.read_bytes()

    def fail(*args: object, **kwargs: object) -> None:
        Path(args[1]).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", fail)
    store.add("a", "x", np.ones(3, np.float32))
    with pytest.raises(OSError):
        store.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.safetensors"]


def test_param_store_save_needs_a_scope_when_several(tmp_path: Path) -> None:
    store = ParamStore()
    store.add("a", "x", np.zeros(1, np.float32))
    store.add("b", "x", np.zeros(1, np.float32))
    with pytest.raises(ValueError, match="name one"):
        store.save(tmp_path / "p.safetensors")
    store.save(tmp_path / "p.safetensors", scope="b")
    assert Checkpoint.open(tmp_path / "p.safetensors").keys() == ["x"]
    with pytest.raises(ValueError, match="unsupported dtype"):
        store.add("a", "o", np.array([object()]))


# --- checkpoint_check -------------------------------------------------------------------------


def test_expected_tensors_biases_and_tying(tiny: dict[str, Tiny]) -> None:
    llama = expected_tensors(load_config(tiny["llama"].dir("single")))
    qwen2 = expected_tensors(load_config(tiny["qwen2"].dir("single")))
    assert llama["model.layers.1.self_attn.o_proj.bias"] == (32,) and llama["model.layers.0.mlp.down_proj.bias"] == (32,)
    assert llama["lm_head.weight"] == (64, 32) and llama["model.layers.0.self_attn.k_proj.weight"] == (16, 32)
    assert qwen2["model.layers.0.self_attn.v_proj.bias"] == (16,)
    assert "model.layers.0.self_attn.o_proj.bias" not in qwen2 and "lm_head.weight" not in qwen2
    assert set(llama) == set(tiny["llama"].state) and set(qwen2) == set(tiny["qwen2"].state)


@pytest.mark.parametrize("layout", ["single", "sharded", "bin", "bin-sharded", "bf16"])
@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_check_checkpoint_accepts_tiny(tiny: dict[str, Tiny], name: str, layout: str) -> None:
    check_checkpoint(load_config(tiny[name].dir(layout)), Checkpoint.open(tiny[name].dir(layout)))


@pytest.mark.parametrize("name", GPTQ_FIXTURES)
def test_check_checkpoint_accepts_gptq_fixtures(name: str) -> None:
    config = load_config(FIXTURES / name)
    checkpoint = Checkpoint.open(FIXTURES / name)
    check_checkpoint(config, checkpoint)
    assert set(expected_tensors(config)) == set(checkpoint.keys())


def test_gptq_fixture_names_are_all_present() -> None:
    assert GPTQ_FIXTURES == sorted([
        "llama-tiny-fp", "llama-tiny-gptq-int4", "qwen2-tiny-fp", "qwen2-tiny-gptq-int4",
        "qwen2-tiny-gptq-int4-actorder", "qwen2-tiny-gptq-int8",
        "qwen3-tiny-fp", "qwen3-tiny-gptq-int8", "hunyuan-tiny-fp", "hunyuan-tiny-gptq-int4",
    ])


def test_expected_gptq_shapes() -> None:
    config = load_config(FIXTURES / "qwen2-tiny-gptq-int4")
    assert config.quant is not None
    prefix = "model.layers.0.self_attn.q_proj"
    shapes = expected_tensors(config)
    assert [shapes[f"{prefix}.{t}"] for t in ("qweight", "qzeros", "scales", "g_idx", "bias")] == [
        (32, 256), (2, 32), (2, 256), (256,), (256,)
    ]
    assert expected_tensors(config)["model.layers.0.mlp.down_proj.qweight"] == (64, 256)
    whole = dataclasses.replace(config, quant=dataclasses.replace(config.quant, group_size=-1, bits=8))
    down = "model.layers.1.mlp.down_proj"
    assert [expected_tensors(whole)[f"{down}.{t}"] for t in ("qweight", "qzeros", "scales", "g_idx")] == [
        (128, 256), (1, 64), (1, 256), (512,)
    ]


def test_check_checkpoint_missing_tensor(tiny: dict[str, Tiny], tmp_path: Path) -> None:
    model = tiny["llama"]
    config = load_config(model.dir("single"))
    deeper = dataclasses.replace(config, num_hidden_layers=3)
    one_line_error(lambda: check_checkpoint(deeper, Checkpoint.open(model.dir("single"))),
                   "tensor model.layers.2.input_layernorm.weight missing from", "num_hidden_layers=3")
    state = {k: torch.from_numpy(v) for k, v in model.state.items() if k != "model.layers.1.mlp.up_proj.weight"}
    save_file(state, tmp_path / "model.safetensors")
    one_line_error(lambda: check_checkpoint(config, Checkpoint.open(tmp_path)),
                   f"tensor model.layers.1.mlp.up_proj.weight missing from {tmp_path}; "
                   "the checkpoint does not match config.json (num_hidden_layers=2)")


def test_check_checkpoint_shape_mismatch(tiny: dict[str, Tiny]) -> None:
    directory = tiny["qwen2"].dir("sharded")
    checkpoint = Checkpoint.open(directory)
    config: ModelConfig = dataclasses.replace(load_config(directory), intermediate_size=40)
    key = "model.layers.0.mlp.gate_proj.weight"
    one_line_error(lambda: check_checkpoint(config, checkpoint),
                   f"tensor {key} has shape [48, 32] in {checkpoint.file(key)} but config.json implies [40, 32] "
                   "(intermediate_size=40, hidden_size=32)")


def test_check_checkpoint_gptq_without_quant_config() -> None:
    config = dataclasses.replace(load_config(FIXTURES / "qwen2-tiny-gptq-int4"), quant=None)
    one_line_error(lambda: check_checkpoint(config, Checkpoint.open(FIXTURES / "qwen2-tiny-gptq-int4")),
                   "tensor model.layers.0.self_attn.q_proj.weight missing", "GPTQ-quantized")


def test_check_checkpoint_gptq_bits_mismatch() -> None:
    config = load_config(FIXTURES / "llama-tiny-gptq-int4")
    assert config.quant is not None
    wrong = dataclasses.replace(config, quant=dataclasses.replace(config.quant, bits=8))
    one_line_error(lambda: check_checkpoint(wrong, Checkpoint.open(FIXTURES / "llama-tiny-gptq-int4")),
                   "tensor model.layers.0.self_attn.q_proj.qweight has shape [32, 256]", "implies [64, 256]",
                   "quant_bits=8, quant_group_size=128")


@pytest.mark.parametrize("layout", ["single", "sharded", "bin", "bf16"])
def test_checkpoint_rows_are_those_rows_of_the_tensor(tiny: dict[str, Tiny], layout: str) -> None:
    with Checkpoint.open(tiny["llama"].dir(layout)) as checkpoint:
        for key in ("model.layers.0.mlp.up_proj.weight", "model.norm.weight"):
            whole = checkpoint.get(key)
            for start, stop in ((0, 1), (1, 3), (2, 1000), (5, 5)):
                rows = checkpoint.rows(key, start, stop)
                assert rows.dtype == whole.dtype and not rows.flags.writeable
                np.testing.assert_array_equal(rows.view(np.uint8), whole[start:stop].view(np.uint8))


def test_store_rows_and_lazy_parameters() -> None:
    calls: list[tuple[int, int]] = []

    class Counting:
        shape, dtype = (6, 2), np.dtype(np.float32)

        def rows(self, start: int, stop: int) -> np.ndarray:
            calls.append((start, stop))
            return np.arange(12, dtype=np.float32).reshape(6, 2)[start:stop]

        def materialize(self) -> np.ndarray:
            return self.rows(0, 6)

    store = ParamStore()
    store.add_lazy("axc", "w", Counting())
    assert store.shape("axc", "w") == (6, 2) and store.dtype("axc", "w") == np.float32 and not calls
    np.testing.assert_array_equal(store.rows("axc", "w", 2, 4), [[4, 5], [6, 7]])
    assert calls == [(2, 4)]  # streamed rows are not kept
    np.testing.assert_array_equal(store.get("axc", "w")[5], [10, 11])
    store.get("axc", "w")
    assert calls == [(2, 4), (0, 6)]  # `get` computes once and keeps it
    assert set(store.created()["axc"]) == {"w"}
