"""The RFB detector's view graphs: the cut graphs decode as the whole ones do, and each photo is read at the
input shape nearest its aspect (``models.detector.rfb_import.add_views``, ``RfbFaceDetector.view_for``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from app.model_plans import build_onnx_detector, network_plan, served_manifest
from app.settings import Settings
from models.artifact import ArtifactError, load_artifact, repack_artifact, sha256_file
from models.detector.rfb import rfb_priors
from models.detector.rfb_import import add_views, parse_shape, write_view_graph
from models.detector.rfb_predictor import Coarse, RfbFaceDetector, View, view_graphs, without_views
from models.detector.types import DetectRequest
from models.onnx_backend import Runtime

STORE = Path(__file__).resolve().parents[3] / "models/store/face-detector"
V5 = STORE / "v5"  # the imported RFB-640 with its RFB-320 coarse export
SHAPES = [(640, 480), (512, 512), (480, 640)]


@pytest.fixture(scope="module")
def views_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("views") / "v6"
    add_views(V5, out, SHAPES, "v6", "a test")
    return out


@pytest.fixture(scope="module")
def documented_views(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("views") / "v6-documented"
    add_views(V5, out, [(640, 480)], "v6", "a test")
    return out


@pytest.mark.parametrize(("file", "size"), [("model.onnx", (640, 480)), ("coarse.onnx", (320, 240))])
def test_the_priors_are_the_ones_the_authors_graphs_carry(file: str, size: tuple[int, int]) -> None:
    graph = onnx.load(str(V5 / file)).graph
    constants = [numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"]
    priors = rfb_priors(*size).boxes
    tables = [c[0] for c in constants if c.shape == (1, len(priors), 2)]
    assert any(np.array_equal(t, priors[:, :2]) for t in tables)  # the centres
    assert any(np.array_equal(t, priors[:, 2:]) for t in tables)  # the sides
    assert not any(np.array_equal(t, rfb_priors(size[0] + 64, size[1]).boxes[: len(priors), :2]) for t in tables)


def test_the_derived_artifact_lists_and_hashes_the_view_graphs_and_keeps_the_rest(views_artifact: Path) -> None:
    manifest, source = load_artifact(views_artifact), load_artifact(V5)
    files = {entry.path: entry.sha256 for entry in manifest.files}
    assert set(files) == {"LICENSE", "model.onnx", "coarse.onnx", "model.views.onnx", "coarse.views.onnx"}
    for name in ("LICENSE", "model.onnx", "coarse.onnx"):
        assert files[name] == sha256_file(V5 / name)  # the authors' graphs as imported
    views = manifest.hyperparameters["views"]
    assert views["shapes"] == [list(shape) for shape in SHAPES] and views["coarse_ratio"] == 2
    assert 0 <= views["cut_max_difference"] <= 1e-4
    assert manifest.defaults == source.defaults and manifest.version == "v6"
    assert manifest.hyperparameters["box_convention"] == source.hyperparameters["box_convention"]
    assert "view graphs added" in manifest.provenance.method and manifest.provenance.command == "a test"
    cut = onnx.load(str(views_artifact / "model.views.onnx")).graph
    assert [o.name for o in cut.output] == ["scores", "locations"]
    assert [d.dim_param for d in cut.input[0].type.tensor_type.shape.dim[2:]] == ["height", "width"]
    assert not {"Exp", "Div", "Sub"} & {node.op_type for node in cut.node}  # the decoding is gone


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ([(512, 512)], "documented input 640x480"),
        ([(640, 480), (510, 510)], "multiple of 4"),
        ([(640, 480), (32, 32)], "at least 64"),
    ],
)
def test_shapes_without_the_documented_input_or_that_do_not_halve_evenly_are_refused(
    tmp_path: Path, shapes: list[tuple[int, int]], message: str
) -> None:
    with pytest.raises(ArtifactError, match=message):
        add_views(V5, tmp_path / "out", shapes, "v6")
    assert not (tmp_path / "out").exists()


def test_shapes_of_one_aspect_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="one aspect"):
        add_views(V5, tmp_path / "out", [(640, 480), (512, 512), (256, 256)], "v6")


def test_a_coarse_export_that_is_not_a_whole_fraction_of_the_input_takes_no_views(tmp_path: Path) -> None:
    source = tmp_path / "v5"
    shutil.copytree(V5, source)
    hyperparameters = load_artifact(source).hyperparameters
    coarse = hyperparameters["coarse"] | {"input_width": 480, "input_height": 360}
    repack_artifact(source, hyperparameters=hyperparameters | {"coarse": coarse})
    with pytest.raises(ArtifactError, match="whole ratio"):
        add_views(source, tmp_path / "out", SHAPES, "v6")


def test_a_graph_whose_boxes_are_not_the_decoded_locations_is_not_cut(views_artifact: Path, tmp_path: Path) -> None:
    """A graph that serves its raw locations as its boxes: the cut is checked, and refused, because decoding the
    locations does not give the graph's boxes."""
    model = onnx.load(str(views_artifact / "model.views.onnx"))
    graph = model.graph
    for index, side in ((2, 480), (3, 640)):
        graph.input[0].type.tensor_type.shape.dim[index].dim_value = side
    graph.node.append(onnx.helper.make_node("Identity", ["locations"], ["boxes"]))
    graph.output.append(onnx.helper.make_tensor_value_info("boxes", onnx.TensorProto.FLOAT, [1, "priors", 4]))
    raw = tmp_path / "raw.onnx"
    onnx.save(model, str(raw))
    with pytest.raises(ArtifactError, match="differs from the whole one"):
        write_view_graph(raw, tmp_path / "cut.onnx")
    assert not (tmp_path / "cut.onnx").exists()


