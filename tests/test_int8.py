"""``export.build --int8``: calibration on training images only, FP32 ends, the quality gate and its sidecar record."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import skimage.data
import torch

from common.jpeg import jpeg_roundtrip
from common.metrics import psnr_capped, to_uint8
from common.tiling import ALIGN
from export import build
from export.int8 import (
    CalibrationError,
    Int8Options,
    calibration_windows,
    check_gate,
    concat_groups,
    excluded_nodes,
    gate,
    gate_images,
    served_qualities,
    shared_ranges,
)
from export.validate import ValidationError, to_nchw
from models import GeneratorConfig, WCDGANGenerator, save_generator
from runtime.spec import ModelSpec
from tests.runtime_fixtures import calibration_folders, write_pngs

pytestmark = pytest.mark.slow  # exports, trains, builds or runs commands: not in the inner loop

TINY = {"features": 16, "num_blocks": 1, "branch_channels": 8}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """A tiny trained-looking checkpoint, calibration photos, gate photos and a flat-black 'calibration' folder."""
    tmp = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    ckpt = tmp / "g.pt"
    save_generator(ckpt, WCDGANGenerator(GeneratorConfig(**TINY)), {"qualities": [10]})
    calib, gate = calibration_folders(tmp)
    black = write_pngs(tmp / "black", {f"b{i}": np.zeros((96, 96, 3), np.uint8) for i in range(2)})
    return {"tmp": tmp, "ckpt": ckpt, "calib": calib, "gate": gate, "black": black}


def _build(setup, out: Path, calib: Path, *extra: str) -> int:
    argv = ["--ckpt", str(setup["ckpt"]), "-o", str(out), "--name", "m", "--engine", "skip", "-q", "--int8"]
    return build.main([*argv, "--calib", str(calib), "--gate-data", str(setup["gate"]), *extra])


def test_int8_graph_is_gated_recorded_and_close_to_fp32(setup, tmp_path, monkeypatch) -> None:
    out = setup["tmp"] / "ok"
    monkeypatch.chdir(tmp_path)  # the calibrator's working files go to a temporary, never the current folder
    assert _build(setup, out, setup["calib"], "--calib-windows", "6", "--gate-quality", "30", "10") == 0
    assert sorted(p.name for p in out.iterdir()) == ["m.json", "m.onnx", "m_int8.json", "m_int8.onnx"]
    assert list(tmp_path.iterdir()) == []
    spec = ModelSpec.load(out / "m_int8.json")
    assert spec.precision == "int8" and spec.name == "m_int8" and spec.channels == 3
    numbers = spec.validation["int8"]
    assert numbers["gate_images"] == 1 and numbers["max_loss_db"] == 0.05 and numbers["max_worst_loss_db"] == 0.15
    assert numbers["gate_qualities"] == [10, 30] and sorted(numbers["per_quality"]) == ["10", "30"]
    per_quality = numbers["per_quality"].values()
    assert all(q["delta_db"] >= -0.05 and q["int8_vs_fp32_min_psnr_uint8_db"] > 40 for q in per_quality)
    assert numbers["delta_db"] == min(q["delta_db"] for q in per_quality)
    assert numbers["worst_image_delta_db"] == min(q["worst_image_delta_db"] for q in per_quality)
    assert numbers["per_quality"]["10"]["fp32_psnr_db"] < numbers["per_quality"]["30"]["fp32_psnr_db"]  # real q
    assert numbers["calibration"]["windows"] == 6
    graph = onnx.load(str(out / "m_int8.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = {t.name: t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4}
    scales = {t.name: t for t in graph.initializer}
    assert weights and all(  # signed 8-bit, one scale per output channel
        list(scales[name.replace("_quantized", "_scale")].dims) == [w.dims[0]] for name, w in weights.items()
    )
    activations = [n for n in graph.node if n.op_type == "QuantizeLinear"]  # weights are stored quantised
    zero_points = {t.name: t.data_type for t in graph.initializer}
    assert activations and {zero_points[n.input[2]] for n in activations} == {onnx.TensorProto.UINT8}  # U8S8
    # the ends stay FP32: the first conv reads the float input, the output comes from a float Add
    assert set(spec.fp32_nodes) == set(excluded_nodes(onnx.load(str(out / "m.onnx"))))
    producer = {o: n for n in graph.node for o in n.output}
    assert producer["output"].name in spec.fp32_nodes and producer["output"].op_type != "DequantizeLinear"
    assert not [n for n in graph.node if n.op_type == "QuantizeLinear" and "input" in n.input]
    # every Concat reads and writes one quantisation, so ONNX Runtime copies instead of requantising
    values = {t.name: onnx.numpy_helper.to_array(t).item() for t in graph.initializer if not t.dims}
    readers = {i: n for n in graph.node for i in n.input}
    concats = [n for n in graph.node if n.op_type == "Concat"]
    assert concats
    for concat in concats:
        sides = [producer[i] for i in concat.input] + [readers[concat.output[0]]]
        assert {n.op_type for n in sides} == {"DequantizeLinear", "QuantizeLinear"}
        assert len({(values[n.input[1]], values[n.input[2]]) for n in sides}) == 1, concat.name


def test_without_gate_quality_the_sidecar_records_the_served_qualities(setup, tmp_path, monkeypatch) -> None:
    """No --gate-quality: the gate runs at the qualities the model serves (q10 for this q10-trained checkpoint),
    and the sidecar's gate_qualities names them (issue 38: it recorded the empty option instead)."""
    out = setup["tmp"] / "served"
    monkeypatch.chdir(tmp_path)
    assert _build(setup, out, setup["calib"], "--calib-windows", "6") == 0
    numbers = ModelSpec.load(out / "m_int8.json").validation["int8"]
    assert numbers["gate_qualities"] == [10] and list(numbers["per_quality"]) == ["10"]


