"""Each painting's own manner (models/style/own_manner.py): the choice, the artifact entry, both predictors.

The artifact here is small and random: the starter's AdaIN networks (slim widths) with decoder-side matching at
strength 0, a fake compressed relu5_1 network (the content measure) and three generated 256 px reference photos.
Its reference (plain AdaIN) is the starter made with the same seed, so at manner 0 the ratios are exactly 1.
"""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from models.artifact import ArtifactError, Manifest, load_artifact, repack_artifact
from models.onnx_backend import Runtime
from models.style import commands
from models.style.adain import adaptive_instance_normalization
from models.style.adain_requests import AdainPredictor
from models.style.evaluate import evaluate_transfer, write_pair_table
from models.style.images import image_to_tensor
from models.style.importer import (
    REFERENCE_PHOTOS,
    REFERENCE_TERMS,
    attach_nst_network,
    attach_own_manner,
    plan_matching,
)
from models.style.network import VGGEncoder
from models.style.nst_network import NST_NETWORK_FILE
from models.style.onnx_predictor import OnnxStyleTransfer
from models.style.own_manner import (
    CONTENT_MEASURE_ONNX,
    MANNERS,
    OWN_KEY,
    REFERENCE_DECODER,
    SOFTEST,
    OwnManner,
    OwnMannerSettings,
    PaintingManners,
    applied,
    choose_manner,
    load_references,
    own_manner_settings,
    valid_grid,
)
from models.style.predictor import StyleTransfer, content_measure
from models.style.sizing import image_to_array, resize_for_network, to_served_size
from models.style.starter import he_initialised, make_untrained_style
from models.style.style_cache import StyleKey, style_key
from models.style.types import MATCHING_KEY, StylizeRequest, matching_settings
from tests.models.conftest import fake_relu5_1, picture

SLIM = (8, 16, 32, 64)
CPU = torch.device("cpu")
GRID = (0.0, 0.5, 1.0)
SOFT_GRID = (-0.5, 0.0, 0.5)  # a grid that goes below 0: alpha 0.5 at its lowest
BOUND = 1.3
MAX_SIDE = 96
Predictor = StyleTransfer | OnnxStyleTransfer


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: the slim networks gain nothing from two, and lose much when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- choose_manner -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratios", "manners", "bound", "expected"),
    [
        ([1.0, 1.2, 1.6], [0.0, 0.5, 1.0], 1.4, 0.75),  # halfway from 1.2 to 1.6: halfway from 0.5 to 1.0
        ([1.0, 1.1, 1.2, 2.0], [0.0, 0.2, 0.4, 0.8], 1.6, 0.6),  # an uneven grid: 0.4 + 0.5 * 0.4
        ([1.5, 1.2, 1.1], [0.0, 0.5, 1.0], 1.4, 0.0),  # the lowest (0 here) already exceeds: it, whatever follows
        ([1.0, 1.1, 1.3], [0.0, 0.5, 0.8], 1.4, 0.8),  # none exceeds: the grid's last manner
        ([1.0, 1.5, 1.2], [0.0, 0.5, 1.0], 1.4, 0.4),  # not monotone: stops at the first crossing (1.0 -> 1.5)
        ([1.0, 1.4, 1.6], [0.0, 0.5, 1.0], 1.4, 0.5),  # a ratio equal to the bound stays within it
        ([0.8, 1.0, 1.6], [-0.4, 0.0, 0.5], 0.9, -0.2),  # between a softer point and 0: halfway from -0.4 to 0
        ([0.7, 0.9, 1.0, 1.6], [-0.4, -0.2, 0.0, 0.4], 0.8, -0.3),  # between two softer points
        ([0.6, 0.8, 1.0, 1.2], [-0.6, -0.2, 0.0, 0.5], 1.1, 0.25),  # past 0: into the matching half
        ([1.5, 1.6, 2.0], [-0.4, 0.0, 0.4], 1.4, -0.4),  # even the softest exceeds: the grid's lowest, not 0
        ([0.7, 0.9, 1.0], [-0.4, -0.2, 0.0], 1.4, 0.0),  # none exceeds a grid that ends at 0: 0
    ],
    ids=[
        "interpolates",
        "uneven-grid",
        "zero",
        "last",
        "first-crossing",
        "at-the-bound",
        "soft-to-zero",
        "soft-to-soft",
        "soft-grid-matching",
        "softest",
        "soft-grid-last",
    ],
)
def test_choose_manner(ratios: list[float], manners: list[float], bound: float, expected: float) -> None:
    assert choose_manner(ratios, manners, bound) == pytest.approx(expected, abs=1e-12)


# --- applied and valid_grid ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "manner", "expected"),
    [
        (1.0, -0.4, (0.6, 0.0)),  # below 0: alpha times 1 + m, no matching
        (1.0, 0.0, (1.0, 0.0)),
        (1.0, 0.3, (1.0, 0.3)),  # from 0 up: alpha as asked, matching at alpha * m
        (1.0, 1.0, (1.0, 1.0)),
        (0.5, -0.4, (0.3, 0.0)),
        (0.5, 0.0, (0.5, 0.0)),
        (0.5, 0.3, (0.5, 0.15)),
        (0.5, 1.0, (0.5, 0.5)),
    ],
)
def test_applied_softens_below_zero_and_matches_from_zero(
    alpha: float, manner: float, expected: tuple[float, float]
) -> None:
    assert applied(alpha, manner) == expected


