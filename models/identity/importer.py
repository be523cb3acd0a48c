"""``deepcanvas models import-dlib``: dlib's face ResNet and 5-point shape predictor as a ``face-embedder`` artifact.

Both files are read by our own reader (``models.identity.dlib_format``); the ResNet becomes our torch
module's float32 safetensors, the shape predictor's cascade its arrays in safetensors. dlib's LICENSE (CC0)
is copied in and hashed, and the manifest records the sources' sha256. Calibration (box mapping,
thresholds, metrics, card) is written later by ``deepcanvas eval identity-boxes`` / ``eval identity``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from safetensors.numpy import save_file

from models.artifact import InputSpec, Manifest, Provenance, pack_artifact, sha256_file
from models.identity.align import CHIP_SIZE, PADDING
from models.identity.dlib_format import read_resnet, read_shape_predictor
from models.identity.network import INPUT_SCALE, MEAN, resnet_from_dlib
from models.identity.types import ARCHITECTURE, LANDMARKS_FILE, LICENSE_FILE, RESNET_FILE
from models.provenance import git_commit
from models.torch_backend import save_state

SOURCE = (
    "dlib models by Davis King, public domain (CC0 1.0): dlib_face_recognition_resnet_model_v1.dat and "
    "shape_predictor_5_face_landmarks.dat, from the PyPI sdist face_recognition_models 0.3.0"
)
DATA = (
    "ResNet: about 3 million faces of 7,485 identities (FaceScrub, VGG face, web scrape), LFW identities "
    "excluded; 5 points: dlib's 7,198-face landmark set (both as stated by the author)"
)
# Until `deepcanvas eval identity --write` calibrates them: dlib's own 0.6 on raw descriptors is about 0.6 / 1.4
# on normalised ones (raw norms are near 1.4); marked by hyperparameters.calibration = "placeholder".
PLACEHOLDER_THRESHOLDS: dict[str, Any] = {
    "verify_distance": 0.45,
    "identify_similarity": [{"gallery_size": 1, "similarity": 0.9}],
}


def import_dlib(
    resnet_dat: Path,
    landmarks_dat: Path,
    license_file: Path,
    out_dir: Path,
    version: str = "v1",
    command: str | None = None,
) -> Manifest:
    """Write the ``face-embedder`` artifact into ``out_dir`` (created; refused when it holds other files)."""
    network = resnet_from_dlib(read_resnet(resnet_dat))
    arrays = read_shape_predictor(landmarks_dat)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty: import into a new folder")
    save_state(network, out_dir / RESNET_FILE, half=False)  # an import reproduces its source exactly
    save_file(arrays, str(out_dir / LANDMARKS_FILE))
    shutil.copyfile(license_file, out_dir / LICENSE_FILE)
    hyperparameters = {
        "source_sha256": {
            "resnet": sha256_file(resnet_dat),
            "landmarks": sha256_file(landmarks_dat),
            "license": sha256_file(license_file),
        },
        "chip": {"size": CHIP_SIZE, "padding": PADDING},
        "descriptor": "128-d, L2-normalised; similarity = dot product, distance = Euclidean",
        "box_mapping": {"offset": [0.0, 0.0], "scale": [1.0, 1.0], "passes": 1},
        "flip_average": False,
        "thresholds": PLACEHOLDER_THRESHOLDS,
        "calibration": "placeholder",
    }
    return pack_artifact(
        out_dir,
        name="face-embedder",
        version=version,
        task="embed",
        architecture=ARCHITECTURE,
        hyperparameters=hyperparameters,
        input=InputSpec(size=CHIP_SIZE, mean=MEAN, std=(INPUT_SCALE,) * 3),
        provenance=Provenance(method=f"imported: {SOURCE}", data=DATA, command=command, commit=git_commit()),
    )
