"""RfbFaceDetector: the imported Ultra-Light RFB network (``architecture: ultralight-rfb``) behind ``/detect``.

Torch-free: the artifact ships the authors' ONNX file (fixed input, priors decoded inside), so it runs on
ONNX Runtime or OpenVINO only; the service's torch backend runs it on ONNX Runtime and says so
(``backend``). The same post-processing contract as the YOLO predictors: ``conf`` (here the network's face
probability), NMS at the request's IoU, ``max_det``, boxes in the photo's pixels, ``min_size`` on them, and
tiling of large photos (``models.detector.tiling``). An artifact may also ship a smaller, coarser export
(``coarse.onnx``, the authors' RFB-320): it reads the whole photo once more at its smaller input, where a
face that fills a close-up portrait fits the network's largest priors (at 640 px such a face outgrows them
and is missed); only its boxes of at least ``min_share`` of the photo's shorter side join the merge. A thumbnail
that the coarse export reads at nearly its own resolution is read by it alone (``reads_alone``): enlarged to the
fine input it holds no more detail, and on the validation photos shrunk to thumbnails the coarse export alone
found the same faces of the served ``min_size`` in a quarter of the time.
On OpenVINO with ``Runtime.batch_streams`` > 1, a batch of two or more photos is split across that many
lanes: each a detector on its own infer request of a second, multi-stream compiled model, run at once (two
streams of one core each get more photos through two cores than one two-thread stream: 20-25 % less time per
photo in batches of 4 here). A single photo keeps the latency-compiled model and both cores.
An artifact with view graphs (``views`` in its manifest, ``rfb_import.add_views``) lists input shapes beside
the documented 640×480: each photo (or tile) is stretched to the shape nearest its own aspect, so a square or
upright photo is no longer squeezed into 4:3, and a square one costs a 512×512 run instead of a 640×480 one;
the coarse pass reads the same view halved. Thumbnails keep the documented coarse input.
Boxes are served in the convention the manifest records (``hyperparameters.box_convention.served``): the
teacher's WIDER-FACE framing mapped to the hand-drawn face-boxes framing the YOLO detectors learnt, so either
architecture frames a face alike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.detector.boxes import greedy_nms
from models.detector.pseudo_labels import BoxConvention
from models.detector.rfb import (
    ARCHITECTURE,
    PIXELS,
    Priors,
    PriorSpec,
    RfbRun,
    reduced_view,
    rfb_forward,
    rfb_priors,
    rfb_view,
)
from models.detector.tiling import at_least, detect_tiled, merge_detections
from models.detector.types import COARSE_ONNX_FILE, ONNX_FILE, Detection, DetectRequest
from models.onnx_backend import OpenVinoSession, Runtime, open_lanes, open_session

SCORE_FLOOR = 0.01  # below this the network's softmax says background; never worth an NMS pass
# A thumbnail that the coarse export reads at nearly its own resolution (each axis kept at least COARSE_ALONE_SCALE)
# is read by the coarse export alone, when the request returns no face under COARSE_ALONE_MIN_SIZE pixels: the
# fine input would only enlarge pixels the coarse one already sees whole (docs/detector.md, "Thumbnails").
COARSE_ALONE_SCALE = 0.9
COARSE_ALONE_MIN_SIZE = 24.0  # the served default min_size, at which the validation measured it


def ships_as_onnx(manifest: Manifest) -> bool:
    """Whether an artifact's network exists only as its ONNX file (no torch weights to export from)."""
    return manifest.architecture == ARCHITECTURE


def served_convention(manifest: Manifest) -> BoxConvention:
    """The mapping from the network's box framing to the served one, as the manifest records it."""
    mapping = manifest.hyperparameters.get("box_convention", {}).get("mapping", {})
    return BoxConvention(**mapping) if mapping else BoxConvention()


def recorded_input(manifest: Manifest, spec: dict[str, object]) -> tuple[int, int]:
    """(width, height) recorded in ``spec`` (the manifest's hyperparameters, or its ``coarse`` entry)."""
    width, height = spec.get("input_width"), spec.get("input_height")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise ArtifactError(f"{manifest.name}/{manifest.version}: the manifest records no input width and height")
    return width, height