def test_concat_groups_merge_chained_concats_and_share_the_union_range() -> None:
    """a‖b → c, c‖d → e, f‖g → h: {a,b,c,d,e} share one range (c is in both), {f,g,h} another."""
    nodes = [
        onnx.helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
        onnx.helper.make_node("Relu", ["c"], ["r"]),
        onnx.helper.make_node("Concat", ["c", "d"], ["e"], axis=1),
        onnx.helper.make_node("Concat", ["f", "g"], ["h"], axis=1),
    ]
    model = onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", [], []))
    groups = concat_groups(model)
    assert sorted(map(sorted, groups)) == [["a", "b", "c", "d", "e"], ["f", "g", "h"]]
    ranges = dict(
        a=(-1.0, 1.0), b=(0.0, 3.0), c=(-1.0, 3.0), d=(-2.0, 0.5), e=(-2.0, 3.0), f=(0, 1), g=(0, 2), h=(0, 2)
    )
    overrides = shared_ranges(groups, ranges)
    assert {(o[0]["rmin"], o[0]["rmax"]) for t, o in overrides.items() if t in "abcde"} == {(-2.0, 3.0)}
    assert {(o[0]["rmin"], o[0]["rmax"]) for t, o in overrides.items() if t in "fgh"} == {(0.0, 2.0)}
    assert "r" not in overrides


def test_broken_calibration_fails_the_gate_and_writes_nothing(setup, capsys) -> None:
    """Ranges calibrated on flat black images clip every real activation of the blocks (the only INT8 part): the
    gate must catch it. The blocks' weights are scaled up so that, as in a trained model and unlike a fresh one, they
    carry much of the output (the same model calibrated on photos passes)."""
    torch.manual_seed(0)
    model = WCDGANGenerator(GeneratorConfig(**TINY))
    with torch.no_grad():
        for weight in model.blocks.parameters():
            weight.mul_(2.5)
    save_generator(setup["tmp"] / "strong.pt", model, {"qualities": [10]})
    strong = {**setup, "ckpt": setup["tmp"] / "strong.pt"}
    assert _build(strong, setup["tmp"] / "fine", setup["calib"], "--calib-windows", "2") == 0
    out = setup["tmp"] / "broken"
    assert _build(strong, out, setup["black"], "--calib-windows", "2") == 1
    err = capsys.readouterr().err
    assert "failed the INT8 quality gate" in err and "allowed −0.05 dB" in err
    assert not out.exists() or not any(out.glob("*.onnx"))  # staged graphs are never published


def _gate_numbers(**per_quality: tuple[float, float]) -> dict:
    """Gate numbers with (mean delta, worst-image delta) per quality, e.g. q10=(-0.01, -0.03)."""
    return {
        "gate_images": 29,
        "gate_data": "LIVE1",
        "max_loss_db": 0.05,
        "max_worst_loss_db": 0.15,
        "per_quality": {
            q[1:]: {
                "fp32_psnr_db": 26.58,
                "int8_psnr_db": 26.58 + mean,
                "delta_db": mean,
                "worst_image_delta_db": worst,
            }
            for q, (mean, worst) in per_quality.items()
        },
    }