@pytest.mark.parametrize(
    "grid",
    [MANNERS, (SOFTEST, 0.0), (-0.9, 0.0), (0.0, 1.0), (0, 1), [-0.5, 0.0, 0.5], (-0.4, 0.0)],
    ids=["default", "softest", "softest-literal", "zero-to-one", "ints", "list", "ends-at-zero"],
)
def test_valid_grid_accepts_grids_through_zero(grid: tuple[float, ...]) -> None:
    assert valid_grid(grid)


@pytest.mark.parametrize(
    "grid",
    [
        (-0.4, -0.2),  # no 0
        (0.2, 0.4),  # no 0 either
        (-0.95, 0.0),  # below SOFTEST
        (-1.0, 0.0, 0.5),
        (-0.2, -0.4, 0.0),  # not ascending
        (0.0, 0.4, 0.2),
        (-0.2, 0.0, 0.0, 0.4),  # a repeat
        (False, 0.5),  # bools are no manners
        (0.0, True),
        (0.0,),  # one point is no grid
        (),
        (-0.4, 0.0, 1.2),  # above 1
        ("0", 1.0),
    ],
)
def test_valid_grid_refuses(grid: tuple[object, ...]) -> None:
    assert not valid_grid(grid)


# --- own_manner_settings -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listed_manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """A slim starter artifact that also lists one reference photo, ``reference_a.png``."""
    folder = tmp_path_factory.mktemp("listed") / "adain"
    make_untrained_style(folder, widths=SLIM)
    picture((256, 256), 1).save(folder / "reference_a.png")
    return repack_artifact(folder)


VALID = {"content_bound": 1.4, "manners": [0, 0.5, 1], "references": ["reference_a.png"]}


def test_a_valid_entry_is_read_as_floats(listed_manifest: Manifest) -> None:
    settings = own_manner_settings(listed_manifest, VALID | {"content_bound": 2})
    assert settings == OwnMannerSettings(2.0, (0.0, 0.5, 1.0), ("reference_a.png",))
    assert isinstance(settings.content_bound, float) and all(isinstance(m, float) for m in settings.manners)
    assert settings.as_entry() == {"content_bound": 2.0, "manners": [0.0, 0.5, 1.0], "references": ["reference_a.png"]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"content_bound": 0}, "content_bound"),
        ({"content_bound": -1.3}, "content_bound"),
        ({"content_bound": True}, "content_bound"),
        ({"content_bound": "1.3"}, "content_bound"),
        ({"content_bound": None}, "content_bound"),
        ({"manners": [0.2, 0.5, 1.0]}, "manners"),  # without 0
        ({"manners": [-0.4, -0.2]}, "manners"),  # without 0, below it
        ({"manners": [-0.95, 0.0, 0.5]}, "manners"),  # below SOFTEST
        ({"manners": [0.0, 0.8, 0.4]}, "manners"),  # not ascending
        ({"manners": [0.0, 0.5, 0.5]}, "manners"),  # a repeat
        ({"manners": [0.0, 0.5, 1.2]}, "manners"),  # above 1
        ({"manners": [0.0]}, "manners"),  # one manner is no grid
        ({"manners": [0.0, True]}, "manners"),
        ({"manners": "0,0.5"}, "manners"),
        ({"references": ["reference_b.png"]}, "references"),  # not among the artifact's files
        ({"references": []}, "references"),
        ({"references": "reference_a.png"}, "references"),
    ],
)
def test_a_malformed_own_manner_entry_is_an_artifact_error(
    listed_manifest: Manifest, change: dict[str, object], field: str
) -> None:
    with pytest.raises(ArtifactError, match=re.escape(f"{OWN_KEY}.{field}")):
        own_manner_settings(listed_manifest, VALID | change)


def test_an_entry_below_zero_is_read_and_one_without_zero_names_the_rule(listed_manifest: Manifest) -> None:
    settings = own_manner_settings(listed_manifest, VALID | {"manners": [-0.9, -0.4, 0, 0.5]})
    assert settings.manners == (-0.9, -0.4, 0.0, 0.5)
    with pytest.raises(
        ArtifactError, match=re.escape("manners must ascend through 0, from -0.9 to 1, not [-0.4, -0.2]")
    ):
        own_manner_settings(listed_manifest, VALID | {"manners": [-0.4, -0.2]})


def test_a_non_mapping_entry_is_an_artifact_error(listed_manifest: Manifest) -> None:
    with pytest.raises(ArtifactError, match="content_bound"):
        own_manner_settings(listed_manifest, [1.4, [0, 1], ["reference_a.png"]])


def test_reference_photos_must_be_256_px_squares(listed_manifest: Manifest, tmp_path: Path) -> None:
    settings = OwnMannerSettings(1.4, GRID, ("reference_a.png",))
    Image.new("RGB", (256, 128), (10, 20, 30)).save(tmp_path / "reference_a.png")
    with pytest.raises(ArtifactError, match="256 px square"):
        load_references(tmp_path, settings)
    picture((256, 256), 2).convert("L").save(tmp_path / "reference_a.png")  # grey: read as RGB
    photos = load_references(tmp_path, settings)
    assert photos.shape == (1, 3, 256, 256) and photos.dtype == np.float32
    assert photos.min() >= 0.0 and photos.max() <= 1.0 and np.array_equal(photos[0, 0], photos[0, 2])


# --- a small artifact with its own manner ---------------------------------------------------------------------


def record_matching(folder: Path, strength: float) -> Manifest:
    """``attach_matching`` without its ONNX export: ``attach_own_manner`` re-exports every ONNX file anyway."""
    manifest = load_artifact(folder)
    entry = plan_matching(folder, strength).as_entry()
    return repack_artifact(folder, hyperparameters=manifest.hyperparameters | {MATCHING_KEY: entry})