@dataclasses.dataclass(frozen=True)
class Coarse:
    """The second, smaller export: its run, input size and the share of the shorter side its boxes need.

    ``priors``: the input size's priors when ``run`` is a view graph (None: the graph decodes its boxes).
    """

    run: RfbRun
    width: int
    height: int
    min_share: float
    priors: Priors | None = None


@dataclasses.dataclass(frozen=True)
class View:
    """One input shape the fine export reads a photo at (``priors`` as ``Coarse``'s), and its coarse pass."""

    run: RfbRun
    width: int
    height: int
    priors: Priors | None
    coarse: Coarse | None


@dataclasses.dataclass(frozen=True)
class ViewGraphs:
    """An artifact's view graphs as its manifest lists them (``rfb_import.add_views``)."""

    file: str
    coarse_file: str
    shapes: tuple[tuple[int, int], ...]
    coarse_ratio: int
    spec: PriorSpec


def view_graphs(manifest: Manifest) -> ViewGraphs | None:
    """The manifest's view graphs, if it lists any; ``ArtifactError`` when the entry is malformed."""
    entry = manifest.hyperparameters.get("views")
    if entry is None:
        return None
    try:
        shapes = tuple((int(width), int(height)) for width, height in entry["shapes"])
        graphs = ViewGraphs(
            str(entry["file"]),
            str(entry["coarse_file"]),
            shapes,
            int(entry["coarse_ratio"]),
            PriorSpec.from_dict(entry["priors"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactError(f"{manifest.name}/{manifest.version}: malformed views entry ({error})") from error
    if not shapes or graphs.coarse_ratio < 1:
        raise ArtifactError(f"{manifest.name}/{manifest.version}: the views entry lists no shape")
    return graphs


def without_views(manifest: Manifest) -> Manifest:
    """``manifest`` as its authors' graphs alone would be served: every photo stretched to the documented input."""
    hyperparameters = {key: value for key, value in manifest.hyperparameters.items() if key != "views"}
    return manifest.model_copy(update={"hyperparameters": hyperparameters})


class RfbFaceDetector:
    """The RFB detector on an ONNX engine; one instance serves one thread at a time."""

    def __init__(
        self,
        run: RfbRun,
        manifest: Manifest,
        width: int,
        height: int,
        backend: str,
        coarse: Coarse | None = None,
        priors: Priors | None = None,
        views: Sequence[View] = (),
    ) -> None:
        """``run`` at ``width`` × ``height`` is the documented input (thumbnails and tiling go by it); ``views``:
        the other input shapes a photo may be read at, nearest its aspect (``view_for``)."""
        assert manifest.labels == ["face"], "the RFB detector finds one class: face"
        self.run = run
        self.manifest = manifest
        self.labels = list(manifest.labels)
        self.width, self.height = width, height
        self.convention = served_convention(manifest)
        self.backend = backend
        self.coarse = coarse
        self.views = [View(run, width, height, priors, coarse), *views]
        self.lanes: list[RfbFaceDetector] = []  # batches of 2+ split across these, each on its own thread
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_artifact(
        cls, folder: Path, manifest: Manifest, device: str = "cpu", runtime: Runtime | None = None, note: str = ""
    ) -> RfbFaceDetector:
        """Open the artifact's ``model.onnx`` on ``runtime``'s engine; ``note`` says why this engine, if asked."""
        if not ships_as_onnx(manifest) or manifest.task != "detect":
            raise ArtifactError(f"{manifest.name}/{manifest.version}: not an {ARCHITECTURE} detector")
        width, height = recorded_input(manifest, manifest.hyperparameters)
        runtime = runtime or Runtime()
        backend = runtime.engine + (f" ({note})" if note else "")
        coarse_spec = manifest.hyperparameters.get("coarse")
        coarse_spec = coarse_spec if isinstance(coarse_spec, dict) else None
        graphs = view_graphs(manifest)
        if graphs is not None and coarse_spec is None:
            raise ArtifactError(f"{manifest.name}/{manifest.version}: view graphs need a coarse export")
        shapes = list(graphs.shapes) if graphs else [(width, height)]
        if (width, height) in shapes:  # the documented input first: thumbnails and tiling go by it
            shapes.insert(0, shapes.pop(shapes.index((width, height))))
        else:
            raise ArtifactError(f"{manifest.name}/{manifest.version}: the views omit the input {width}x{height}")
        fine_file = graphs.file if graphs else ONNX_FILE
        coarse_file = graphs.coarse_file if graphs else COARSE_ONNX_FILE

        def coarse_size(shape: tuple[int, int]) -> tuple[int, int]:
            assert coarse_spec is not None
            if graphs is None:
                return recorded_input(manifest, coarse_spec)
            return shape[0] // graphs.coarse_ratio, shape[1] // graphs.coarse_ratio

        def priors(shape: tuple[int, int]) -> Priors | None:
            return rfb_priors(*shape, graphs.spec) if graphs else None

        def views(open_one: Callable[[str, tuple[int, int]], RfbRun]) -> list[View]:
            built = []
            for shape in shapes:
                coarse = None
                if coarse_spec is not None:
                    small = coarse_size(shape)
                    coarse = Coarse(
                        open_one(coarse_file, small), *small, float(coarse_spec["min_share"]), priors(small)
                    )
                built.append(View(open_one(fine_file, shape), *shape, priors(shape), coarse))
            return built

        @cache
        def opened(path: str, shape: tuple[int, int] | None) -> RfbRun:
            return open_session(folder, manifest, path, device, runtime, PIXELS, shape).run_named

        def session(path: str, shape: tuple[int, int]) -> RfbRun:
            # OpenVINO compiles each shape statically; ONNX Runtime runs one session of a view graph at any size
            return opened(path, shape if graphs and runtime.engine == "openvino" else None)

        own = views(session)
        if coarse_spec is not None and own[0].coarse is not None:
            recorded = recorded_input(manifest, coarse_spec)
            if (own[0].coarse.width, own[0].coarse.height) != recorded:
                raise ArtifactError(f"{manifest.name}/{manifest.version}: the views' coarse ratio misses {recorded}")
        detector = cls(own[0].run, manifest, width, height, backend, own[0].coarse, own[0].priors, own[1:])

        @cache
        def lane_sessions(path: str, shape: tuple[int, int]) -> list[OpenVinoSession]:
            return open_lanes(folder, manifest, path, device, runtime, PIXELS, shape if graphs else None)

        for index in range(len(lane_sessions(fine_file, shapes[0]))):
            lane = views(lambda path, shape: lane_sessions(path, shape)[index].run_named)  # noqa: B023
            detector.lanes.append(
                cls(lane[0].run, manifest, width, height, backend, lane[0].coarse, lane[0].priors, lane[1:])
            )
        return detector

    def eval(self) -> RfbFaceDetector:
        return self  # an inference session has no training mode

    def input_size(self, imgsz: int) -> int:
        """The network's input width: fixed by the export, whatever ``imgsz`` asks."""
        return self.width

    def predict(self, batch: list[DetectRequest]) -> list[list[Detection]]:
        """Detections for each request, in order; large photos also as tiles; one run per view (batch 1).

        With lanes, a batch of two or more is split into contiguous parts, one per lane, run at once.
        """
        if len(batch) < 2 or not self.lanes:
            return self.predict_here(batch)
        size = -(-len(batch) // len(self.lanes))
        parts = [batch[start : start + size] for start in range(0, len(batch), size)]
        if self._pool is None:
            # The lanes' first inferences one after another: OpenVINO's Python binding initialises statics on
            # a first inference, and two at once in a fresh process deadlocked on the GIL in a probe.
            found = [
                detections
                for lane, part in zip(self.lanes, parts, strict=False)
                for detections in lane.predict_here(part)
            ]
            self._pool = ThreadPoolExecutor(len(self.lanes) - 1, thread_name_prefix="rfb-lane")
            return found
        rest = zip(self.lanes[1:], parts[1:], strict=False)  # a small batch may leave lanes idle
        # each in a copy of this thread's context: the request ids the service's log lines carry go along
        futures = [self._pool.submit(copy_context().run, lane.predict_here, part) for lane, part in rest]
        found = self.lanes[0].predict_here(parts[0])
        for future in futures:
            found += future.result()
        return found

    def reads_alone(self, request: DetectRequest) -> bool:
        """Whether the coarse export alone reads this photo (a thumbnail; module constants)."""
        if self.coarse is None or request.min_size < COARSE_ALONE_MIN_SIZE:
            return False
        width, height = request.image.size
        return min(self.coarse.width / width, self.coarse.height / height) >= COARSE_ALONE_SCALE

    def predict_here(self, batch: list[DetectRequest]) -> list[list[Detection]]:
        """``predict`` on this detector's own session, in the calling thread; thumbnails on the coarse export alone."""
        alone = [self.reads_alone(request) for request in batch]
        if not any(alone):
            return self.predict_both(batch)
        coarse = self.coarse
        assert coarse is not None
        rest = iter(self.predict_both([r for r, thumbnail in zip(batch, alone, strict=True) if not thumbnail]))
        return [
            self.detect(coarse, request) if thumbnail else next(rest)
            for request, thumbnail in zip(batch, alone, strict=True)
        ]

    def view_for(self, image: Image.Image) -> View:
        """The input shape nearest the image's aspect (in log ratio); the documented one on a tie."""
        aspect = math.log(image.width / image.height)
        return min(self.views, key=lambda view: abs(math.log(view.width / view.height) - aspect))

    def predict_both(self, batch: list[DetectRequest]) -> list[list[Detection]]:
        """The fine export over every view (whole photo or tiles), then the coarse one's large faces merged in."""
        if not batch:
            return []
        if self.coarse is None:
            return detect_tiled(batch, lambda _: self.width, lambda views: [self.detect_one(r) for r in views])
        # each whole view's shape and the photo at its fine input, which the coarse pass reduces
        inputs: dict[int, tuple[View, np.ndarray]] = {}

        def fine(request: DetectRequest) -> list[Detection]:
            view = self.view_for(request.image)
            resized = rfb_view(request.image, view.width, view.height)
            inputs[id(request.image)] = (view, resized)
            return self.detect(view, request, resized)

        found = detect_tiled(
            [dataclasses.replace(r, min_size=0.0) for r in batch],
            lambda _: self.width,
            lambda views: [fine(view) for view in views],
        )
        return [
            self.with_coarse(request, fine_found, *inputs.get(id(request.image), (self.view_for(request.image), None)))
            for request, fine_found in zip(batch, found, strict=True)
        ]

    def with_coarse(
        self, request: DetectRequest, found: list[Detection], view: View, fine_view: np.ndarray | None
    ) -> list[Detection]:
        """``found`` and the coarse pass's large faces (``view``'s coarse export), merged by NMS; then ``min_size``."""
        coarse = view.coarse
        assert coarse is not None
        least = coarse.min_share * min(request.image.size)
        reduced = None if fine_view is None else reduced_view(fine_view, coarse.width, coarse.height)
        large = self.detect(coarse, dataclasses.replace(request, min_size=least), reduced)
        # found is already merged (one view's NMS, or the tiles' merge): only coarse boxes call for another
        merged = merge_detections(found + large, request.iou, request.max_det) if large else found
        return at_least(merged, request.min_size)

    def detect_one(self, request: DetectRequest) -> list[Detection]:
        return self.detect(self.view_for(request.image), request)

    def detect(self, net: View | Coarse, request: DetectRequest, view: np.ndarray | None = None) -> list[Detection]:
        """One pass of ``net`` over the request's image (or its ready ``view``): NMS, served framing, ``min_size``."""
        floor = max(request.conf, SCORE_FLOOR)
        boxes, scores = rfb_forward(net.run, request.image, net.width, net.height, floor, view, net.priors)
        order = np.argsort(-scores, kind="stable")
        boxes, scores = boxes[order], scores[order]
        kept = greedy_nms(boxes, request.iou, request.max_det)
        width, height = request.image.size
        served = np.clip(self.convention.apply(boxes[kept]), 0, [width, height, width, height])  # (n, 4)
        return [
            Detection(box=(x1, y1, x2, y2), score=float(score), label=self.labels[0])
            for (x1, y1, x2, y2), score in zip(served.tolist(), scores[kept].tolist(), strict=True)
            if min(x2 - x1, y2 - y1) >= request.min_size
        ]

    def warmup(self) -> None:
        """A first inference on every compiled network: a small photo, then one of each view's shape."""
        images = [Image.new("RGB", (64, 48), (114, 114, 114))]
        images += [Image.new("RGB", (view.width, view.height), (114, 114, 114)) for view in self.views]
        for image in images:
            request = DetectRequest(image=image, conf=0.25, iou=0.3, max_det=1, imgsz=self.width)
            self.predict([request])
            if self.lanes:
                self.predict([request] * len(self.lanes))  # every lane's first inference, out of the first batch's way
