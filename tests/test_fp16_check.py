"""``export.fp16_check``: the FP16 graph really computed in FP16 on a CPU, and a planted overflow failing the build."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from common.metrics import PSNR_CAP
from export import build, fp16_check, validate
from export.fp16 import convert_fp16
from export.onnx_export import export_onnx
from export.validate import ValidationError
from models import GeneratorConfig, WCDGANGenerator, save_generator
from runtime.spec import ModelSpec

pytestmark = pytest.mark.slow  # exports, trains, builds or runs commands: not in the inner loop

TINY = {"features": 16, "num_blocks": 1, "branch_channels": 8}


def _conv_graph(dilation: int, weight: np.ndarray) -> onnx.ModelProto:
    """x (1×2×H×W float16) → 3×3 Conv at ``dilation`` (padding keeps the size) → y, all FP16."""
    w = onnx.numpy_helper.from_array(weight.astype(np.float16), "w")
    b = onnx.numpy_helper.from_array(np.linspace(-1, 1, weight.shape[0]).astype(np.float16), "b")
    conv = onnx.helper.make_node("Conv", ["x", "w", "b"], ["y"], dilations=[dilation] * 2, pads=[dilation] * 4)
    f16 = onnx.TensorProto.FLOAT16
    graph = onnx.helper.make_graph(
        [conv],
        "g",
        [onnx.helper.make_tensor_value_info("x", f16, None)],
        [onnx.helper.make_tensor_value_info("y", f16, None)],
        [w, b],
    )
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


@pytest.mark.parametrize("dilation", [1, 4])
def test_conv_computes_in_fp16_like_the_reference(tmp_path: Path, dilation: int) -> None:
    rng = np.random.default_rng(0)
    model = _conv_graph(dilation, rng.normal(0, 0.3, (3, 2, 3, 3)))
    onnx.save(model, str(tmp_path / "c.onnx"))
    x = rng.random((1, 2, 21, 17), dtype=np.float32)
    ours = fp16_check.fp16_tensors(tmp_path / "c.onnx", x)["y"]
    reference = ReferenceEvaluator(model).run(None, {"x": x.astype(np.float16)})[0]
    assert ours.dtype == reference.dtype == np.float16 and ours.shape == reference.shape == (1, 3, 21, 17)
    ulp = np.spacing(np.abs(reference).astype(np.float16)).astype(np.float32)
    assert (np.abs(ours.astype(np.float32) - reference.astype(np.float32)) <= ulp).all()  # summation order only
    # FP16 storage: a sum beyond 65504 is +inf, where FP32 arithmetic would hold it
    big = fp16_check.fp16_tensors(tmp_path / "c.onnx", np.full((1, 2, 21, 17), 60000, np.float32))["y"]
    assert np.isinf(big).any()


def _planted(tmp_path: Path, k: int) -> tuple[WCDGANGenerator, WCDGANGenerator]:
    """A tiny generator and its copy with reconstruct[0] scaled up by 2^k and reconstruct[2] down by 2^k (LeakyReLU
    between them is positively homogeneous, powers of two are exact: the FP32 function is unchanged)."""
    torch.manual_seed(0)
    plain = WCDGANGenerator(GeneratorConfig(**TINY)).eval()
    planted = WCDGANGenerator(GeneratorConfig(**TINY)).eval()
    planted.load_state_dict(plain.state_dict())
    with torch.no_grad():
        planted.reconstruct[0].weight *= 2.0**k
        planted.reconstruct[0].bias *= 2.0**k
        planted.reconstruct[2].weight /= 2.0**k
    return plain, planted


def test_planted_overflow_fails_the_fp16_build_while_fp32_is_unchanged(tmp_path: Path, capsys) -> None:
    plain, planted = _planted(tmp_path, 18)
    images = validate.validation_images(3)
    for a, b in zip(validate.torch_outputs(plain, images), validate.torch_outputs(planted, images), strict=True):
        np.testing.assert_array_equal(a, b)
    # ONNX Runtime's CPU provider computes the FP16 graph in FP32: its comparison does not see the overflow
    proto = export_onnx(planted, tmp_path / "p.onnx", 3, 17)
    convert_fp16(proto, tmp_path / "p_fp16.onnx")
    fp32, fp16 = validate.run_onnx([tmp_path / "p.onnx", tmp_path / "p_fp16.onnx"], images)
    validate.check("p_fp16.onnx", validate.compare_fp16(fp32, fp16), validate.Thresholds())
    numbers = fp16_check.check_numbers(tmp_path / "p.onnx", tmp_path / "p_fp16.onnx", images)
    assert numbers.overflow_tensors == ["/reconstruct/reconstruct.0/Conv_output_0"]
    assert numbers.fp32_max_abs > fp16_check.FP16_MAX and "output" in numbers.nonfinite_tensors

    save_generator(tmp_path / "planted.pt", planted, {"qualities": [10]})
    out = tmp_path / "out"
    assert build.main(["--ckpt", str(tmp_path / "planted.pt"), "--fp16", "-o", str(out), "--engine", "skip"]) == 1
    err = capsys.readouterr().err
    assert "planted_fp16.onnx failed the FP16 arithmetic check" in err and "overflow" in err and "NaN/Inf" in err
    assert not any(out.glob("*.onnx"))


def test_headroom_below_the_limit_passes_and_is_recorded(tmp_path: Path) -> None:
    """2^16 raises the largest activation ×65536 but stays below 65504 for this model: recorded, not failed."""
    _, planted = _planted(tmp_path, 16)
    proto = export_onnx(planted, tmp_path / "p.onnx", 3, 17)
    convert_fp16(proto, tmp_path / "p_fp16.onnx")
    numbers = fp16_check.check_numbers(tmp_path / "p.onnx", tmp_path / "p_fp16.onnx", validate.validation_images(3))
    fp16_check.check("p_fp16.onnx", numbers, 40.0)
    assert 1 < numbers.fp16_headroom < 16 and numbers.fp32_max_abs_tensor.startswith("/reconstruct/")
    top, low = numbers.fp32_ranges["/reconstruct/reconstruct.0/Conv_output_0"]
    assert top == pytest.approx(fp16_check.FP16_MAX / numbers.fp16_headroom, rel=1e-3) and 0 < low < top


def test_an_overflow_hidden_by_a_sigmoid_is_still_found(tmp_path: Path) -> None:
    """x·2¹⁵·4 overflows FP16 to inf, the Sigmoid after it turns inf into a finite 1: every tensor is checked."""
    nodes = [
        onnx.helper.make_node("Mul", ["input", "big"], ["scaled"]),
        onnx.helper.make_node("Mul", ["scaled", "four"], ["huge"]),
        onnx.helper.make_node("Sigmoid", ["huge"], ["output"]),
    ]
    constants = [onnx.numpy_helper.from_array(np.float32(v), n) for n, v in (("big", 2.0**15), ("four", 4.0))]
    model = _save_graph(tmp_path / "s.onnx", nodes, constants)
    convert_fp16(model, tmp_path / "s_fp16.onnx")
    numbers = fp16_check.check_numbers(
        tmp_path / "s.onnx", tmp_path / "s_fp16.onnx", [np.ones((1, 1, 4, 4), np.float32)]
    )
    assert numbers.nonfinite_tensors == ["huge"] and numbers.overflow_tensors == ["huge"]
    assert numbers.min_psnr_uint8_db == 100.0  # the output itself looks perfect
    with pytest.raises(ValidationError, match="NaN/Inf in 1 FP16 tensors"):
        fp16_check.check("s_fp16.onnx", numbers, 40.0)


def test_check_rules() -> None:
    good = fp16_check.Fp16Numbers(nonfinite_tensors=[], overflow_tensors=[], min_psnr_uint8_db=55.0)
    fp16_check.check("m_fp16.onnx", good, 40.0)
    bad = [
        ({"nonfinite_tensors": ["t"]}, "NaN/Inf in 1 FP16 tensors"),
        ({"overflow_tensors": ["t"], "fp32_max_abs": 7e4, "fp32_max_abs_tensor": "t"}, "exceed the FP16 maximum"),
        ({"min_psnr_uint8_db": 39.9}, "output PSNR 39.90 dB < 40 dB"),
        ({"min_psnr_uint8_db": float("nan")}, "output PSNR"),
    ]
    for change, message in bad:
        with pytest.raises(ValidationError, match=message):
            fp16_check.check("m_fp16.onnx", dataclasses.replace(good, **change), 40.0)


def test_build_records_the_kind_of_fp16_check(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_generator(tmp_path / "g.pt", WCDGANGenerator(GeneratorConfig(**TINY)), {"qualities": [10]})
    assert build.main(["--ckpt", str(tmp_path / "g.pt"), "--fp16", "--engine", "skip", "-q"]) == 0
    validation = ModelSpec.load(tmp_path / "g_fp16.json").validation
    arithmetic = validation["fp16_arithmetic"]
    assert arithmetic["kind"].startswith("emulated fp16 on cpu") and arithmetic["min_psnr_uint8_db"] >= 40
    assert arithmetic["nonfinite_tensors"] == arithmetic["overflow_tensors"] == []
    assert 0 < arithmetic["attention_average_abs_range"][0] < arithmetic["attention_average_abs_range"][1]
    assert validation["fp16_vs_fp32"]["kind"].startswith("onnx runtime cpu (computes in fp32")
    # real FP16 arithmetic loses more than rounding the weights alone
    assert arithmetic["min_psnr_uint8_db"] < validation["fp16_vs_fp32"]["min_psnr_uint8_db"]


def _scaled_graph(path: Path, scale: float, back: float = 2.0**-16) -> onnx.ModelProto:
    """input (ones) × ``scale`` → ``big`` → × ``back`` → output: ``big`` holds ``scale`` exactly in FP32."""
    nodes = [onnx.helper.make_node("Mul", ["input", "scale"], ["big"], name="scale_up"),
             onnx.helper.make_node("Mul", ["big", "small"], ["output"], name="scale_down")]  # fmt: skip
    constants = [onnx.numpy_helper.from_array(np.float32(v), n) for n, v in (("scale", scale), ("small", back))]
    return _save_graph(path, nodes, constants)


def _save_graph(path: Path, nodes: list, constants: list) -> onnx.ModelProto:
    """An opset-17 model ``input`` (1×1×4×4 float) → ``nodes`` (with ``constants``) → ``output``, saved at ``path``."""
    f32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [onnx.helper.make_tensor_value_info("input", f32, [1, 1, 4, 4])],
        [onnx.helper.make_tensor_value_info("output", f32, [1, 1, 4, 4])],
        constants,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return model


@pytest.mark.parametrize(("scale", "overflows"), [(65504.0, False), (65505.0, True), (65000.0, False)])
def test_the_overflow_limit_is_fp16s_largest_finite_value(tmp_path: Path, scale: float, overflows: bool) -> None:
    """65504 (FP16's largest finite value) itself is no overflow, anything above it is (issue 38)."""
    model = _scaled_graph(tmp_path / "s.onnx", scale)
    convert_fp16(model, tmp_path / "s_fp16.onnx")
    numbers = fp16_check.check_numbers(
        tmp_path / "s.onnx", tmp_path / "s_fp16.onnx", [np.ones((1, 1, 4, 4), np.float32)]
    )
    assert numbers.overflow_tensors == (["big"] if overflows else [])
    assert numbers.fp16_headroom == pytest.approx(65504.0 / scale)
    if overflows:
        with pytest.raises(ValidationError, match="exceed the FP16 maximum 65504 "):
            fp16_check.check("s_fp16.onnx", numbers, 40.0)
    else:
        fp16_check.check("s_fp16.onnx", numbers, 40.0)


def test_only_tensors_stored_in_fp16_count_as_overflows(tmp_path: Path) -> None:
    """70000 in ``big`` and in the output: ``big`` is stored in FP16 and overflows; the output stays FP32 at the graph's
    end (the FP16 graph casts back), so it is no FP16 overflow of its own: 1 tensor, not 2."""
    model = _scaled_graph(tmp_path / "s.onnx", 70000.0, back=1.0)
    convert_fp16(model, tmp_path / "s_fp16.onnx")
    numbers = fp16_check.check_numbers(
        tmp_path / "s.onnx", tmp_path / "s_fp16.onnx", [np.ones((1, 1, 4, 4), np.float32)]
    )
    assert numbers.overflow_tensors == ["big"] and numbers.fp32_ranges["output"][0] == 70000.0
    with pytest.raises(ValidationError, match="overflow: 1 tensors exceed the FP16 maximum"):
        fp16_check.check("s_fp16.onnx", numbers, 40.0)


def test_the_smallest_magnitude_is_of_the_tensors_stored_in_fp16(tmp_path: Path) -> None:
    """1 in ``big`` (FP16), 2⁻²⁰ in the output (FP32 at the graph's end, the FP16 graph casts back): the smallest
    non-zero magnitude that FP16 stores, in the sidecar and the summary, is 1; the output's 2⁻²⁰ is in its own
    range only."""
    convert_fp16(_scaled_graph(tmp_path / "s.onnx", 1.0, back=2.0**-20), tmp_path / "s_fp16.onnx")
    numbers = fp16_check.check_numbers(
        tmp_path / "s.onnx", tmp_path / "s_fp16.onnx", [np.ones((1, 1, 4, 4), np.float32)]
    )
    assert numbers.fp32_min_nonzero_abs == 1.0
    assert numbers.fp32_ranges["output"] == pytest.approx([2.0**-20] * 2, rel=1e-3)
    assert "smallest non-zero |x| 1," in fp16_check.summary(numbers)


@pytest.mark.parametrize(
    ("scale", "subnormal", "flushed"), [(2.0**-20, 1.0, 0.0), (0.75 * 2.0**-24, 1.0, 0.0), (2.0**-26, 1.0, 1.0)]
)
def test_subnormal_and_flushed_shares(tmp_path: Path, scale: float, subnormal: float, flushed: float) -> None:
    """Values below FP16's normal range (2⁻¹⁴) are subnormal; below half its smallest subnormal (2⁻²⁵) they flush to
    zero, and are counted in both shares (of the FP16 tensors' non-zero values: ``big`` here, whose exact zeros, half
    of it as after a ReLU, are neither and left out; the output is FP32)."""
    model = _scaled_graph(tmp_path / "s.onnx", scale, back=1 / scale)
    convert_fp16(model, tmp_path / "s_fp16.onnx")
    image = np.ones((1, 1, 4, 4), np.float32)
    image[..., :2] = 0
    numbers = fp16_check.check_numbers(tmp_path / "s.onnx", tmp_path / "s_fp16.onnx", [image])
    assert numbers.share_subnormal_in_fp16 == subnormal and numbers.share_flushed_to_zero_in_fp16 == flushed


def test_max_abs_error_is_the_worst_output_value(tmp_path: Path) -> None:
    """One output value of 16 off in FP16 (1/3 is not a float16), the rest exact, in the first of two images (the
    second all exact): ``max_abs_error`` (the sidecar's, the summary's "max abs") is that one error, not the mean over
    the 16 nor the last image's."""
    convert_fp16(_scaled_graph(tmp_path / "s.onnx", 1.0, back=1.0), tmp_path / "s_fp16.onnx")
    image = np.ones((1, 1, 4, 4), np.float32)
    image[0, 0, 1, 2] = 1 / 3
    exact = np.ones((1, 1, 4, 4), np.float32)
    numbers = fp16_check.check_numbers(tmp_path / "s.onnx", tmp_path / "s_fp16.onnx", [image, exact])
    error = abs(float(np.float16(np.float32(1 / 3))) - float(np.float32(1 / 3)))
    assert numbers.max_abs_error == pytest.approx(error, rel=1e-6)
    assert f"max abs {error:.3g}," in fp16_check.summary(numbers)


def test_the_attention_range_spans_every_average(tmp_path: Path) -> None:
    """Two GlobalAveragePools, of input (0.5 everywhere) and of input × 4 (2): the attention's range in the sidecar
    and the summary line is [0.5, 2], from the smallest average's smallest |x| to the largest average's largest."""
    nodes = [onnx.helper.make_node("GlobalAveragePool", ["input"], ["mean"]),
             onnx.helper.make_node("Mul", ["input", "four"], ["scaled"]),
             onnx.helper.make_node("GlobalAveragePool", ["scaled"], ["mean4"]),
             onnx.helper.make_node("Mul", ["mean", "mean4"], ["gain"]),
             onnx.helper.make_node("Mul", ["input", "gain"], ["output"])]  # fmt: skip
    model = _save_graph(tmp_path / "a.onnx", nodes, [onnx.numpy_helper.from_array(np.float32(4.0), "four")])
    convert_fp16(model, tmp_path / "a_fp16.onnx")
    images = [np.full((1, 1, 4, 4), 0.5, np.float32)]
    numbers = fp16_check.check_numbers(tmp_path / "a.onnx", tmp_path / "a_fp16.onnx", images)
    assert numbers.attention_average_abs_range == [0.5, 2.0]
    assert fp16_check.summary(numbers).endswith("attention averages |x| in [0.5, 2]")


@pytest.mark.parametrize(
    "attributes", [{"group": 2, "pads": [1] * 4}, {"auto_pad": "SAME_UPPER"}, {"pads": [0, 1, 2, 1]}]
)
def test_grouped_and_auto_padded_convs_compute_like_the_reference(tmp_path: Path, attributes: dict) -> None:
    """Grouped, auto-padded and unevenly padded (top 0, left 1, bottom 2, right 1) convolutions match the reference."""
    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array(
        rng.normal(0, 0.3, (4, 1 if "group" in attributes else 2, 3, 3)).astype(np.float16), "w"
    )
    conv = onnx.helper.make_node("Conv", ["x", "w"], ["y"], **attributes)
    f16 = onnx.TensorProto.FLOAT16
    graph = onnx.helper.make_graph(
        [conv], "g", [onnx.helper.make_tensor_value_info("x", f16, None)],
        [onnx.helper.make_tensor_value_info("y", f16, None)], [w],
    )  # fmt: skip
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "c.onnx"))
    x = rng.random((1, 2, 9, 7), dtype=np.float32)
    ours = fp16_check.fp16_tensors(tmp_path / "c.onnx", x)["y"]
    reference = ReferenceEvaluator(model).run(None, {"x": x.astype(np.float16)})[0]
    assert ours.shape == reference.shape and ours.shape[:2] == (1, 4)
    ulp = np.spacing(np.abs(reference).astype(np.float16)).astype(np.float32)
    assert (np.abs(ours.astype(np.float32) - reference.astype(np.float32)) <= 2 * ulp).all()