def test_gate_threshold_boundary_at_every_quality() -> None:
    check_gate("m_int8.onnx", _gate_numbers(q10=(-0.04, -0.1), q20=(-0.05, -0.15), q30=(+0.05, 0.0)))
    failing = [
        (_gate_numbers(q10=(-0.01, -0.03), q30=(-0.06, -0.1)), "q30: mean"),  # only the highest quality too lossy
        (_gate_numbers(q10=(-0.06, -0.1), q30=(-0.01, -0.03)), "q10: mean"),
        (_gate_numbers(q10=(-0.01, -0.03), q20=(-0.02, -0.16)), "q20: .* worst image -0.160 dB"),  # one bad image
        (_gate_numbers(q10=(float("nan"), -0.01)), "q10"),
        (_gate_numbers(q10=(-0.01, float("nan"))), "q10"),
    ]
    for numbers, message in failing:
        with pytest.raises(ValidationError, match=f"failed the INT8 quality gate .*{message}"):
            check_gate("m_int8.onnx", numbers)


def test_served_qualities_gate_what_the_model_serves() -> None:
    assert served_qualities([10]) == (10,)  # a q10-only model serves q10
    assert served_qualities([]) == (10, 20, 30)  # unknown: blind
    assert served_qualities([5, 10]) == (5, 10, 20, 30)
    assert served_qualities([40, 5, 10, 15, 20, 25, 30]) == (5, 10, 15, 20, 25, 30, 40)


def test_evaluation_sets_are_refused_for_calibration(setup, capsys) -> None:
    live1 = write_pngs(setup["tmp"] / "LIVE1", {"x": skimage.data.astronaut()[:64, :64]})
    assert _build(setup, setup["tmp"] / "refused", live1) == 2
    assert "refusing to calibrate on an evaluation set" in capsys.readouterr().err
    for folders in ([setup["calib"], live1], [live1, setup["calib"]]):  # wherever it is in the list
        with pytest.raises(CalibrationError, match=f"{live1}: refusing to calibrate on an evaluation set"):
            calibration_windows(Int8Options(folders, windows=2, window=32), channels=3)


def test_calibration_windows_are_jpeg_windows_on_the_mcu_grid(setup, tmp_path) -> None:
    opts = Int8Options([setup["calib"]], windows=5, window=64, qualities=(10,))
    windows = calibration_windows(opts, channels=3)
    assert len(windows) == 5 and all(w.shape == (1, 3, 64, 64) and w.dtype == np.float32 for w in windows)
    assert all(w.min() >= 0 and w.max() <= 1 for w in windows)
    again = calibration_windows(opts, channels=3)
    assert all(np.array_equal(a, b) for a, b in zip(windows, again, strict=True))  # seeded: reproducible builds
    y = calibration_windows(opts, channels=1)
    assert y[0].shape == (1, 1, 64, 64)
    # a photo of one window's size: every window is its libjpeg round trip at the quality, not the photo itself
    photo = skimage.data.astronaut()[:64, :64]
    whole = Int8Options([write_pngs(tmp_path, {"a": photo})], windows=2, window=64, qualities=(10,))
    assert all(np.array_equal(w, to_nchw(jpeg_roundtrip(photo, 10))) for w in calibration_windows(whole, channels=3))


def test_calibration_windows_of_tall_and_wide_images_are_whole_windows(tmp_path) -> None:
    """A portrait and a landscape photo: every window is --window square, from anywhere on either axis (each side's
    origin bounded by that side, not the other)."""
    photo = skimage.data.astronaut()
    tall = write_pngs(tmp_path / "tall", {"tall": photo[:256, :48]})
    wide = write_pngs(tmp_path / "wide", {"wide": photo[:48, :256]})
    for folder in (tall, wide):
        windows = calibration_windows(Int8Options([folder], windows=12, window=48, qualities=(90,)), channels=3)
        assert all(w.shape == (1, 3, 48, 48) for w in windows)
    lefts = set()
    for w in windows:  # the wide photo's: where each came from, by the nearest crop (q90 keeps them close)
        crop = (w[0].transpose(1, 2, 0) * 255).astype(np.float32)
        errors = [np.abs(crop - photo[:48, left : left + 48]).mean() for left in range(0, 256 - 48 + 1, ALIGN)]
        lefts.add(ALIGN * int(np.argmin(errors)))
    assert max(lefts) > 256 // 2  # some from the right half


