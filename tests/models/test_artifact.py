from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from models.artifact import ArtifactError, Manifest, load_artifact, pack_artifact, parse_manifest


def _pack(folder: Path) -> Manifest:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.safetensors").write_bytes(b"0123456789" * 10)
    return pack_artifact(
        folder,
        name="face-gender",
        version="v1",
        task="classify",
        architecture="facenet",
        labels=["female", "male"],
        provenance={"method": "untrained: random initialisation"},
    )


def test_packed_artifact_loads_back_with_sizes_and_hashes(tmp_path: Path) -> None:
    packed = _pack(tmp_path / "a")
    loaded = load_artifact(tmp_path / "a")
    assert loaded == packed
    assert loaded.file("weights.safetensors").size == 100


def test_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    _pack(tmp_path / "a")
    (tmp_path / "a" / "weights.safetensors").write_bytes(b"9123456789" * 10)  # same size, other bytes
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load_artifact(tmp_path / "a")


def test_missing_or_resized_file_is_refused(tmp_path: Path) -> None:
    _pack(tmp_path / "a")
    (tmp_path / "a" / "weights.safetensors").write_bytes(b"short")
    with pytest.raises(ArtifactError, match="bytes"):
        load_artifact(tmp_path / "a")
    (tmp_path / "a" / "weights.safetensors").unlink()
    with pytest.raises(ArtifactError, match="missing file"):
        load_artifact(tmp_path / "a")


@pytest.mark.parametrize("name", ["../evil", "a/b", "http://x", "", ".hidden", "a..b"])
def test_manifest_refuses_unsafe_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValidationError):
        Manifest(name=name, version="v1", task="detect", architecture="x", files=[], provenance={"method": "test"})  # type: ignore[arg-type]


def test_manifest_refuses_unknown_fields_and_bad_hashes() -> None:
    base = {
        "name": "n",
        "version": "v1",
        "task": "detect",
        "architecture": "x",
        "provenance": {"method": "test"},
        "files": [],
    }
    with pytest.raises(ArtifactError):
        parse_manifest(json.dumps(base | {"surprise": 1}))
    with pytest.raises(ArtifactError):
        parse_manifest(json.dumps(base | {"files": [{"path": "w", "sha256": "abc", "size": 1}]}))
    with pytest.raises(ArtifactError):
        parse_manifest(b"{not json")
    assert parse_manifest(json.dumps(base)).name == "n"


def test_repacking_lists_a_card_written_after_packing_and_keeps_the_rest(tmp_path: Path) -> None:
    from models.artifact import repack_artifact

    first = _pack(tmp_path)
    (tmp_path / "MODEL_CARD.md").write_text("# card\n")
    again = repack_artifact(tmp_path)
    assert [e.path for e in again.files] == ["MODEL_CARD.md", "weights.safetensors"]
    assert again.provenance == first.provenance and again.name == first.name
    load_artifact(tmp_path)


def test_every_file_of_every_embedded_artifact_is_listed_in_its_manifest() -> None:
    # push and pull copy what the manifest lists: an unlisted model card would be left behind
    store = Path(__file__).resolve().parents[2] / "models" / "store"
    for manifest_path in store.glob("*/*/manifest.json"):
        folder = manifest_path.parent
        listed = {entry.path for entry in load_artifact(folder).files}
        present = {p.name for p in folder.iterdir() if p.is_file() and p.name != "manifest.json"}
        assert present == listed, f"{folder}: unlisted {sorted(present - listed)}"
