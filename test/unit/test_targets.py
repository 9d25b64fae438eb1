from __future__ import annotations

import pytest

from axc.errors import AxcError
from axc.targets import (
    CHIPS,
    WEIGHT_DTYPES,
    check_activation_type,
    check_weight_type,
    describe,
    get_target,
    known_chips,
    npu_modes,
)

MODES = [("AX650", "NPU1"), ("AX650", "NPU2"), ("AX650", "NPU3"), ("AX620E", "NPU1"), ("AX620E", "NPU2")]


@pytest.mark.parametrize(("chip", "mode"), MODES)
def test_modes_scale_per_core_figures(chip: str, mode: str) -> None:
    target = get_target(chip, mode)
    cores = int(mode[3:])
    assert (target.family, target.npu_mode, target.cores) == (chip, mode, cores)
    assert target.ocm_bytes == target.ocm_bytes_per_core * cores
    assert target.dma_channels == target.dma_channels_per_core * cores
    assert target.tops("s8") == pytest.approx(target.matrix.peak_ops_per_s("s8") * cores / 1e12)
    # The chip's DDR is shared: its bandwidth does not grow with the cores one model uses.
    assert target.ddr_bytes_per_s == get_target(chip, "NPU1").ddr_bytes_per_s
    assert 0 < target.ddr_efficiency <= 1
    assert target.effective_ddr_bytes_per_s < target.ddr_bytes_per_s
    assert set(target.weight_dtypes) <= set(WEIGHT_DTYPES)
    assert target.matrix.macs_per_cycle("s8") * 2 == pytest.approx(target.matrix.ops_per_cycle("s8"))


@pytest.mark.parametrize(("chip", "int8", "int4"), [("AX650", 18.0, 72.0), ("AX620E", 3.2, 12.8)])
def test_all_cores_give_the_public_tops(chip: str, int8: float, int4: float) -> None:
    full = get_target(chip, f"NPU{CHIPS[chip].cores}")
    assert full.tops("s8") == pytest.approx(int8)
    assert full.tops("s4") == pytest.approx(int4)
    assert full.tops("bf16") < full.tops("s8")
    one = get_target(chip, "NPU1")
    assert one.tops("s8") * full.cores == pytest.approx(int8)


@pytest.mark.parametrize(
    ("alias", "family"),
    [("AX650N", "AX650"), ("AX650A", "AX650"), ("ax8850", "AX650"), ("AX630C", "AX620E"), ("AX620Q", "AX620E")],
)
def test_aliases(alias: str, family: str) -> None:
    target = get_target(alias, "npu2")
    assert (target.chip, target.family, target.npu_mode) == (alias.upper(), family, "NPU2")
    assert target.ocm_bytes_per_core == get_target(family).ocm_bytes_per_core


def test_chips_differ_where_public_or_stated() -> None:
    ax650, ax620e = get_target("AX650"), get_target("AX620E")
    assert ax620e.ocm_bytes_per_core < ax650.ocm_bytes_per_core
    assert ax620e.ddr_bytes_per_s < ax650.ddr_bytes_per_s
    assert npu_modes("AX650") == ("NPU1", "NPU2", "NPU3")
    assert npu_modes("AX630C") == ("NPU1", "NPU2")


def test_unknown_chip_and_mode() -> None:
    with pytest.raises(AxcError, match=r"^unknown chip 'AX999' \(valid: AX650, AX650N, .*AX620Q\)"):
        get_target("AX999")
    with pytest.raises(AxcError, match=r"^AX620E has no npu_mode 'NPU3' \(valid: NPU1, NPU2\)"):
        get_target("AX620E", "NPU3")
    with pytest.raises(AxcError, match="no npu_mode 'NPU0'"):
        get_target("AX650", "NPU0")
    assert "AX8850" in known_chips()


def test_weight_type_checks() -> None:
    ax620e = get_target("AX620E")
    with pytest.raises(AxcError) as error:
        check_weight_type(ax620e, "fp8_e4m3")
    assert str(error.value) == (
        "AX620E cannot store fp8_e4m3 weights (supported: s8, s4, bf16, fp16); choose -w s8 or -w s4"
    )
    with pytest.raises(AxcError, match=r"^AX630C cannot store fp8_e5m2 lm_head weights"):
        check_weight_type(get_target("AX630C"), "fp8_e5m2", "lm_head weights")
    with pytest.raises(AxcError, match=r"choose -w s8, -w s4, -w bf16 or -w fp16$"):
        check_weight_type(ax620e, "fp32")
    with pytest.raises(AxcError, match=r"^unknown weight type 'int7'"):
        check_weight_type(ax620e, "int7")
    for dtype in ("s8", "s4", "bf16", "fp16"):
        check_weight_type(ax620e, dtype)
    for dtype in ("s8", "s4", "fp8_e4m3", "fp8_e5m2", "bf16", "fp16"):
        check_weight_type(get_target("AX650", "NPU3"), dtype)


def test_activation_type_checks() -> None:
    for chip in CHIPS:
        for dtype in ("bf16", "fp16", "fp32"):
            check_activation_type(get_target(chip), dtype)
    with pytest.raises(AxcError, match=r"^unknown activation type 's8' .*--hidden_state_type bf16"):
        check_activation_type(get_target("AX650"), "s8")


def test_every_assumption_has_a_reason_and_describe_marks_it() -> None:
    for chip in CHIPS:
        target = get_target(chip)
        assert target.assumptions, chip
        assert all(why and "\n" not in why for _, why in target.assumptions)
        assert target.assumption("ocm_bytes_per_core") is not None
        assert target.assumption("cores") is None
        text = describe(target, reasons=True)
        assert f"{chip} ({chip} family), NPU1: 1 of" in text
        assert "* ocm_bytes_per_core: not public" in text
    assert get_target("AX650").assumption("int8_tops") is None
    assert get_target("AX650").assumption("int4_tops") is None
    assert get_target("AX620E").assumption("int4_tops") is not None
    assert "KiB/core" in describe(get_target("AX650", "NPU3"))


def test_descriptor_is_hashable_and_cached() -> None:
    assert get_target("AX650", "NPU2") is get_target("AX650", "NPU2")
    assert hash(get_target("AX650")) == hash(get_target("AX650"))
    with pytest.raises(AxcError, match="no s8 rate"):
        get_target("AX650").vector.peak_ops_per_s("s8")