def test_the_failure_names_the_first_non_finite_tensor() -> None:
    numbers = fp16_check.Fp16Numbers(nonfinite_tensors=["a", "b"], overflow_tensors=[], min_psnr_uint8_db=55.0)
    with pytest.raises(ValidationError, match=r"NaN/Inf in 2 FP16 tensors \(first: a\)"):
        fp16_check.check("m_fp16.onnx", numbers, 40.0)


def test_the_summary_counts_non_finite_and_overflowing_tensors_apart() -> None:
    """The build's log line: 2 tensors holding NaN/Inf and 1 overflowing one are counted so, not swapped."""
    numbers = fp16_check.Fp16Numbers(nonfinite_tensors=["a", "b"], overflow_tensors=["c"])
    assert ", 2 non-finite and 1 overflowing tensors, " in fp16_check.summary(numbers)


def test_the_mean_psnr_is_the_mean_of_the_images(tmp_path: Path) -> None:
    """The sidecar's mean output PSNR averages every image: two images FP16 computes exactly (PSNR at the cap) and one
    it does not (input + 1000 − 1000: FP16 keeps 0.3 as 0.5) average to (2 · cap + worst) / 3, not the median cap."""
    nodes = [onnx.helper.make_node("Add", ["input", "offset"], ["shifted"]),
             onnx.helper.make_node("Sub", ["shifted", "offset"], ["output"])]  # fmt: skip
    model = _save_graph(tmp_path / "a.onnx", nodes, [onnx.numpy_helper.from_array(np.float32(1000.0), "offset")])
    convert_fp16(model, tmp_path / "a_fp16.onnx")
    images = [np.full((1, 1, 4, 4), v, np.float32) for v in (0.0, 0.3, 1.0)]
    numbers = fp16_check.check_numbers(tmp_path / "a.onnx", tmp_path / "a_fp16.onnx", images)
    assert numbers.min_psnr_uint8_db < 20  # 0.3 · 255 against 0.5 · 255: 51 levels off
    assert numbers.mean_psnr_uint8_db == pytest.approx((2 * PSNR_CAP + numbers.min_psnr_uint8_db) / 3)
