"""Import public AdaIN weights as our artifacts: the authors' release, or the compressed VGG19 (the shipped base).

``vgg_normalised.pth`` is all of VGG19 as an ``nn.Sequential`` state dict (``"0.weight"`` … ``"52.bias"``);
AdaIN uses it up to relu4_1 (layer 30), which is exactly our ``VGGEncoder``. ``decoder.pth`` has our
``Decoder``'s layout. Both are checked against expected sha256 digests (when given) before unpickling.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.artifact import (
    MANIFEST_NAME,
    ArtifactError,
    InputSpec,
    Manifest,
    Provenance,
    load_artifact,
    pack_artifact,
    repack_artifact,
    sha256_file,
)
from models.predictor import save_state
from models.provenance import git_commit, invoked_command
from models.style.loss_network import decoder_from_state, encoder_from_state, is_compressed, read_state_dict
from models.style.matching import MatchingDecoder, relu_layers
from models.style.network import Decoder, VGGEncoder
from models.style.nst_network import NST_NETWORK_FILE, nst_network_from_compressed, nst_network_shape
from models.style.own_manner import (
    MANNERS,
    OWN_KEY,
    REFERENCE_DECODER,
    SOFTEST,
    OwnMannerSettings,
    load_references,
    valid_bound,
    valid_grid,
)
from models.style.packing import prepare_out_dir
from models.style.predictor import ARCHITECTURE, DECODER_FILE, ENCODER_FILE
from models.style.starter import style_hyperparameters
from models.style.types import MATCHING_KEY, MatchingSettings, widths_from_manifest

SOURCE = "naoto0804/pytorch-AdaIN release (MIT): vgg_normalised.pth truncated at relu4_1, and decoder.pth"
ROLES = ("vgg", "decoder")  # the keys of expected_sha256


def check_sha256(path: Path, expected: str | None) -> str:
    """The file's sha256; an ``ArtifactError`` when ``expected`` is given and differs."""
    digest = sha256_file(path)
    if expected is not None and digest != expected.lower():
        raise ArtifactError(f"{path}: sha256 {digest} differs from the expected {expected}")
    return digest


def write_imported(
    encoder: VGGEncoder,
    decoder: Decoder,
    out_folder: Path,
    manifest_fields: dict[str, Any],
    half: bool = False,
    extra_files: tuple[Path, ...] = (),
) -> Manifest:
    """Save matching imported networks (and files such as a licence) into ``out_folder`` and pack the artifact."""
    if encoder.widths != decoder.widths:
        raise ValueError(f"encoder widths {encoder.widths} and decoder widths {decoder.widths} differ")
    prepare_out_dir(out_folder)
    save_state(encoder, out_folder / ENCODER_FILE, half=half)
    save_state(decoder, out_folder / DECODER_FILE, half=half)
    for path in extra_files:
        shutil.copyfile(path, out_folder / path.name)
    hyperparameters = style_hyperparameters(encoder.widths) | manifest_fields.pop("hyperparameters", {})
    return pack_artifact(
        out_folder,
        task="stylize",
        architecture=ARCHITECTURE,
        hyperparameters=hyperparameters,
        defaults={"alpha": 1.0},
        **manifest_fields,
    )


def import_adain(
    vgg_pth: Path,
    decoder_pth: Path,
    out_folder: Path,
    name: str = "adain",
    version: str = "release",
    expected_sha256: dict[str, str] | None = None,
    half: bool = False,
    command: str | None = None,
) -> Manifest:
    """Convert the released encoder and decoder into an artifact in ``out_folder``.

    ``expected_sha256`` maps ``"vgg"`` and/or ``"decoder"`` to hex digests. Weights stay float32 unless
    ``half``: an import should reproduce the release exactly.
    """
    expected = expected_sha256 or {}
    if unknown := set(expected) - set(ROLES):
        raise ValueError(f"expected_sha256 keys must be among {ROLES}, not {sorted(unknown)}")
    paths = {"vgg": vgg_pth, "decoder": decoder_pth}
    digests = {role: check_sha256(path, expected.get(role)) for role, path in paths.items()}
    vgg_state = read_state_dict(vgg_pth)
    if is_compressed(vgg_state):
        raise ValueError(f"{vgg_pth} is a compressed VGG19, not the release's vgg_normalised.pth")
    encoder, decoder = encoder_from_state(vgg_state), decoder_from_state(read_state_dict(decoder_pth))
    fields = {
        "name": name,
        "version": version,
        "hyperparameters": {"source_sha256": digests},
        "input": InputSpec(size=512),  # the release was trained on 512 px images cropped to 256
        "provenance": Provenance(
            method=f"imported: {SOURCE}",
            data="MS-COCO contents and WikiArt styles (as released); VGG19 (Simonyan & Zisserman, CC BY 4.0)",
            command=command,
            commit=git_commit(),
        ),
    }
    return write_imported(encoder, decoder, out_folder, fields, half=half)


