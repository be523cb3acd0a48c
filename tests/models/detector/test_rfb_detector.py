"""The imported RFB detector: its import writes a self-describing artifact, and it serves the detector contract."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from PIL import Image

from app.model_plans import build_detector, build_onnx_detector
from app.request_ids import current_request_id
from models.artifact import ArtifactError, Manifest, load_artifact, sha256_file
from models.detector.rfb import ARCHITECTURE
from models.detector.rfb_import import import_rfb
from models.detector.rfb_predictor import Coarse, RfbFaceDetector
from models.detector.types import Detection, DetectRequest
from models.onnx_backend import Runtime

WEIGHTS = Path("data/weights/ultralight-face-rfb")


def fake_manifest(mapping: dict[str, float] | None = None) -> Manifest:
    return Manifest.model_validate(
        {
            "name": "face-detector",
            "version": "vtest",
            "task": "detect",
            "architecture": ARCHITECTURE,
            "hyperparameters": {"input_width": 64, "input_height": 48, "box_convention": {"mapping": mapping or {}}},
            "labels": ["face"],
            "files": [],
            "provenance": {"method": "test"},
        }
    )


class FakeNetwork:
    """Three priors: a sure face in the top-left quarter, a near-duplicate of it, and a weak one."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def __call__(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        self.inputs.append(tensor)
        scores = np.array([[[0.05, 0.95], [0.2, 0.8], [0.6, 0.4]]], dtype=np.float32)
        boxes = np.array([[[0.0, 0.0, 0.5, 0.5], [0.01, 0.0, 0.5, 0.5], [0.5, 0.5, 0.6, 0.6]]], dtype=np.float32)
        return {"scores": scores, "boxes": boxes}


def detector(mapping: dict[str, float] | None = None) -> tuple[RfbFaceDetector, FakeNetwork]:
    network = FakeNetwork()
    return RfbFaceDetector(network, fake_manifest(mapping), 64, 48, "fake"), network


def test_the_photo_is_stretched_to_the_input_and_normalised_as_its_authors_do() -> None:
    from models.detector.rfb import PIXELS

    rfb, network = detector()
    rfb.predict([DetectRequest(Image.new("RGB", (200, 100), (127, 255, 0)), 0.5, 0.3, 10, 640)])
    pixels = network.inputs[0]  # the session's input: the view's pixels, normalised by the session
    assert pixels.shape == (1, 48, 64, 3) and pixels.dtype == np.uint8
    tensor = PIXELS.normalise(pixels)
    assert tensor.shape == (1, 3, 48, 64) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0, :, 7, 9], [0.0, 1.0, -127 / 128])


def test_boxes_come_back_in_photo_pixels_after_conf_and_nms() -> None:
    rfb, _ = detector()
    [found] = rfb.predict([DetectRequest(Image.new("RGB", (200, 100)), 0.5, 0.3, 10, 640)])
    assert [d.score for d in found] == pytest.approx([0.95])  # the duplicate suppressed, the weak one under conf
    assert found[0].box == pytest.approx((0.0, 0.0, 100.0, 50.0)) and found[0].label == "face"


def test_min_size_and_max_det_hold_as_for_yolo() -> None:
    rfb, _ = detector()
    photo = Image.new("RGB", (200, 100))
    assert rfb.predict([DetectRequest(photo, 0.3, 0.3, 10, 640, min_size=60.0)]) == [[]]  # 50 px: too small
    assert len(rfb.predict([DetectRequest(photo, 0.3, 0.9, 1, 640)])[0]) == 1


def test_the_served_boxes_follow_the_manifests_box_convention() -> None:
    rfb, _ = detector({"scale_w": 1.0, "scale_h": 0.5, "shift_x": 0.0, "shift_y": 0.25})
    [found] = rfb.predict([DetectRequest(Image.new("RGB", (200, 100)), 0.9, 0.3, 10, 640)])
    assert found[0].box == pytest.approx((0.0, 25.0, 100.0, 50.0))  # half as tall, centre a quarter lower