def test_int8_options_need_int8(setup, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        build.parse_args(["--ckpt", str(setup["ckpt"]), "--calib", str(setup["calib"])])
    assert e.value.code == 2 and "need --int8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        build.parse_args(["--ckpt", str(setup["ckpt"]), "--gate-quality", "10"])
    assert e.value.code == 2 and "need --int8" in capsys.readouterr().err


def _offset_graph(path: Path, offset: float) -> Path:
    """A stand-in for a restoration graph: input + ``offset`` (0: the identity), 1×3×H×W float32."""
    f32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["input", "offset"], ["output"])],
        "g",
        [onnx.helper.make_tensor_value_info("input", f32, [1, 3, None, None])],
        [onnx.helper.make_tensor_value_info("output", f32, [1, 3, None, None])],
        [onnx.numpy_helper.from_array(np.float32(offset), "offset")],
    )
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(path))
    return path


def test_gate_measures_a_loss_as_a_loss(tmp_path) -> None:
    """An 'INT8' graph worse than its FP32 one on every image: both deltas negative, the worst image the lowest,
    and the gate fails on it (issue 38: a flipped sign would report the loss as a gain and pass)."""
    fp32, int8 = _offset_graph(tmp_path / "m.onnx", 0.0), _offset_graph(tmp_path / "m_int8.onnx", 4 / 255)
    flat = np.full((32, 32, 3), 90, np.uint8)  # an offset of 4 levels costs most where JPEG loses least
    white = np.full((32, 32, 3), 255, np.uint8)  # clipped at 255 by both graphs: identical outputs
    truths = [flat, skimage.data.astronaut()[:32, :32].copy(), white]
    numbers = gate(fp32, int8, truths, (10,), Int8Options(gate_data=tmp_path, max_worst_loss_db=0.15))
    q = numbers["per_quality"]["10"]
    assert q["worst_image_delta_db"] <= q["delta_db"] < 0 and q["int8_psnr_db"] < q["fp32_psnr_db"]
    assert numbers["worst_image_delta_db"] == q["worst_image_delta_db"]
    assert numbers["gate_data"] == tmp_path.name  # the folder's name: the sidecar names no build machine's path
    # INT8 against FP32: 4 levels off on the flat image (the minimum), equal on the white one (the mean is higher)
    assert q["int8_vs_fp32_min_psnr_uint8_db"] == pytest.approx(10 * np.log10(255**2 / 16), abs=1e-6)
    assert q["int8_vs_fp32_mean_psnr_uint8_db"] > q["int8_vs_fp32_min_psnr_uint8_db"] + 10
    with pytest.raises(ValidationError, match=r"q10: .*worst image -\d") as caught:
        check_gate("m_int8.onnx", numbers)
    assert f" images of {tmp_path.name}: q10: " in str(caught.value)


def test_int8_vs_fp32_mean_is_the_mean_over_images_of_int8_against_fp32(tmp_path) -> None:
    """The sidecar's int8_vs_fp32_mean_psnr_uint8_db is the mean over the gate images of the INT8 output's PSNR
    against the FP32 output (both run here), not against the ground truth (issue 38)."""
    import onnxruntime as ort

    fp32, int8 = _offset_graph(tmp_path / "m.onnx", 0.0), _offset_graph(tmp_path / "m_int8.onnx", 4 / 255)
    photo = skimage.data.astronaut()
    truths = [photo[:32, :32].copy(), photo[200:232, 200:232].copy()]  # JPEG at q10 loses more than 4 levels
    q = gate(fp32, int8, truths, (10,), Int8Options(gate_data=tmp_path))["per_quality"]["10"]
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fp32, int8)]
    vs_fp32 = []
    for truth in truths:
        x = to_nchw(jpeg_roundtrip(truth, 10))
        a, b = (to_uint8(s.run(None, {"input": x})[0][0]) for s in sessions)
        vs_fp32.append(psnr_capped(a, b))
    assert q["int8_vs_fp32_mean_psnr_uint8_db"] == pytest.approx(np.mean(vs_fp32), abs=1e-6)
    assert q["int8_vs_fp32_min_psnr_uint8_db"] <= q["int8_vs_fp32_mean_psnr_uint8_db"]
    assert q["int8_vs_fp32_mean_psnr_uint8_db"] > q["int8_psnr_db"] + 5  # 4 levels off FP32, far more off the truth


