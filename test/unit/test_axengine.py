"""The drop-in `axengine` module: pyaxengine's API and strictness over the simulator, the
runtime's names in every shape group, results equal to `AxModelSession`'s."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import axengine
from axc.runtime_contract import LAYER_INPUTS, LAYER_OUTPUTS
from axc.sim.session import AxModelSession
from axengine import InferenceSession, NodeArg, SessionOptions

BF16 = np.dtype(ml_dtypes.bfloat16)
LAYER = "qwen2_p128_l0_together.axmodel"


def feed(session: InferenceSession, group: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = {}
    for arg in session.get_inputs(group):
        if arg.name == "indices":
            inputs[arg.name] = np.arange(arg.shape[-1], dtype=np.uint32).reshape(arg.shape)
        elif arg.name == "mask":
            tokens, total = arg.shape[1], arg.shape[2]
            mask = np.full(arg.shape, -65536.0, np.float32)
            mask[0][np.tril(np.ones((tokens, total), bool), total - tokens)] = 0
            inputs[arg.name] = mask.astype(ml_dtypes.bfloat16)
        else:
            inputs[arg.name] = rng.standard_normal(arg.shape).astype(ml_dtypes.bfloat16)
    return inputs


def test_module_api() -> None:
    assert axengine.get_all_providers() == ["AxEngineExecutionProvider", "AXCLRTExecutionProvider"]
    assert axengine.get_available_providers()
    assert SessionOptions() is not None


def test_every_group_has_the_runtime_names(runner_build) -> None:
    session = InferenceSession(str(runner_build / LAYER), SessionOptions(), providers=["AxEngineExecutionProvider"])
    assert session.get_providers() == "AxEngineExecutionProvider"
    simulator = AxModelSession(runner_build / LAYER)
    for group in range(2):
        inputs, outputs = session.get_inputs(shape_group=group), session.get_outputs(shape_group=group)
        assert all(isinstance(a, NodeArg) for a in (*inputs, *outputs))
        assert [a.name for a in inputs] == list(LAYER_INPUTS) == simulator.input_names(group)
        assert [a.name for a in outputs] == list(LAYER_OUTPUTS) == simulator.output_names(group)
        assert [a.dtype for a in inputs] == [BF16, BF16, np.dtype(np.uint32), BF16, BF16]
        assert all(isinstance(a.shape, list) for a in inputs)
    assert session.get_inputs(1)[0].shape == [1, 1, 128]  # the history-0 dummy
    assert session.get_inputs(1)[4].shape == [1, 128, 128]
    assert session.get_inputs(0)[4].shape == [1, 1, 2048]
    with pytest.raises(ValueError, match="out of range"):
        session.get_inputs(shape_group=2)
    with pytest.raises(IndexError):  # clients probe the group count with either
        session.get_outputs(shape_group=5)


@pytest.mark.parametrize("group", [0, 1])
def test_results_equal_the_simulator_in_model_order(runner_build, group: int) -> None:
    with InferenceSession(str(runner_build / LAYER)) as session:
        inputs = feed(session, group)
        results = session.run(None, inputs, shape_group=group)
        assert [r.dtype for r in results] == [BF16] * 3
        assert [list(r.shape) for r in results] == [o.shape for o in session.get_outputs(group)]
        expected = AxModelSession(runner_build / LAYER).run(group, inputs)
        for name, got in zip(LAYER_OUTPUTS, results, strict=True):
            np.testing.assert_array_equal(got.astype(np.float32), expected[name])
        reordered = session.run(["output", "K_cache_out", "V_cache_out"], inputs, shape_group=group)
        np.testing.assert_array_equal(reordered[0].astype(np.float32), results[2].astype(np.float32))
        results[0][...] = 0  # fresh copies: the next call is unaffected
        again = session.run(None, inputs, shape_group=group)
        np.testing.assert_array_equal(again[0].astype(np.float32), expected["K_cache_out"])


def test_bytes_and_the_post_model(runner_build) -> None:
    session = InferenceSession((runner_build / "qwen2_post.axmodel").read_bytes())
    [arg] = session.get_inputs()
    assert (arg.name, arg.dtype, arg.shape) == ("input", BF16, [1, 1, 128])
    [logits] = session.run(None, {"input": np.ones((1, 1, 128), ml_dtypes.bfloat16)})
    assert logits.dtype == np.float32 and logits.shape == (1, 1, 16)


def test_strictness(runner_build) -> None:
    session = InferenceSession(str(runner_build / LAYER))
    inputs = feed(session, 1)
    with pytest.raises(AssertionError, match=r"mask\) of shape group 1 expect shape \[1, 128, 128\] and dtype bfloat16, however gets input with shape \[1, 128, 129\]"):
        session.run(None, {**inputs, "mask": np.zeros((1, 128, 129), ml_dtypes.bfloat16)}, shape_group=1)
    with pytest.raises(AssertionError, match=r"input\) of shape group 1 .* dtype float32"):
        session.run(None, {**inputs, "input": inputs["input"].astype(np.float32)}, shape_group=1)
    with pytest.raises(AssertionError, match=r"K_cache\) of shape group 1 expect shape \[1, 1, 128\]"):
        session.run(None, {**inputs, "K_cache": np.zeros((1, 1, 64), ml_dtypes.bfloat16)}, shape_group=1)
    with pytest.raises(ValueError, match=r"Required inputs \(\['mask'\]\) are missing"):
        session.run(None, {k: v for k, v in inputs.items() if k != "mask"}, shape_group=1)
    with pytest.raises(ValueError, match="Output name 'logits' is not in model outputs name list"):
        session.run(["logits"], inputs, shape_group=1)
    with pytest.raises(ValueError, match="Invalid shape group: 2"):
        session.run(None, inputs, shape_group=2)
    assert len(session.run(None, {**inputs, "unused": np.zeros(1)}, shape_group=1)) == 3  # extra keys are ignored


def test_bad_files_raise_runtime_error(tmp_path) -> None:
    (tmp_path / "broken.axmodel").write_bytes(b"\x00not an onnx file")
    with pytest.raises(RuntimeError, match="Failed to load model: .*broken.axmodel"):
        InferenceSession(str(tmp_path / "broken.axmodel"))
    with pytest.raises(ValueError, match="none of the providers"):
        InferenceSession(str(tmp_path / "broken.axmodel"), providers=["CUDAExecutionProvider"])