def test_only_an_imported_rfb_with_a_coarse_export_takes_views(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="coarse export"):
        add_views(STORE / "v4", tmp_path / "out", SHAPES, "v6")  # the RFB-640 alone
    with pytest.raises(ArtifactError, match="coarse export"):
        add_views(STORE / "v3", tmp_path / "out", SHAPES, "v6")  # a YOLO detector


def test_a_graph_that_decodes_nothing_is_not_cut(views_artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not an RFB export"):
        write_view_graph(views_artifact / "model.views.onnx", tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()


def test_shapes_parse_as_width_by_height() -> None:
    assert parse_shape("512x384") == (512, 384) and parse_shape("480X640") == (480, 640)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_shape("512")


def noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_at_the_documented_input_the_view_graphs_find_what_the_whole_graphs_find(
    documented_views: Path, engine: str
) -> None:
    runtime = Runtime(engine=engine)  # type: ignore[arg-type]
    whole = build_onnx_detector(V5, load_artifact(V5), "cpu", runtime)
    cut = build_onnx_detector(documented_views, load_artifact(documented_views), "cpu", runtime)
    assert cut.views[0].priors is not None and whole.views[0].priors is None
    photos = [noise(700, 525, 1), noise(512, 512, 2), noise(300, 220, 3), noise(2000, 1200, 4)]  # tiled, thumbnail
    requests = [DetectRequest(photo, 0.02, 0.3, 300, 640, 0.0, "auto") for photo in photos]
    requests += [DetectRequest(photo, 0.02, 0.3, 300, 640, 24.0, "auto") for photo in photos]
    expected, found = whole.predict(requests), cut.predict(requests)
    assert sum(map(len, expected)) > 20  # noise at a low conf: many boxes to compare
    for faces, wanted in zip(found, expected, strict=True):
        assert len(faces) == len(wanted)
        for face, want in zip(faces, wanted, strict=True):
            assert face.box == pytest.approx(want.box, abs=0.05) and face.score == pytest.approx(want.score, abs=1e-4)


class Recording:
    """A view graph that records the input size it is given and finds nothing."""

    def __init__(self, seen: list[tuple[str, int, int]], name: str) -> None:
        self.seen, self.name = seen, name

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        height, width = pixels.shape[1:3]
        self.seen.append((self.name, width, height))
        count = len(rfb_priors(width, height).boxes)
        return {"scores": np.zeros((1, count, 2), np.float32), "locations": np.zeros((1, count, 4), np.float32)}


def recording_detector(seen: list[tuple[str, int, int]]) -> RfbFaceDetector:
    manifest = load_artifact(V5)

    def view(width: int, height: int) -> View:
        coarse = Coarse(Recording(seen, "coarse"), width // 2, height // 2, 0.3, rfb_priors(width // 2, height // 2))
        return View(Recording(seen, "fine"), width, height, rfb_priors(width, height), coarse)

    first, *rest = [view(*shape) for shape in SHAPES]
    return RfbFaceDetector(first.run, manifest, 640, 480, "fake", first.coarse, first.priors, rest)


@pytest.mark.parametrize(
    ("size", "fine", "coarse"),
    [
        ((512, 512), (512, 512), (256, 256)),
        ((1200, 1100), (512, 512), (256, 256)),
        ((600, 800), (480, 640), (240, 320)),
        ((1024, 768), (640, 480), (320, 240)),
        ((1280, 720), (640, 480), (320, 240)),  # 16:9 is nearer 4:3 than 1:1
        ((540, 480), (512, 512), (256, 256)),  # 9:8 is nearer 1:1
        ((560, 480), (640, 480), (320, 240)),  # 7:6 is nearer 4:3
    ],
)
def test_each_photo_is_read_at_the_shape_nearest_its_aspect_and_the_coarse_pass_at_half(
    size: tuple[int, int], fine: tuple[int, int], coarse: tuple[int, int]
) -> None:
    seen: list[tuple[str, int, int]] = []
    recording_detector(seen).predict([DetectRequest(noise(*size, 0), 0.5, 0.3, 10, 640, 24.0, "off")])
    assert seen == [("fine", *fine), ("coarse", *coarse)]


def test_each_tile_is_read_at_the_shape_nearest_its_own_aspect() -> None:
    seen: list[tuple[str, int, int]] = []
    recording_detector(seen).predict([DetectRequest(noise(2400, 900, 0), 0.5, 0.3, 10, 640, 24.0, "on")])
    fine = [(width, height) for name, width, height in seen if name == "fine"]
    assert (640, 480) in fine and (512, 512) in fine  # the wide whole photo, and its squarer tiles


def test_a_thumbnail_keeps_the_documented_coarse_input_whatever_its_aspect() -> None:
    seen: list[tuple[str, int, int]] = []
    recording_detector(seen).predict([DetectRequest(noise(250, 250, 0), 0.5, 0.3, 10, 640, 24.0, "auto")])
    assert seen == [("coarse", 320, 240)]


def test_openvino_compiles_each_shape_statically_and_finds_what_onnx_runtime_finds(views_artifact: Path) -> None:
    """OpenVINO compiles each shape statically, ONNX Runtime takes the cut graph as it is: the same boxes."""
    manifest = load_artifact(views_artifact)
    runtime = Runtime(engine="openvino", precision="f32")
    detector = build_onnx_detector(views_artifact, manifest, "cpu", runtime)
    assert [(v.width, v.height) for v in detector.views] == SHAPES
    coarse = [(v.coarse.width, v.coarse.height) for v in detector.views if v.coarse]
    assert coarse == [(320, 240), (256, 256), (240, 320)]
    photo = noise(512, 512, 5)
    [found] = detector.predict([DetectRequest(photo, 0.05, 0.3, 300, 640, 0.0, "auto")])
    reference = build_onnx_detector(views_artifact, manifest, "cpu", Runtime(engine="onnxruntime"))
    assert len({view.run.__self__ for view in reference.views}) == 1
    assert len({view.run.__self__ for view in detector.views}) == 3
    [expected] = reference.predict([DetectRequest(photo, 0.05, 0.3, 300, 640, 0.0, "auto")])
    assert len(found) == len(expected) > 5
    for face, want in zip(sorted(found, key=lambda d: d.box), sorted(expected, key=lambda d: d.box), strict=True):
        assert face.box == pytest.approx(want.box, abs=0.5) and face.score == pytest.approx(want.score, abs=1e-3)


def test_lanes_read_each_photo_at_its_view_as_the_latency_model_does(views_artifact: Path) -> None:
    manifest = load_artifact(views_artifact)
    one = build_onnx_detector(views_artifact, manifest, "cpu", Runtime(engine="openvino"))
    two = build_onnx_detector(views_artifact, manifest, "cpu", Runtime(engine="openvino", batch_streams=2))
    assert len(two.lanes) == 2 and all(len(lane.views) == 3 for lane in two.lanes)
    requests = [DetectRequest(noise(*size, k), 0.05, 0.3, 300, 640, 0.0, "auto") for k, size in enumerate(SHAPES)]
    expected = one.predict(requests)
    for _ in range(2):  # the lanes' first inferences one after another, then at once
        found = two.predict(requests)
        assert [len(f) for f in found] == [len(e) for e in expected] and sum(map(len, expected)) > 5
        for faces, wanted in zip(found, expected, strict=True):
            for face, want in zip(faces, wanted, strict=True):
                assert face.box == pytest.approx(want.box, abs=0.5)


@pytest.mark.parametrize(("views", "count"), [("true", 3), ("false", 1)])
def test_the_service_serves_the_views_unless_the_setting_turns_them_off(
    views_artifact: Path, monkeypatch: pytest.MonkeyPatch, views: str, count: int
) -> None:
    monkeypatch.setenv("DEEPCANVAS_DETECTOR_VIEWS", views)
    monkeypatch.setenv("DEEPCANVAS_DETECTOR_BACKEND", "onnx")
    manifest = load_artifact(views_artifact)
    plan = network_plan("detector", Settings())
    detector = plan.build(views_artifact, manifest, "cpu")
    assert len(detector.views) == count and (detector.views[0].priors is None) == (count == 1)
    said = "views 640x480, 512x512, 480x640" if count == 3 else "the authors' graphs alone"
    assert plan.engine is not None and said in plan.engine(manifest).reason  # what GET /models and the log say
    assert view_graphs(without_views(manifest)) is None and view_graphs(manifest) is not None
    assert served_manifest("detector", manifest, Settings(detector_views=True)) is manifest


@pytest.mark.shared
@pytest.mark.parametrize("name", ["lenna.jpg", "brad_pitt.jpg"])
def test_a_square_portraits_face_is_found_where_v5_finds_it(views_artifact: Path, shared_dir: Path, name: str) -> None:
    """An independent check of the square view's priors: the same face as the authors' 640×480 reading."""
    with Image.open(shared_dir / "data/style-transfer/content" / name) as opened:
        photo = opened.convert("RGB")
    assert photo.width == photo.height
    request = DetectRequest(photo, 0.7, 0.3, 300, 640, 24.0, "auto")
    runtime = Runtime(engine="onnxruntime")
    [[old]] = build_onnx_detector(V5, load_artifact(V5), "cpu", runtime).predict([request])
    [[new]] = build_onnx_detector(views_artifact, load_artifact(views_artifact), "cpu", runtime).predict([request])
    assert iou(old.box, new.box) > 0.75 and new.score > 0.9


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inner = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inner / (area - inner)


def test_a_malformed_views_entry_is_an_artifact_error(views_artifact: Path) -> None:
    manifest = load_artifact(views_artifact)
    broken = manifest.model_copy(update={"hyperparameters": {**manifest.hyperparameters, "views": {"shapes": []}}})
    with pytest.raises(ArtifactError, match="malformed views"):
        view_graphs(broken)
    entry = json.loads(json.dumps(manifest.hyperparameters["views"])) | {"shapes": [[512, 512]]}
    without_documented = manifest.model_copy(update={"hyperparameters": {**manifest.hyperparameters, "views": entry}})
    with pytest.raises(ArtifactError, match="omit the input 640x480"):
        build_onnx_detector(views_artifact, without_documented, "cpu", Runtime(engine="onnxruntime"))