def test_the_overall_numbers_are_the_worst_quality_s(tmp_path) -> None:
    """Gated at q10 and q90 with an 'INT8' graph 4 levels off, which costs more where JPEG loses less (q90): the
    sidecar's top-level delta_db and worst_image_delta_db are the worst over the qualities, not the mildest one's."""
    fp32, int8 = _offset_graph(tmp_path / "m.onnx", 0.0), _offset_graph(tmp_path / "m_int8.onnx", 4 / 255)
    truths = [np.full((32, 32, 3), 90, np.uint8), skimage.data.astronaut()[:32, :32].copy()]
    numbers = gate(fp32, int8, truths, (10, 90), Int8Options(gate_data=tmp_path))
    mild, harsh = numbers["per_quality"]["10"], numbers["per_quality"]["90"]
    assert harsh["worst_image_delta_db"] < mild["worst_image_delta_db"] and harsh["delta_db"] < mild["delta_db"]
    assert numbers["worst_image_delta_db"] == harsh["worst_image_delta_db"]
    assert numbers["delta_db"] == harsh["delta_db"]


def test_fp32_nodes_reach_from_each_end_to_the_first_spatial_convolution() -> None:
    """input → Pad → 1×1 colour Conv → 3×3 Conv c1 (stride 2) → Relu → 3×3 Conv c2 → Relu → 3×3 Conv c3 →
    DepthToSpace → Add(Pad, ·) → Slice → output: the input end runs to c1, the output end back to c3, both through
    the 1×1 conv and the rearrangements; what lies between (the trunk) is quantised."""
    f32 = onnx.TensorProto.FLOAT
    arrays = {
        "pads": np.zeros(8, np.int64), "colour": np.eye(3, dtype=np.float32)[:, :, None, None],
        "w1": np.ones((4, 3, 3, 3), np.float32), "w2": np.ones((4, 4, 3, 3), np.float32),
        "w3": np.ones((12, 4, 3, 3), np.float32), "starts": np.zeros(1, np.int64), "ends": np.full(1, 8, np.int64),
    }  # fmt: skip
    node = onnx.helper.make_node
    nodes = [
        node("Pad", ["input", "pads"], ["p"], name="pad"),
        node("Conv", ["p", "colour"], ["y"], name="colour"),
        node("Conv", ["y", "w1"], ["a"], name="c1", strides=[2, 2], pads=[1, 1, 1, 1]),
        node("Relu", ["a"], ["b"], name="r1"),
        node("Conv", ["b", "w2"], ["c"], name="c2", pads=[1, 1, 1, 1]),
        node("Relu", ["c"], ["d"], name="r2"),
        node("Conv", ["d", "w3"], ["e"], name="c3", pads=[1, 1, 1, 1]),
        node("DepthToSpace", ["e"], ["f"], name="d2s", blocksize=2),
        node("Add", ["p", "f"], ["g"], name="add"),
        node("Slice", ["g", "starts", "ends"], ["output"], name="crop"),
    ]
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [onnx.helper.make_tensor_value_info("input", f32, [1, 3, 8, 8])],
        [onnx.helper.make_tensor_value_info("output", f32, [1, 3, 8, 8])],
        [onnx.numpy_helper.from_array(v, k) for k, v in arrays.items()],
    )
    assert excluded_nodes(onnx.helper.make_model(graph)) == ["add", "c1", "c3", "colour", "crop", "d2s", "pad"]


def test_only_the_half_trunk_s_blocks_run_in_8_bit(setup, tmp_path) -> None:
    """A tiny half-resolution trunk's INT8 graph: from the graph input to the output, around the blocks, no tensor
    is quantised (padding, colour conversion, space-to-depth, feature extraction, the skip, the reconstruction head,
    depth-to-space, colour conversion back, the residual Add, the crop); what is quantised feeds the blocks."""
    torch.manual_seed(0)
    ckpt = tmp_path / "half.pt"
    save_generator(ckpt, WCDGANGenerator(GeneratorConfig(**TINY, trunk="half")), {"qualities": [10]})
    argv = ["--ckpt", str(ckpt), "-o", str(tmp_path / "out"), "--name", "h", "--engine", "skip", "-q", "--int8"]
    assert build.main([*argv, "--calib", str(setup["calib"]), "--gate-data", str(setup["gate"])]) == 0
    graph = onnx.load(str(tmp_path / "out" / "h_int8.onnx")).graph
    readers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    reached, todo = {}, ["input"]
    while todo:  # forward from the input, around the blocks
        for n in readers.get(todo.pop(), []):
            if not n.name.startswith("/blocks/") and n.name not in reached:
                reached[n.name] = n
                todo += list(n.output)
    assert {"/shallow/shallow.1/Conv", "/Add", "/reconstruct/reconstruct.2/Conv", "/decode/DepthToSpace"} <= set(
        reached
    )
    assert "output" in {o for n in reached.values() for o in n.output}
    quantised = [n for n in reached.values() if n.op_type == "QuantizeLinear"]
    assert quantised  # the blocks' inputs
    for q in quantised:
        dequantised = readers[q.output[0]]
        assert {n.op_type for n in dequantised} == {"DequantizeLinear"}
        assert all(n.name.startswith("/blocks/") for d in dequantised for n in readers[d.output[0]]), q.name