class CloseUpNetwork:
    """The coarse export: one sure face filling most of the photo, and one small face it also sees."""

    def __call__(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        scores = np.array([[[0.1, 0.9], [0.1, 0.9]]], dtype=np.float32)
        boxes = np.array([[[0.1, 0.1, 0.9, 0.9], [0.0, 0.0, 0.1, 0.1]]], dtype=np.float32)
        return {"scores": scores, "boxes": boxes}


def test_the_coarse_pass_adds_the_faces_that_fill_the_photo_and_only_those() -> None:
    rfb = RfbFaceDetector(FakeNetwork(), fake_manifest(), 64, 48, "fake", Coarse(CloseUpNetwork(), 32, 24, 0.3))
    [found] = rfb.predict([DetectRequest(Image.new("RGB", (200, 100)), 0.5, 0.3, 10, 640, min_size=24.0)])
    boxes = sorted(d.box for d in found)
    # the fine pass's face, and the coarse pass's close-up (80 px of 100); its 10 px face is below 0.3 x 100
    assert boxes == [pytest.approx((0.0, 0.0, 100.0, 50.0)), pytest.approx((20.0, 10.0, 180.0, 90.0))]


def thumbnail_detector() -> tuple[RfbFaceDetector, FakeNetwork]:
    """The shipped inputs (fine 640×480, coarse 320×240) on fake networks."""
    network = FakeNetwork()
    return RfbFaceDetector(network, fake_manifest(), 640, 480, "fake", Coarse(CloseUpNetwork(), 320, 240, 0.3)), network


def test_a_thumbnail_is_read_by_the_coarse_export_alone_with_its_every_face_of_min_size() -> None:
    rfb, fine = thumbnail_detector()
    photo = Image.new("RGB", (300, 220))  # the coarse view enlarges it: nothing for the fine one to add
    [found] = rfb.predict([DetectRequest(photo, 0.5, 0.3, 10, 640, min_size=24.0)])
    assert fine.inputs == []  # the fine export never ran
    # the close-up (240×176 px) whatever its share of the photo; the 30×22 px face is under min_size
    assert [d.box for d in found] == [pytest.approx((30.0, 22.0, 270.0, 198.0))]


@pytest.mark.parametrize(
    "size, min_size",
    [((300, 220), 0.0), ((300, 220), 23.0), ((356, 200), 24.0), ((300, 267), 24.0), ((1000, 800), 24.0)],
)
def test_both_exports_read_a_photo_the_coarse_one_would_shrink_or_a_request_for_smaller_faces(
    size: tuple[int, int], min_size: float
) -> None:
    rfb, fine = thumbnail_detector()
    assert not rfb.reads_alone(DetectRequest(Image.new("RGB", size), 0.5, 0.3, 10, 640, min_size=min_size))
    rfb.predict([DetectRequest(Image.new("RGB", size), 0.5, 0.3, 10, 640, min_size=min_size)])
    assert len(fine.inputs) == 1


def test_a_batch_of_thumbnails_and_photos_answers_each_in_order() -> None:
    rfb, fine = thumbnail_detector()
    thumbnail, photo = Image.new("RGB", (300, 220)), Image.new("RGB", (1000, 800))
    batch = [DetectRequest(image, 0.5, 0.3, 10, 640, min_size=24.0) for image in (thumbnail, photo, thumbnail)]
    alone = rfb.predict_here(batch[:1])[0]
    both = rfb.predict_here(batch[1:2])[0]
    assert rfb.predict(batch) == [alone, both, alone]
    assert alone != both and len(fine.inputs) == 2  # the fine export read the photo (twice here), never a thumbnail


def test_without_a_coarse_export_the_close_up_is_not_invented() -> None:
    rfb, _ = detector()
    [found] = rfb.predict([DetectRequest(Image.new("RGB", (200, 100)), 0.5, 0.3, 10, 640, min_size=24.0)])
    assert [d.box for d in found] == [pytest.approx((0.0, 0.0, 100.0, 50.0))]


class RecordingLane:
    """A lane that finds nothing and records, for each batch, the request id and the thread it ran under."""

    def __init__(self, name: str, ran: list[tuple[str, str | None, str, int]]) -> None:
        self.name, self.ran = name, ran

    def predict_here(self, batch: list[DetectRequest]) -> list[list[Detection]]:
        self.ran.append((self.name, current_request_id.get(), threading.current_thread().name, len(batch)))
        return [[] for _ in batch]


def test_each_lane_works_under_the_callers_request_id_first_in_turn_then_at_once() -> None:
    rfb, network = detector()
    ran: list[tuple[str, str | None, str, int]] = []
    rfb.lanes = [cast(RfbFaceDetector, RecordingLane(name, ran)) for name in ("first", "second")]
    batch = [DetectRequest(Image.new("RGB", (64, 48)), 0.5, 0.3, 10, 640)] * 3
    caller = threading.current_thread().name
    token = current_request_id.set("a,b")  # what a batch of two requests' work runs under (app.manager)
    try:
        assert rfb.predict(batch) == [[], [], []]  # the lanes' first inferences: one after another, here
        in_turn = ran[:]
        assert rfb._pool is not None  # then a pool for the lanes past the first
        assert rfb.predict(batch) == [[], [], []]
        at_once = ran[len(in_turn) :]
    finally:
        current_request_id.reset(token)
        if rfb._pool is not None:
            rfb._pool.shutdown()
    assert current_request_id.get() is None and network.inputs == []  # the detector's own session never ran
    for run in (in_turn, at_once):
        assert sorted((name, size) for name, _, _, size in run) == [("first", 2), ("second", 1)]  # contiguous parts
    assert [request_id for _, request_id, _, _ in ran] == ["a,b"] * 4  # the pool's thread too
    assert {thread for _, _, thread, _ in in_turn} == {caller}
    threads = {name: thread for name, _, thread, _ in at_once}
    assert threads["first"] == caller and threads["second"] != caller  # two threads at once
    assert threads["second"].startswith("rfb-lane")


@pytest.mark.shared
def test_a_coarse_export_no_smaller_than_the_main_one_is_refused(shared_dir: Path, tmp_path: Path) -> None:
    weights = shared_dir / WEIGHTS
    with pytest.raises(ArtifactError, match="smaller input"):
        import_rfb(
            weights / "version-RFB-320.onnx",
            weights / "LICENSE",
            tmp_path / "v",
            coarse_file=weights / "version-RFB-640.onnx",
        )


def test_an_rfb_manifest_without_its_input_size_is_refused(tmp_path: Path) -> None:
    manifest = fake_manifest().model_copy(update={"hyperparameters": {}})
    with pytest.raises(ArtifactError, match="input width and height"):
        RfbFaceDetector.from_artifact(tmp_path, manifest)


@pytest.fixture(scope="module")
def rfb_artifact(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rfb") / "v4"
    weights = shared_dir / WEIGHTS
    import_rfb(weights / "version-RFB-640.onnx", weights / "LICENSE", out)
    return out


@pytest.mark.shared
def test_the_import_hashes_the_licence_and_records_the_source(rfb_artifact: Path, shared_dir: Path) -> None:
    manifest = load_artifact(rfb_artifact)  # verifies every listed file's hash
    assert {entry.path for entry in manifest.files} == {"LICENSE", "model.onnx"}
    assert (rfb_artifact / "LICENSE").read_bytes() == (shared_dir / WEIGHTS / "LICENSE").read_bytes()
    source = manifest.hyperparameters["source_sha256"]
    assert source["onnx"] == sha256_file(shared_dir / WEIGHTS / "version-RFB-640.onnx")
    assert manifest.architecture == ARCHITECTURE and manifest.hyperparameters["input_width"] == 640
    assert json.loads((rfb_artifact / "manifest.json").read_text())["defaults"]["tile"] == "auto"


@pytest.mark.shared
@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_the_imported_detector_finds_the_one_face_of_a_portrait(
    rfb_artifact: Path, shared_dir: Path, engine: str
) -> None:
    manifest = load_artifact(rfb_artifact)
    rfb = build_onnx_detector(rfb_artifact, manifest, "cpu", Runtime(engine=engine))  # type: ignore[arg-type]
    with Image.open(shared_dir / "data/style-transfer/content/brad_pitt.jpg") as photo:
        [found] = rfb.predict([DetectRequest(photo.convert("RGB"), 0.7, 0.3, 10, 640, 24.0, "auto")])
    assert len(found) == 1 and found[0].score > 0.9
    x1, y1, x2, y2 = found[0].box
    assert 150 < (x1 + x2) / 2 < 350 and 100 < (y1 + y2) / 2 < 350  # the face is in the middle of the photo


@pytest.fixture(scope="module")
def coarse_artifact(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rfb") / "v5"
    weights = shared_dir / WEIGHTS
    import_rfb(weights / "version-RFB-640.onnx", weights / "LICENSE", out, coarse_file=weights / "version-RFB-320.onnx")
    return out


CLOSE_UP = "data/faces-gender/portraits/male/portrait-72293_1280.jpg"  # 256×225, the face fills it


@pytest.mark.shared
def test_a_face_filling_a_close_up_is_found_with_the_coarse_export_and_missed_without(
    rfb_artifact: Path, coarse_artifact: Path, shared_dir: Path
) -> None:
    manifest = load_artifact(coarse_artifact)
    assert {entry.path for entry in manifest.files} == {"LICENSE", "model.onnx", "coarse.onnx"}
    coarse = manifest.hyperparameters["coarse"]
    assert coarse["source_sha256"] == sha256_file(shared_dir / WEIGHTS / "version-RFB-320.onnx")
    assert (coarse["input_width"], coarse["input_height"]) == (320, 240)
    with Image.open(shared_dir / CLOSE_UP) as opened:
        photo = opened.convert("RGB")
    request = DetectRequest(photo, 0.6, 0.3, 10, 640, 24.0, "auto")
    without = build_onnx_detector(rfb_artifact, load_artifact(rfb_artifact), "cpu").predict([request])[0]
    [found] = build_onnx_detector(coarse_artifact, manifest, "cpu").predict([request])
    large = [d for d in found if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) > 120]
    assert not [d for d in without if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) > 120]
    assert len(large) == 1
    x1, y1, x2, y2 = large[0].box
    assert 80 < (x1 + x2) / 2 < 180 and 60 < (y1 + y2) / 2 < 170  # the face is in the middle of the photo


@pytest.mark.shared
def test_on_two_streams_a_batch_is_split_across_two_lanes_at_once_with_the_same_detections(
    coarse_artifact: Path, shared_dir: Path
) -> None:
    manifest = load_artifact(coarse_artifact)
    one = build_onnx_detector(coarse_artifact, manifest, "cpu", Runtime(engine="openvino"))
    two = build_onnx_detector(coarse_artifact, manifest, "cpu", Runtime(engine="openvino", batch_streams=2))
    assert not one.lanes and len(two.lanes) == 2 and all(lane.coarse is not None for lane in two.lanes)
    names = [CLOSE_UP, "data/style-transfer/content/brad_pitt.jpg", "data/style-transfer/content/lenna.jpg"]
    photos = []
    for name in names:
        with Image.open(shared_dir / name) as opened:
            photos.append(opened.convert("RGB"))
    requests = [DetectRequest(photo, 0.6, 0.3, 10, 640, 0.0) for photo in photos]
    ran: list[tuple[int, str, int]] = []
    seen_ids: list[str | None] = []  # the request id each lane's thread works under (its log lines carry it)
    for index, lane in enumerate(two.lanes):
        alone = lane.predict_here

        def recorded(batch: list[DetectRequest], index: int = index, alone=alone) -> list:  # type: ignore[no-untyped-def]
            ran.append((index, threading.current_thread().name, len(batch)))
            seen_ids.append(current_request_id.get())
            return alone(batch)

        lane.predict_here = recorded  # type: ignore[method-assign]
    expected = one.predict(requests)
    token = current_request_id.set("a,b")  # what a batch of two requests' work runs under (app.manager)
    try:
        assert two.predict(requests) == two.predict(requests)
    finally:
        current_request_id.reset(token)
    assert seen_ids == ["a,b"] * 4  # the second lane's thread too
    first, second = ran[:2], ran[2:]
    for run in (first, second):
        assert sorted((index, size) for index, _, size in run) == [(0, 2), (1, 1)]  # contiguous parts, one per lane
    assert len({thread for _, thread, _ in first}) == 1  # the lanes' first inferences one after another
    assert len({thread for _, thread, _ in second}) == 2  # then at once
    found = two.predict(requests)
    assert [len(f) for f in found] == [len(e) for e in expected] and sum(map(len, expected)) >= 3
    for faces, wanted in zip(found, expected, strict=True):
        for face, want in zip(faces, wanted, strict=True):
            assert face.box == pytest.approx(want.box, abs=0.5) and face.score == pytest.approx(want.score, abs=0.01)
    ran.clear()
    assert len(two.predict(requests[:1])[0]) == len(expected[0]) and not ran  # one photo: the latency model


@pytest.mark.shared
def test_onnx_runtime_keeps_one_session_whatever_the_streams(rfb_artifact: Path) -> None:
    runtime = Runtime(engine="onnxruntime", batch_streams=2)
    assert not build_onnx_detector(rfb_artifact, load_artifact(rfb_artifact), "cpu", runtime).lanes


@pytest.mark.shared
def test_the_torch_backend_runs_the_onnx_only_detector_on_onnxruntime_and_says_so(rfb_artifact: Path) -> None:
    rfb = build_detector(rfb_artifact, load_artifact(rfb_artifact), "cpu")
    assert isinstance(rfb, RfbFaceDetector)
    assert rfb.backend.startswith("onnxruntime") and "torch backend" in rfb.backend


@pytest.mark.shared
def test_the_imported_detector_runs_without_torch_installed(rfb_artifact: Path) -> None:
    import subprocess
    import sys
    import textwrap

    from tests.models.test_onnx_torch_free import REPO, WITHOUT_TORCH

    script = WITHOUT_TORCH + textwrap.dedent(
        f"""
        from pathlib import Path
        from PIL import Image
        from app.model_plans import build_onnx_detector
        from models.artifact import load_artifact
        from models.detector.types import DetectRequest
        from models.onnx_backend import Runtime
        folder = Path({str(rfb_artifact)!r})
        detector = build_onnx_detector(folder, load_artifact(folder), "cpu", Runtime(engine="openvino"))
        detector.predict([DetectRequest(Image.new("RGB", (1600, 900)), 0.5, 0.3, 10, 640, 24.0, "auto")])
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


@pytest.mark.parametrize("opencv", [True, False], ids=["opencv", "pillow"])
def test_the_coarse_view_is_the_fine_view_averaged_over_whole_blocks(
    opencv: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.detector import rfb

    if not opencv:
        monkeypatch.setattr(rfb, "cv2", None)
    elif rfb.cv2 is None:
        pytest.skip("OpenCV is not installed (the slim image's set)")
    fine = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    coarse = rfb.reduced_view(fine, 32, 24)
    assert coarse is not None and coarse.shape == (24, 32, 3) and coarse.dtype == np.uint8
    block = fine[10:12, 14:16, 1].astype(np.float64).mean()
    assert abs(int(coarse[5, 7, 1]) - block) <= 0.5 + 1e-9  # the block's mean, rounded
    assert rfb.reduced_view(fine, 30, 24) is None  # 64 is not a multiple of 30: the photo is resized instead


def test_opencv_stretches_only_where_its_resize_is_pillows() -> None:
    """OpenCV's bilinear resize for an enlarged or barely shrunk photo; Pillow's filter for a reduced one."""
    from models.detector import rfb

    if rfb.cv2 is None:
        pytest.skip("OpenCV is not installed (the slim image's set)")
    coarse = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    photo = Image.fromarray(coarse).resize((512, 512), Image.Resampling.BICUBIC)  # a smooth 512 px picture

    def pillow(image: Image.Image, width: int, height: int) -> np.ndarray:
        return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR)).astype(np.int16)

    enlarged = rfb.rfb_view(photo, 640, 480)  # 1.25 across, 0.94 down: OpenCV's
    difference = np.abs(enlarged.astype(np.int16) - pillow(photo, 640, 480))
    assert enlarged.shape == (480, 640, 3) and difference.max() <= 6 and difference.mean() < 0.5
    reduced = rfb.rfb_view(photo, 320, 240)  # halved: Pillow's, exactly
    assert np.array_equal(reduced, pillow(photo, 320, 240))


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_a_pixel_session_normalises_as_the_network_expects(rfb_artifact: Path, engine: str) -> None:
    """Both engines take the view's uint8 pixels and answer as the float network does on the normalised input."""
    from models.artifact import load_artifact
    from models.detector.rfb import PIXELS, SCORES_NAME, pixels_of, rfb_view
    from models.detector.types import ONNX_FILE
    from models.onnx_backend import Runtime, open_session

    manifest = load_artifact(rfb_artifact)
    width, height = manifest.hyperparameters["input_width"], manifest.hyperparameters["input_height"]
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8))
    view = rfb_view(photo, width, height)
    runtime = Runtime(engine=engine, precision="f32") if engine == "openvino" else Runtime()  # type: ignore[arg-type]
    pixel_session = open_session(rfb_artifact, manifest, ONNX_FILE, "cpu", runtime, PIXELS)
    float_session = open_session(rfb_artifact, manifest, ONNX_FILE, "cpu", runtime)
    pixels = pixels_of(view)
    assert pixels.dtype == np.uint8 and pixels.shape == (1, height, width, 3)
    expected = float_session.run_named(((pixels[0].astype(np.float32) - 127) / 128).transpose(2, 0, 1)[None])
    got = pixel_session.run_named(pixels)
    np.testing.assert_allclose(got[SCORES_NAME], expected[SCORES_NAME], atol=1e-4)