COMPRESSED_SOURCE = (
    "MingSun-Tse/Collaborative-Distillation (MIT, Copyright (c) 2020 Huan Wang): the VGG19 encoder compressed "
    "16x, to relu4_1, and its reconstruction decoder"
)


def import_compressed_vgg(
    encoder_pth: Path,
    decoder_pth: Path,
    license_file: Path,
    out_folder: Path,
    name: str = "adain",
    version: str = "vgg16x",
    command: str | None = None,
) -> Manifest:
    """The compressed VGG19 encoder (to relu4_1) and its reconstruction decoder as an artifact, with their licence.

    The result stylizes only mildly (the decoder was trained to reconstruct, not for AdaIN): it is the base
    that ``deepcanvas train style --base`` trains a decoder from, and the baseline evaluation compares with.
    """
    encoder_state = read_state_dict(encoder_pth)
    if not is_compressed(encoder_state):
        raise ValueError(f"{encoder_pth} is not a compressed VGG19 encoder (no conv0/conv11)")
    encoder, decoder = encoder_from_state(encoder_state), decoder_from_state(read_state_dict(decoder_pth))
    digests = {"encoder": sha256_file(encoder_pth), "decoder": sha256_file(decoder_pth)}
    digests["license"] = sha256_file(license_file)
    fields = {
        "name": name,
        "version": version,
        "hyperparameters": {"source_sha256": digests},
        "input": InputSpec(size=256),
        "provenance": Provenance(
            method=f"imported: {COMPRESSED_SOURCE} ({encoder_pth.name}, {decoder_pth.name}); "
            "the decoder reconstructs and is not trained for AdaIN",
            data="VGG19 (Simonyan & Zisserman) compressed by collaborative distillation on MS-COCO, as released",
            command=command,
            commit=git_commit(),
        ),
    }
    # an import reproduces its source exactly: float32
    return write_imported(encoder, decoder, out_folder, fields, extra_files=(license_file,))


def attach_nst_network(artifact: Path, encoder_relu5_1: Path, license_file: Path) -> Manifest:
    """Write the compressed VGG19 to relu5_1 into ``artifact`` as its NST loss network, and re-pack it.

    The weights are MIT (MingSun-Tse/Collaborative-Distillation): their ``LICENSE`` travels in the artifact.
    Versions trained from this artifact inherit the file (``packing.inherited_files``).
    """
    load_artifact(artifact)  # refuses a folder that is not a valid artifact
    network = nst_network_from_compressed(encoder_relu5_1)
    save_state(network, artifact / NST_NETWORK_FILE)
    licence = artifact / "LICENSE"
    if not licence.exists():
        shutil.copyfile(license_file, licence)
    elif licence.read_bytes() != license_file.read_bytes():
        raise ArtifactError(f"{artifact} already holds another LICENSE; this network's is {license_file}")
    manifest = load_artifact(artifact)
    shape = nst_network_shape(network) | {"source": f"{encoder_relu5_1.name} (sha256 {sha256_file(encoder_relu5_1)})"}
    what = f"{NST_NETWORK_FILE}: the compressed VGG19 to relu5_1 ({encoder_relu5_1.name}, MIT) for method=nst"
    provenance = manifest.provenance.model_copy(update={"method": f"{manifest.provenance.method}; {what}"})
    return repack_artifact(
        artifact, hyperparameters=manifest.hyperparameters | {"nst_network": shape}, provenance=provenance
    )


def plan_matching(artifact: Path, strength: float, layers: Sequence[int] | None = None) -> MatchingSettings:
    """What ``attach_matching`` would record for ``artifact``; writes nothing, and an ``AssertionError`` names
    a layer that is not one of its decoder's ReLUs."""
    decoder = Decoder(widths_from_manifest(load_artifact(artifact)))
    return MatchingDecoder(decoder, layers if layers is not None else relu_layers(decoder)).settings(strength)


def attach_matching(artifact: Path, strength: float, layers: Sequence[int] | None = None) -> Manifest:
    """Make ``artifact``'s decoder match the painting's statistics after ``layers`` (default: every ReLU) at
    ``strength`` (``models.style.matching``), record it in ``hyperparameters.decoder_matching``, re-export the
    ONNX files (``matching_decoder.onnx`` takes the targets) and re-pack. The weights are unchanged."""
    from models.onnx_export import export_artifact

    settings = plan_matching(artifact, strength, layers)
    manifest = load_artifact(artifact)
    what = f"decoder-side matching after {len(settings.layers)} decoder ReLUs at strength {strength:g}"
    provenance = manifest.provenance.model_copy(update={"method": f"{manifest.provenance.method}; {what}"})
    hyperparameters = manifest.hyperparameters | {MATCHING_KEY: settings.as_entry()}
    repack_artifact(artifact, hyperparameters=hyperparameters, provenance=provenance)
    return export_artifact(artifact)