@dataclass(frozen=True)
class Built:
    reference: Path  # plain AdaIN: the starter (seed 0)
    matched: Path  # the same networks with decoder_matching (strength 0), no NST network
    measured: Path  # ... and the NST network: what own-manner takes
    own: Path  # ... and its own manner (BOUND, GRID), ONNX exported
    photos: Path  # three 256 px photos and their README.md
    loss_network: Path  # a vgg_normalised.pth layout for the evaluation


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("own-manner")
    reference, matched, measured, own = (root / name for name in ("reference", "matched", "measured", "own"))
    make_untrained_style(reference, widths=SLIM, seed=0)
    make_untrained_style(matched, widths=SLIM, seed=0)
    record_matching(matched, 0.0)
    shutil.copytree(matched, measured)
    (root / "LICENSE").write_text("MIT")
    attach_nst_network(measured, fake_relu5_1(root / "encoder_relu5_1.pth", SLIM), root / "LICENSE")
    photos = root / "photos"
    photos.mkdir()
    for index in range(3):
        picture((256, 256), 40 + index).save(photos / f"photo_{index}.png")
    (photos / "README.md").write_text("Generated for the tests.\n")
    shutil.copytree(measured, own)
    attach_own_manner(own, reference, BOUND, photos=photos, manners=GRID)
    loss_network = root / "vgg_normalised.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        torch.save(he_initialised(VGGEncoder(SLIM)).state_dict(), loss_network)
    return Built(reference, matched, measured, own, photos, loss_network)