def test_gate_images_of_an_empty_folder_and_of_a_y_model(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError) as caught:
        gate_images(tmp_path / "empty", 3)
    assert str(caught.value) == f"{tmp_path / 'empty'}: no gate images (a folder of ground-truth images, e.g. LIVE1)"
    folder = write_pngs(tmp_path / "gate", {"a": skimage.data.astronaut()[:32, :48]})
    assert [i.shape for i in gate_images(folder, 1)] == [(32, 48)] and [i.shape for i in gate_images(folder, 3)] == [
        (32, 48, 3)
    ]


def test_a_concat_of_integers_leaves_the_other_groups_shared() -> None:
    """A shape-arithmetic Concat (no float ranges) before a float one: the float group still gets its union range."""
    overrides = shared_ranges([{"shape_a", "shape_b"}, {"x", "y"}], {"x": (0.0, 1.0), "y": (-1.0, 2.0)})
    assert overrides == {t: [{"rmin": np.float32(-1.0), "rmax": np.float32(2.0)}] for t in ("x", "y")}


def test_calibration_reads_every_folder_and_says_what_is_missing(tmp_path) -> None:
    """Images from all --calib folders (one may be empty); a missing folder, no image at all and an undecodable
    file are each one line naming what is wrong."""
    photos = write_pngs(tmp_path / "photos", {"a": skimage.data.astronaut()[:64, :64]})
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(calibration_windows(Int8Options([photos, empty], windows=2, window=32), channels=3)) == 2
    for folders, message in (
        ([photos, tmp_path / "gone"], f"{tmp_path / 'gone'}: no such calibration folder"),
        ([empty], f"no images in the calibration folders {[str(empty)]}"),
    ):
        with pytest.raises(CalibrationError) as caught:
            calibration_windows(Int8Options(folders, windows=2, window=32), channels=3)
        assert str(caught.value) == message
    (empty / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CalibrationError) as caught:
        gate_images(empty, 3)
    assert str(caught.value) == f"{empty / 'broken.png'}: cannot be decoded as an image"


def test_gray_alpha_and_16_bit_images_calibrate_and_gate_as_8_bit_colour(tmp_path) -> None:
    """A calibration or gate folder may hold a gray, an RGBA or a 16-bit PNG: each is read as 8-bit RGB (gray
    repeated, alpha dropped, 16 bits to their 8-bit level), or as its Y plane for a Y model."""
    rgb = skimage.data.astronaut()[:32, :48]
    gray = skimage.data.camera()[:32, :48]
    folder = tmp_path / "mixed"
    folder.mkdir()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cv2.imwrite(str(folder / "a_gray.png"), gray)
    cv2.imwrite(str(folder / "b_rgba.png"), np.dstack([bgr, np.full(gray.shape, 128, np.uint8)]))
    cv2.imwrite(str(folder / "c_deep.png"), bgr.astype(np.uint16) * 257)
    images = gate_images(folder, 3)
    assert [(i.shape, i.dtype) for i in images] == [((32, 48, 3), np.uint8)] * 3
    assert np.array_equal(images[0], np.dstack([gray] * 3))
    assert np.array_equal(images[1], rgb) and np.array_equal(images[2], rgb)
    assert [i.shape for i in gate_images(folder, 1)] == [(32, 48)] * 3
    windows = calibration_windows(Int8Options([folder], windows=3, window=32, qualities=(90,)), channels=3)
    assert [w.shape for w in windows] == [(1, 3, 32, 32)] * 3


def test_a_gate_failure_lists_every_failing_quality() -> None:
    numbers = _gate_numbers(q10=(-0.06, -0.1), q20=(-0.07, -0.1))
    with pytest.raises(ValidationError, match=r"\(-0\.060 dB\), worst image -0\.100 dB; q20: mean 26\.510 dB"):
        check_gate("m_int8.onnx", numbers)