def copy_as_version(source: Path, out_dir: Path, version: str) -> Path:
    """Copy the artifact ``source`` into ``out_dir`` as ``version`` (same weights), recording where it came from."""
    manifest = load_artifact(source)
    prepare_out_dir(out_dir)
    for name in [MANIFEST_NAME, *(entry.path for entry in manifest.files)]:
        shutil.copyfile(source / name, out_dir / name)
    method = f"{manifest.provenance.method}; as {version}: the AdaIN weights of {manifest.name}/{manifest.version}"
    # the command and commit are this copy's; the method keeps how the source's weights were made
    update = {"method": method, "command": invoked_command(), "commit": git_commit(), "created": datetime.now(UTC)}
    provenance = manifest.provenance.model_copy(update=update)
    repack_artifact(out_dir, version=version, provenance=provenance)
    return out_dir


REFERENCE_PHOTOS = Path(__file__).parent / "reference_photos"  # public-domain and CC0 photos (their README.md)
REFERENCE_TERMS = "REFERENCE_PHOTOS.md"  # the photos' sources and terms, in the artifact


def plan_own_manner(
    artifact: Path,
    reference: Path,
    photos: Path = REFERENCE_PHOTOS,
    bound: float = 1.0,
    manners: Sequence[float] = MANNERS,
) -> list[Path]:
    """The reference photos ``attach_own_manner`` would copy into ``artifact``; writes nothing, and an
    ``ArtifactError`` says what is wrong (the bound, the grid, the matching, the NST network, fitting widths,
    256 px photos, terms)."""
    if not valid_bound(bound) or not valid_grid(list(manners)):
        raise ArtifactError(
            f"a positive bound and manners ascending through 0, from {SOFTEST:g} to 1, not {bound}, {manners}"
        )
    manifest = load_artifact(artifact)
    if not isinstance(manifest.hyperparameters.get(MATCHING_KEY), dict):
        raise ArtifactError(f"{manifest.name}/{manifest.version} has no decoder_matching: run match-decoder first")
    if not isinstance(manifest.hyperparameters.get("nst_network"), dict):  # the content measure is its
        raise ArtifactError(f"{manifest.name}/{manifest.version} has no NST network: run attach-nst first")
    base = load_artifact(reference)
    if widths_from_manifest(base) != widths_from_manifest(manifest):
        raise ArtifactError(f"{base.name}/{base.version}'s widths differ from {manifest.name}/{manifest.version}'s")
    pictures = sorted(photos.glob("*.png"))
    if not pictures or not (photos / "README.md").is_file():
        raise ArtifactError(f"{photos}: needs the reference photos (*.png) and their terms (README.md)")
    load_references(photos, OwnMannerSettings(1.0, MANNERS, tuple(p.name for p in pictures)))  # each a 256 px square
    return pictures


def attach_own_manner(
    artifact: Path,
    reference: Path,
    bound: float,
    photos: Path = REFERENCE_PHOTOS,
    manners: Sequence[float] = MANNERS,
) -> Manifest:
    """Make ``artifact``'s default each painting's own manner (``models.style.own_manner``): the largest of
    ``manners`` (below 0: a softer alpha, ``own_manner.applied``) whose content ratio to ``reference``'s plain
    decoder (the imported AdaIN) stays within ``bound`` on
    ``photos`` (256 px squares and their README.md). Copies the reference decoder and the photos in, records
    ``decoder_matching.own_manner``, re-exports the ONNX files and re-packs. Refused (``plan_own_manner``) before
    anything is written."""
    from models.onnx_export import export_artifact

    pictures = plan_own_manner(artifact, reference, photos, bound, manners)
    manifest, base = load_artifact(artifact), load_artifact(reference)
    names = [f"reference_{picture.name}" for picture in pictures]
    settings = OwnMannerSettings(bound, tuple(manners), tuple(names))
    shutil.copyfile(reference / DECODER_FILE, artifact / f"{REFERENCE_DECODER}.safetensors")
    for picture, name in zip(pictures, names, strict=True):
        shutil.copyfile(picture, artifact / name)
    shutil.copyfile(photos / "README.md", artifact / REFERENCE_TERMS)
    decoder_sha256 = base.file(DECODER_FILE).sha256
    what = (
        f"each painting's own manner: the largest of {list(manners)} (below 0: alpha times 1 + m, no matching) "
        f"whose median content ratio to plain AdaIN "
        f"({base.name}/{base.version}'s decoder, sha256 {decoder_sha256}: {base.provenance.method}) stays within "
        f"{bound:g} on {len(names)} reference photos ({REFERENCE_TERMS})"
    )
    provenance = manifest.provenance.model_copy(update={"method": f"{manifest.provenance.method}; {what}"})
    matching = manifest.hyperparameters[MATCHING_KEY]
    hyperparameters = manifest.hyperparameters | {MATCHING_KEY: matching | {OWN_KEY: settings.as_entry()}}
    repack_artifact(artifact, hyperparameters=hyperparameters, provenance=provenance)
    return export_artifact(artifact)