@pytest.fixture(scope="module")
def softened(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``built.own``'s networks and photos with a grid that goes below 0 (``SOFT_GRID``), ONNX exported."""
    folder = tmp_path_factory.mktemp("soft") / "own"
    shutil.copytree(built.measured, folder)
    attach_own_manner(folder, built.reference, BOUND, photos=built.photos, manners=SOFT_GRID)
    return folder


def with_bound(source: Path, folder: Path, bound: float) -> Path:
    """A copy of the own-manner artifact ``source`` whose manifest records another content bound."""
    shutil.copytree(source, folder)
    hyperparameters = load_artifact(folder).hyperparameters
    matching = hyperparameters[MATCHING_KEY]
    entry = matching | {OWN_KEY: matching[OWN_KEY] | {"content_bound": bound}}
    repack_artifact(folder, hyperparameters=hyperparameters | {MATCHING_KEY: entry})
    return folder


def open_predictor(engine: str, folder: Path) -> Predictor:
    manifest = load_artifact(folder)
    if engine == "torch":
        return StyleTransfer.from_artifact(folder, manifest, CPU)
    return OnnxStyleTransfer.from_artifact(folder, manifest, "cpu", Runtime(threads=1))


def manners_of(predictor: Predictor) -> PaintingManners:
    assert predictor.painting_manners is not None
    return predictor.painting_manners


def never() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    pytest.fail("a painting was measured again")


def cached_ratios(predictor: Predictor, key: StyleKey) -> np.ndarray:
    """The painting's cached ratios (a hit in the cache's counts); fails when they were never measured."""
    return manners_of(predictor).ratios.get(key, lambda: pytest.fail("the painting's ratios were never measured"))


def request(style: Image.Image, manner: float | OwnManner | None = None, preserve: bool = False) -> StylizeRequest:
    return StylizeRequest(picture((96, 64), 10), (style,), (1.0,), 1.0, preserve, MAX_SIDE, manner)


def paint(predictor: Predictor, stylize: StylizeRequest) -> np.ndarray:
    return np.asarray(predictor.predict([stylize])[0], dtype=np.float64)


STYLE_A, STYLE_B = picture((64, 64), 11), picture((48, 72), 13)


def test_the_artifact_carries_its_reference_decoder_photos_and_onnx_files(built: Built) -> None:
    manifest = load_artifact(built.own)
    listed = {entry.path for entry in manifest.files}
    photos = [f"reference_photo_{index}.png" for index in range(3)]
    new = {f"{REFERENCE_DECODER}.safetensors", f"{REFERENCE_DECODER}.onnx", CONTENT_MEASURE_ONNX, REFERENCE_TERMS}
    assert new | set(photos) <= listed
    assert {"matching_decoder.onnx", "encoder.onnx", "decoder.onnx", NST_NETWORK_FILE} <= listed
    # the reference decoder is the reference artifact's, byte for byte; the photos and their terms too
    assert (built.own / f"{REFERENCE_DECODER}.safetensors").read_bytes() == (
        built.reference / "decoder.safetensors"
    ).read_bytes()
    assert (
        manifest.file(f"{REFERENCE_DECODER}.safetensors").sha256
        == load_artifact(built.reference).file("decoder.safetensors").sha256
    )
    assert (built.own / photos[1]).read_bytes() == (built.photos / "photo_1.png").read_bytes()
    assert (built.own / REFERENCE_TERMS).read_text() == "Generated for the tests.\n"
    settings = matching_settings(manifest)
    assert settings is not None and settings.strength == 0.0
    assert settings.own == OwnMannerSettings(BOUND, GRID, tuple(photos))
    assert settings.default == OwnManner(BOUND)
    assert "own manner" in manifest.provenance.method
    source = matching_settings(load_artifact(built.measured))  # own-manner edited a copy: the source is as it was
    assert source is not None and source.own is None and source.default == 0.0


def test_the_predictors_default_is_each_paintings_own_manner(built: Built) -> None:
    for engine in ("torch", "onnx"):
        predictor = open_predictor(engine, built.own)
        assert predictor.default_manner == OwnManner(BOUND)
        assert manners_of(predictor).references.shape == (3, 3, 256, 256)


@dataclass(frozen=True)
class Recomputed:
    """A painting's (STYLE_B's) content ratios' parts, recomputed in torch outside own_manner.py."""

    photos: torch.Tensor  # the artifact's reference photos (K, 3, S, S)
    features: torch.Tensor  # their relu4_1 features
    style_features: torch.Tensor
    targets: torch.Tensor  # plain AdaIN's targets
    losses: Callable[[torch.Tensor], torch.Tensor]  # (K,) content losses of K images to the photos
    plain: torch.Tensor  # (K,) plain AdaIN's content losses, through the reference decoder


def recomputed(predictor: StyleTransfer, folder: Path, built: Built) -> Recomputed:
    measure = content_measure(folder, load_artifact(folder), CPU)
    reference = StyleTransfer.from_artifact(built.reference, load_artifact(built.reference), CPU).decoder
    photos = torch.from_numpy(manners_of(predictor).references)
    style = image_to_tensor(resize_for_network(STYLE_B, MAX_SIDE), CPU)
    with torch.inference_mode():
        features, style_features = predictor.encoder(photos), predictor.encoder(style)
        targets = adaptive_instance_normalization(features, style_features.expand(len(photos), -1, -1, -1))
        measured = measure(photos)

        def losses(images: torch.Tensor) -> torch.Tensor:
            return (measure(images) - measured).pow(2).flatten(1).mean(1)

        plain = losses(reference(targets).clamp(0.0, 1.0))
    return Recomputed(photos, features, style_features, targets, losses, plain)


def test_ratios_are_the_median_content_loss_ratio_to_plain_adain(built: Built) -> None:
    """Recomputed here in torch, pair by pair, from the artifact's networks."""
    predictor = open_predictor("torch", built.own)
    assert isinstance(predictor, StyleTransfer) and predictor.matching is not None
    key = style_key(STYLE_B, MAX_SIDE)
    painted = predictor.predict([request(STYLE_B)])
    assert painted[0].size == (96, 64)
    ratios = cached_ratios(predictor, key)
    settings = matching_settings(load_artifact(built.own))
    assert settings is not None and settings.own is not None
    again = recomputed(predictor, built.own, built)
    np.testing.assert_array_equal(again.photos.numpy(), load_references(built.own, settings.own))
    count = len(again.photos)
    with torch.inference_mode():
        means, stds = predictor.matching.statistics(again.style_features)
        expected = []
        for manner in GRID:
            strength = torch.full((count, 1), manner)
            matched = predictor.matching(again.targets, means.expand(count, -1), stds.expand(count, -1), strength)
            expected.append(float((again.losses(matched[0]) / again.plain).median()))  # 3 photos: the middle one
    np.testing.assert_allclose(ratios, expected, rtol=1e-4)
    assert ratios[0] == pytest.approx(1.0, abs=1e-4)  # manner 0 is plain AdaIN's decoder: the reference itself
    assert np.ptp(ratios) > 1e-3  # the matching moved the content loss: the other manners measured something


def test_a_ratio_below_zero_is_the_softer_alphas_plain_decoding_to_plain_adain(built: Built, softened: Path) -> None:
    """At a manner m < 0 the photos decode at alpha 1 + m with no matching: recomputed here in torch."""
    predictor = open_predictor("torch", softened)
    assert isinstance(predictor, StyleTransfer) and predictor.matching is not None
    settings = matching_settings(load_artifact(softened))
    assert settings is not None and settings.own == OwnMannerSettings(
        BOUND, SOFT_GRID, tuple(f"reference_photo_{index}.png" for index in range(3))
    )
    key = style_key(STYLE_B, MAX_SIDE)
    paint(predictor, request(STYLE_B))
    ratios = cached_ratios(predictor, key)
    again = recomputed(predictor, softened, built)
    count, targets, plain = len(again.photos), again.targets, again.plain
    with torch.inference_mode():
        soft = again.losses(predictor.decoder(0.5 * targets + 0.5 * again.features).clamp(0.0, 1.0))
        means, stds = predictor.matching.statistics(again.style_features)
        strength = torch.full((count, 1), 0.5)
        matched = predictor.matching(targets, means.expand(count, -1), stds.expand(count, -1), strength)[0]
        expected = [float((soft / plain).median()), 1.0, float((again.losses(matched) / plain).median())]
    assert ratios.shape == (3,)
    np.testing.assert_allclose(ratios[0], expected[0], rtol=1e-5)
    np.testing.assert_allclose(ratios, expected, rtol=1e-4)
    assert ratios[0] < ratios[1] - 1e-3  # half the alpha kept more of the photo: the softer point measured it


@pytest.fixture(params=["own", "softened"])
def graded(request: pytest.FixtureRequest, built: Built) -> tuple[Path, tuple[float, ...]]:
    """An own-manner artifact and the grid it was made with: ``built.own`` (``GRID``), or ``softened``."""
    if request.param == "own":
        return built.own, GRID
    return request.getfixturevalue("softened"), SOFT_GRID


def test_torch_and_onnx_measure_alike_and_paint_the_default_alike(graded: tuple[Path, tuple[float, ...]]) -> None:
    folder, grid = graded
    settings = matching_settings(load_artifact(folder))
    assert settings is not None and settings.own is not None and settings.own.manners == grid
    torch_predictor, onnx_predictor = open_predictor("torch", folder), open_predictor("onnx", folder)
    for style in (STYLE_A, STYLE_B):
        ours, theirs = paint(torch_predictor, request(style)), paint(onnx_predictor, request(style))
        assert np.abs(ours - theirs).mean() < 0.5  # grey levels out of 255
        key = style_key(style, MAX_SIDE)
        torch_ratios, onnx_ratios = cached_ratios(torch_predictor, key), cached_ratios(onnx_predictor, key)
        assert torch_ratios.shape == onnx_ratios.shape == (len(grid),)
        np.testing.assert_allclose(onnx_ratios, torch_ratios, rtol=1e-3)
        manners = [manners_of(p).manner(key, BOUND, never) for p in (torch_predictor, onnx_predictor)]
        assert manners[0] == pytest.approx(manners[1], abs=1e-3)
        for index in (i for i, manner in enumerate(grid) if manner < 0):
            # the softer points: the photos decoded at a lower alpha, without matching, in either engine
            assert onnx_ratios[index] == pytest.approx(torch_ratios[index], rel=1e-3)
            assert abs(torch_ratios[index] - torch_ratios[index + 1]) > 1e-3  # a softer point measured something
            bound = float(torch_ratios[index] + torch_ratios[index + 1]) / 2  # between it and the next point
            softer = [manners_of(p).manner(key, bound, never) for p in (torch_predictor, onnx_predictor)]
            assert grid[index] <= softer[0] < grid[index + 1] <= 0.0  # below 0: resolved on the softer segment
            assert softer[1] == pytest.approx(softer[0], abs=1e-3)


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_a_paintings_ratios_are_measured_once(built: Built, engine: str) -> None:
    predictor = open_predictor(engine, built.own)
    cache = manners_of(predictor).ratios
    first, second = paint(predictor, request(STYLE_A)), paint(predictor, request(STYLE_A))
    assert cache.misses == 1 and cache.hits >= 1 and len(cache) == 1
    assert np.array_equal(first, second)
    paint(predictor, request(STYLE_B))
    assert cache.misses == 2 and len(cache) == 2  # another painting: measured in its turn
    paint(predictor, request(STYLE_A, manner=0.5))  # a fixed manner: nothing measured, nothing looked up
    assert cache.misses == 2 and len(cache) == 2


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_remembering_the_gallery_measures_nothing(built: Built, engine: str) -> None:
    predictor = open_predictor(engine, built.own)
    predictor.remember_styles([STYLE_A, STYLE_B], MAX_SIDE)
    cache = manners_of(predictor).ratios
    assert len(cache) == 0 and cache.misses == 0 and cache.hits == 0
    assert len(predictor.statistics) == 2  # the gallery was remembered all the same
    assert len(predictor.decoder_statistics) == 0  # manner 0 needs no decoder statistics either


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_a_bound_below_every_ratio_paints_manner_zero_and_a_high_one_the_last_manner(
    built: Built, tmp_path: Path, engine: str
) -> None:
    measuring = open_predictor(engine, built.own)
    paint(measuring, request(STYLE_A))
    ratios = cached_ratios(measuring, style_key(STYLE_A, MAX_SIDE))
    assert ratios.min() > 0.5 and ratios.max() < 10.0  # the bounds below are on either side of every ratio
    low = open_predictor(engine, with_bound(built.own, tmp_path / "low", 0.5))
    high = open_predictor(engine, with_bound(built.own, tmp_path / "high", 10.0))
    assert low.default_manner == OwnManner(0.5) and high.default_manner == OwnManner(10.0)
    assert np.array_equal(paint(low, request(STYLE_A)), paint(low, request(STYLE_A, manner=0.0)))
    assert np.array_equal(paint(high, request(STYLE_A)), paint(high, request(STYLE_A, manner=GRID[-1])))
    # a request may name its own bound whatever the artifact's default
    assert np.array_equal(paint(low, request(STYLE_A, OwnManner(10.0))), paint(low, request(STYLE_A, manner=1.0)))
    assert np.abs(paint(high, request(STYLE_A)) - paint(low, request(STYLE_A))).mean() > 0.1  # not the same


CONTENT = picture((96, 64), 10)


def resolve(predictor: Predictor, manner: OwnManner) -> float:
    """``STYLE_B``'s manner (under its request key), measured by the predictor's own engine."""
    keys: list[StyleKey | None] = [style_key(STYLE_B, MAX_SIDE)]
    style = resize_for_network(STYLE_B, MAX_SIDE)
    if isinstance(predictor, StyleTransfer):
        with torch.inference_mode():
            return predictor.resolve_manner([image_to_tensor(style, CPU)], keys, [1.0], manner)
    return predictor.resolve_manner([image_to_array(style)], keys, [1.0], manner)


def stylized(predictor: Predictor, alpha: float, manner: float | OwnManner) -> np.ndarray:
    """``stylize`` of ``CONTENT`` with ``STYLE_B`` alone (under its request key), as float64 in [0, 1]."""
    keys: list[StyleKey | None] = [style_key(STYLE_B, MAX_SIDE)]
    content, style = resize_for_network(CONTENT, MAX_SIDE), resize_for_network(STYLE_B, MAX_SIDE)
    if isinstance(predictor, StyleTransfer):
        with torch.inference_mode():
            output = predictor.stylize(
                image_to_tensor(content, CPU), [image_to_tensor(style, CPU)], [1.0], alpha, keys, manner
            )
        return output.numpy().astype(np.float64)
    return predictor.stylize(image_to_array(content), [image_to_array(style)], [1.0], alpha, keys, manner).astype(
        np.float64
    )


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_an_own_manner_below_zero_paints_at_a_softer_alpha_without_matching(softened: Path, engine: str) -> None:
    predictor = open_predictor(engine, softened)
    resolve(predictor, OwnManner(BOUND))  # measures the painting
    ratios = cached_ratios(predictor, style_key(STYLE_B, MAX_SIDE))
    assert ratios[0] < ratios[1] == pytest.approx(1.0, abs=1e-4)  # softer than plain AdaIN at manner -0.5
    bound = (float(ratios[0]) + float(ratios[1])) / 2  # halfway between: halfway from -0.5 to 0
    manner = resolve(predictor, OwnManner(bound))
    assert manner == pytest.approx(-0.25, abs=1e-7)
    for alpha in (1.0, 0.5):
        own = stylized(predictor, alpha, OwnManner(bound))
        np.testing.assert_allclose(own, stylized(predictor, alpha * (1.0 + manner), 0.0), rtol=0, atol=1e-5)
        # not the painting at the asked alpha, nor a (negative) matching at it
        assert np.abs(own - stylized(predictor, alpha, 0.0)).mean() > 1e-3
    assert manners_of(predictor).ratios.misses == 1  # every request under the painting's key: measured once


def test_a_mix_gets_the_weighted_average_of_its_paintings_manners(built: Built) -> None:
    predictor = open_predictor("torch", built.own)
    assert isinstance(predictor, StyleTransfer)
    styles = [image_to_tensor(resize_for_network(s, MAX_SIDE), CPU) for s in (STYLE_A, STYLE_B)]
    keys: list[StyleKey | None] = [style_key(s, MAX_SIDE) for s in (STYLE_A, STYLE_B)]
    with torch.inference_mode():
        singles = [predictor.resolve_manner([s], [k], [1.0], None) for s, k in zip(styles, keys, strict=True)]
        ratios = [cached_ratios(predictor, k) for k in keys if k is not None]
        for single, measured in zip(singles, ratios, strict=True):
            assert single == pytest.approx(choose_manner(measured.tolist(), GRID, BOUND))
        # a bound between the two paintings' highest ratios: one keeps the grid's last manner, the other gets less
        bound = float(np.mean([measured.max() for measured in ratios]))
        own = [predictor.resolve_manner([s], [k], [1.0], OwnManner(bound)) for s, k in zip(styles, keys, strict=True)]
        assert sorted(own)[1] == GRID[-1] and sorted(own)[0] < GRID[-1]
        mixed = predictor.resolve_manner(styles, keys, [3.0, 1.0], OwnManner(bound))
        assert predictor.resolve_manner(styles, keys, [3.0, 1.0], 0.3) == 0.3
    assert mixed == pytest.approx(0.75 * own[0] + 0.25 * own[1])
    assert manners_of(predictor).ratios.misses == 2  # each painting measured once, for every bound


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_preserve_color_measures_the_original_painting_under_its_own_key(built: Built, engine: str) -> None:
    predictor = open_predictor(engine, built.own)
    cache = manners_of(predictor).ratios
    recoloured = paint(predictor, request(STYLE_B, preserve=True))
    assert len(cache) == 1 and cache.misses == 1
    key = style_key(STYLE_B, MAX_SIDE)
    assert cache.get(key, lambda: pytest.fail("not cached under the original's key")) is not None
    paint(predictor, request(STYLE_B))  # the same painting, not recoloured: already measured
    assert cache.misses == 1 and len(cache) == 1
    manner = manners_of(predictor).manner(key, BOUND, never)
    assert np.array_equal(recoloured, paint(predictor, request(STYLE_B, manner=manner, preserve=True)))


def recoloured_at(predictor: AdainPredictor[Any], asked: StylizeRequest, alpha: float) -> np.ndarray:
    """``asked``'s content painted with its recoloured style (``preprocess``) at ``alpha`` and manner 0, served."""
    content, styles = predictor.preprocess(asked)
    with torch.inference_mode():
        output = predictor.stylize(content, styles, list(asked.weights), alpha, None, 0.0)
    painted = to_served_size(predictor.to_picture(output), asked.content.size, asked.max_side)
    return np.asarray(painted, dtype=np.float64)


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_preserve_color_softens_by_the_original_paintings_own_manner_below_zero(softened: Path, engine: str) -> None:
    measuring = open_predictor(engine, softened)
    resolve(measuring, OwnManner(BOUND))
    ratios = cached_ratios(measuring, style_key(STYLE_B, MAX_SIDE))
    assert ratios[0] < ratios[1]  # softer than plain AdaIN at manner -0.5
    bound = (float(ratios[0]) + float(ratios[1])) / 2  # between the ratios at -0.5 and 0: a manner below 0
    predictor = open_predictor(engine, softened)  # a fresh cache: the request below measures the painting
    cache = manners_of(predictor).ratios
    asked = request(STYLE_B, OwnManner(bound), preserve=True)
    painted = paint(predictor, asked)
    assert len(cache) == 1 and cache.misses == 1
    key = style_key(STYLE_B, MAX_SIDE)
    manner = manners_of(predictor).manner(key, bound, never)  # the original's, measured under its own key
    assert manner == pytest.approx(-0.25, abs=1e-7)  # halfway from -0.5 to 0
    # alpha (1 + m) with no matching, on the style recoloured to the content's colours
    np.testing.assert_array_equal(painted, recoloured_at(predictor, asked, 1.0 + manner))
    assert np.abs(painted - recoloured_at(predictor, asked, 1.0)).mean() > 0.1  # not at the asked alpha
    assert cache.misses == 1 and len(cache) == 1  # the recoloured copy never measured


def _listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_own_manner_refuses_an_artifact_without_matching_or_without_the_nst_network(
    built: Built, tmp_path: Path
) -> None:
    plain, unmeasured = tmp_path / "plain", tmp_path / "unmeasured"
    shutil.copytree(built.reference, plain)
    shutil.copytree(built.matched, unmeasured)
    for folder, needed in ((plain, "match-decoder"), (unmeasured, "attach-nst")):
        before = _listing(folder)
        with pytest.raises(ArtifactError, match=needed):
            attach_own_manner(folder, built.reference, BOUND, photos=built.photos, manners=GRID)
        assert _listing(folder) == before  # nothing copied in, the manifest as it was


def test_own_manner_refuses_a_reference_of_other_widths_and_a_folder_without_photos(
    built: Built, tmp_path: Path
) -> None:
    folder, wide = tmp_path / "measured", tmp_path / "wide"
    shutil.copytree(built.measured, folder)
    make_untrained_style(wide, widths=(8, 16, 32, 32))
    before = _listing(folder)
    with pytest.raises(ArtifactError, match="widths differ"):
        attach_own_manner(folder, wide, BOUND, photos=built.photos, manners=GRID)
    (tmp_path / "no-terms").mkdir()
    shutil.copyfile(built.photos / "photo_0.png", tmp_path / "no-terms" / "photo_0.png")
    with pytest.raises(ArtifactError, match=re.escape("README.md")):
        attach_own_manner(folder, built.reference, BOUND, photos=tmp_path / "no-terms", manners=GRID)
    assert _listing(folder) == before


def test_the_own_manner_command_refuses_with_exit_2(built: Built, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(commands.own_manner)
    runner = CliRunner()
    plain = tmp_path / "plain"
    shutil.copytree(built.reference, plain)
    before = _listing(plain)
    refused = runner.invoke(app, [str(plain), str(built.reference), "--bound", "1.3"])
    assert refused.exit_code == 2 and "match-decoder" in refused.output
    assert _listing(plain) == before
    grid = runner.invoke(app, [str(plain), str(built.reference), "--bound", "1.3", "--manners", "0.2,0.6"])
    assert grid.exit_code == 2 and "--manners" in grid.output
    low = runner.invoke(app, [str(plain), str(built.reference), "--bound", "0.2"])
    assert low.exit_code == 2  # below the option's range (0.5 to 10)
    assert _listing(plain) == before


def test_the_own_manner_command_writes_a_new_version_with_the_shipped_photos(built: Built, tmp_path: Path) -> None:
    from app.cli import _register_model_commands, cli

    _register_model_commands()
    out = tmp_path / "v9"
    args = ["models", "own-manner", str(built.measured), str(built.reference), "--bound", "1.4"]
    done = CliRunner().invoke(cli, [*args, "--manners", "0,0.4,0.8", "--out", str(out), "--version", "v9"])
    assert done.exit_code == 0, done.output
    assert "own_manner" in done.output
    manifest = load_artifact(out)
    shipped = sorted(path.name for path in REFERENCE_PHOTOS.glob("*.png"))
    names = tuple(f"reference_{name}" for name in shipped)
    settings = matching_settings(manifest)
    assert manifest.version == "v9" and settings is not None
    assert settings.own == OwnMannerSettings(1.4, (0.0, 0.4, 0.8), names) and len(names) == 4
    assert {*names, REFERENCE_TERMS, f"{REFERENCE_DECODER}.onnx", CONTENT_MEASURE_ONNX} <= {
        entry.path for entry in manifest.files
    }
    assert (out / REFERENCE_TERMS).read_bytes() == (REFERENCE_PHOTOS / "README.md").read_bytes()
    source = matching_settings(load_artifact(built.measured))
    assert source is not None and source.own is None  # the source is left as it was
    predictor = open_predictor("onnx", out)
    assert manners_of(predictor).references.shape == (4, 3, 256, 256)


def test_a_photo_that_is_not_a_256_px_square_is_refused_before_anything_is_written(
    built: Built, tmp_path: Path
) -> None:
    folder, photos = tmp_path / "measured", tmp_path / "photos"
    shutil.copytree(built.measured, folder)
    photos.mkdir()
    picture((128, 128), 3).save(photos / "small.png")
    (photos / "README.md").write_text("small\n")
    before = _listing(folder)
    with pytest.raises(ArtifactError, match="256 px square"):
        attach_own_manner(folder, built.reference, BOUND, photos=photos, manners=GRID)
    assert _listing(folder) == before


def _flat(output: str) -> str:
    """The CLI's output with the error panel's borders and line breaks taken out."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", output).split())


def test_a_refused_own_manner_command_leaves_no_copy_behind(built: Built, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(commands.own_manner)
    args = [str(built.reference), str(built.reference), "--bound", "1.3", "--out", str(tmp_path / "v9")]
    refused = CliRunner().invoke(app, [*args, "--version", "v9"])
    assert refused.exit_code == 2 and "match-decoder" in refused.output
    assert not (tmp_path / "v9").exists()
    # a measurable artifact, refused for its grid alone: below SOFTEST, or not through 0
    before = _listing(built.measured)
    args = [str(built.measured), str(built.reference), "--bound", "1.3", "--out", str(tmp_path / "v9")]
    for grid, rule in (("-1,0", "in [-0.9, 1]"), ("0.2,0.4", "must ascend through 0, from -0.9 to 1")):
        refused = CliRunner().invoke(app, [*args, f"--manners={grid}", "--version", "v9"])
        assert refused.exit_code == 2, refused.output
        assert rule in _flat(refused.output) and grid in _flat(refused.output)
        assert not (tmp_path / "v9").exists()
    assert _listing(built.measured) == before


def test_the_own_manner_command_takes_a_grid_below_zero(built: Built, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(commands.own_manner)
    out = tmp_path / "v9"
    args = [str(built.measured), str(built.reference), "--bound", "1.3", "--manners=-0.4,0,0.4"]
    done = CliRunner().invoke(app, [*args, "--out", str(out), "--version", "v9"])
    assert done.exit_code == 0, done.output
    manifest = load_artifact(out)
    assert manifest.hyperparameters[MATCHING_KEY][OWN_KEY]["manners"] == [-0.4, 0.0, 0.4]
    settings = matching_settings(manifest)
    assert settings is not None and settings.own is not None and settings.own.manners == (-0.4, 0.0, 0.4)
    assert settings.default == OwnManner(1.3)


def test_alpha_zero_measures_no_painting(built: Built) -> None:
    predictor = open_predictor("torch", built.own)
    predictor.predict([replace(request(STYLE_A, None), alpha=0.0)])
    assert len(manners_of(predictor).ratios) == 0  # the reconstruction needs no manner


def test_a_plain_artifact_measures_no_own_manner(built: Built) -> None:
    predictor = open_predictor("torch", built.measured)  # matching at strength 0, no own manner
    assert predictor.painting_manners is None and predictor.default_manner == 0.0
    with pytest.raises(ArtifactError, match="no painting's own manner"):
        predictor.predict([request(STYLE_A, OwnManner(1.3))])


# --- evaluation ------------------------------------------------------------------------------------------------


def test_evaluation_reports_each_bound_and_flags_each_pair(built: Built, tmp_path: Path) -> None:
    for kind, seeds in (("content", (50, 51)), ("style", (60, 61))):
        (tmp_path / kind).mkdir()
        for seed in seeds:
            picture((48, 40), seed).save(tmp_path / kind / f"{kind}_{seed}.png")
    contents = sorted((tmp_path / "content").iterdir())
    styles = sorted((tmp_path / "style").iterdir())
    transfer = open_predictor("torch", built.own)
    assert isinstance(transfer, StyleTransfer)
    runs: dict[str, list[tuple[float, float]]] = {}
    flags: dict[str, list[bool]] = {}
    manners: list[float | OwnManner] = [0.0, 1.0, OwnManner(0.5), OwnManner(10.0)]
    metrics = evaluate_transfer(
        transfer, built.loss_network, contents, styles, 32, built.reference, None, None, manners, runs, flags
    )[0]
    assert metrics["own_0.5_mean_manner"] == 0.0 and metrics["own_10_mean_manner"] == GRID[-1]
    for metric in ("style_ratio", "content_ratio", "own_painting_share", "colour_hist_distance"):
        # every painting at manner 0 under a bound below its ratios, at the grid's last under a high one
        assert metrics[f"own_0.5_{metric}"] == pytest.approx(metrics[f"manner_0_{metric}"])
        assert metrics[f"own_10_{metric}"] == pytest.approx(metrics[f"manner_1_{metric}"])
    assert "manner_0_mean_manner" not in metrics
    assert set(runs) == {"default", "manner_0", "manner_1", "own_0.5", "own_10", "baseline"}
    assert set(flags) == {"default", "manner_0", "manner_1", "own_0.5", "own_10"}  # the baseline is not flagged
    assert runs["own_10"] == runs["manner_1"] and flags["own_10"] == flags["manner_1"]
    assert all(len(flags[run]) == 4 for run in flags)
    assert metrics["own_10_own_painting_share"] == pytest.approx(np.mean(flags["own_10"]))

    path = tmp_path / "pairs.csv"
    assert write_pair_table(path, contents, styles, runs, flags) == 6 * 4
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = {run: [row for row in rows if row["run"] == run] for run in runs}
    assert [row["own_painting"] for row in table["own_10"]] == [str(int(flag)) for flag in flags["own_10"]]
    assert all(row["own_painting"] == "" for row in table["baseline"])
    first = table["own_10"][0]  # style-major: the first painting with the first photo
    assert (first["photo"], first["painting"]) == (f"content/{contents[0].name}", f"style/{styles[0].name}")


def test_the_pair_table_writes_flags_as_one_or_zero_and_leaves_unflagged_runs_empty(tmp_path: Path) -> None:
    contents = [tmp_path / "photos" / "a.jpg", tmp_path / "photos" / "b.jpg"]
    styles = [tmp_path / "paintings" / "x.jpg"]
    runs = {"baseline": [(2.0, 4.0), (1.0, 2.0)], "own_1.4": [(1.0, 6.0), (0.5, 2.0)], "manner_0": [(2.0, 4.0)] * 2}
    flags = {"own_1.4": [True, False]}
    path = tmp_path / "table" / "pairs.csv"
    assert write_pair_table(path, contents, styles, runs, flags) == 6
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][-1] == "own_painting" and len(rows) == 7
    by_run = {(row[0], row[1]): row for row in rows[1:]}
    assert by_run[("own_1.4", "photos/a.jpg")][5:] == ["0.5", "1.5", "1"]
    assert by_run[("own_1.4", "photos/b.jpg")][5:] == ["0.5", "1", "0"]
    assert by_run[("manner_0", "photos/a.jpg")][5:] == ["1", "1", ""]
    assert by_run[("baseline", "photos/b.jpg")][-1] == ""
    assert write_pair_table(path, contents, styles, runs) == 6  # no flags at all: the column stays, empty
    with path.open(newline="") as handle:
        assert all(row["own_painting"] == "" for row in csv.DictReader(handle))


@pytest.mark.parametrize(("bound", "grid"), [(0.0, GRID), (150.0, GRID), (1.3, (0.2, 0.4))])
def test_a_bad_bound_or_grid_is_refused_before_anything_is_written(
    built: Built, tmp_path: Path, bound: float, grid: tuple[float, ...]
) -> None:
    folder = tmp_path / "measured"
    shutil.copytree(built.measured, folder)
    before = _listing(folder)
    with pytest.raises(ArtifactError, match=re.escape("ascending through 0, from -0.9 to 1")):
        attach_own_manner(folder, built.reference, bound, photos=built.photos, manners=grid)
    assert _listing(folder) == before
