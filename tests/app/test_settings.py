from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.main import private_folder
from app.settings import EMBEDDED_STORE, Settings


def test_settings_default_to_the_embedded_store() -> None:
    settings = Settings()
    assert settings.store == EMBEDDED_STORE.as_uri()
    assert settings.model_refs["detector"] == ("face-detector", "stable")


def test_settings_read_the_deepcanvas_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPCANVAS_STORE", "s3://bucket/models")
    monkeypatch.setenv("DEEPCANVAS_CLASSIFIER", "face-gender:v7")
    monkeypatch.setenv("DEEPCANVAS_MAX_UPLOAD_BYTES", "4096")
    settings = Settings()
    assert settings.store == "s3://bucket/models"
    assert settings.model_refs["classifier"] == ("face-gender", "v7")
    assert settings.max_upload_bytes == 4096


@pytest.mark.parametrize(
    "field, value",
    [
        ("store", "http://example.com/models"),
        ("detector", "face-detector"),
        ("detector", "../x:v1"),
        ("style", "adain:../../etc"),
        ("gallery", "a/b:v1"),
        ("device", "gpu"),
        ("max_upload_bytes", 10),
        ("queue_size", 0),
    ],
)
def test_settings_refuse_invalid_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_default_stylize_side_may_not_exceed_its_limit() -> None:
    with pytest.raises(ValidationError, match="stylize_max_side"):
        Settings(stylize_max_side=4096, stylize_max_side_limit=2048)


def test_the_detector_splits_batches_across_two_streams_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().runtime("openvino").batch_streams == 2
    monkeypatch.setenv("DEEPCANVAS_DETECTOR_STREAMS", "1")
    assert Settings().runtime("openvino").batch_streams == 1
    monkeypatch.setenv("DEEPCANVAS_DETECTOR_STREAMS", "0")
    with pytest.raises(ValidationError, match="detector_streams"):
        Settings()


@pytest.mark.parametrize(
    "given, origins",
    [
        ("", ()),
        ("https://app.example.com", ("https://app.example.com",)),
        (" https://App.Example.com/ , http://127.0.0.1:3000", ("https://app.example.com", "http://127.0.0.1:3000")),
        (
            "https://a.example:443,http://a.example:80,https://a.example:8443",
            ("https://a.example", "http://a.example", "https://a.example:8443"),
        ),
        ("http://[::1]:8080,http://[::1]:8080/", ("http://[::1]:8080",)),
        ("*", ("*",)),
    ],
)
def test_cors_origins_are_read_as_browsers_send_them(
    monkeypatch: pytest.MonkeyPatch, given: str, origins: tuple[str, ...]
) -> None:
    monkeypatch.setenv("DEEPCANVAS_CORS_ORIGINS", given)
    assert Settings().cors_origins == origins


@pytest.mark.parametrize(
    "given, says",
    [
        ("app.example.com", "is not an origin"),
        ("ftp://app.example.com", "is not an origin"),
        ("https://user@app.example.com", "is not an origin"),
        ("https://app.example.com:99999", "is not an origin"),
        ("https://app.example.com:port", "is not an origin"),
        ("null", "is not an origin"),
        ("https://app.example.com/path", "more than an origin"),
        ("https://app.example.com/?q=1", "more than an origin"),
    ],
)
def test_cors_origins_a_browser_never_sends_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, given: str, says: str
) -> None:
    monkeypatch.setenv("DEEPCANVAS_CORS_ORIGINS", f"https://ok.example,{given}")
    with pytest.raises(ValidationError, match=says):
        Settings()


@pytest.mark.parametrize(
    "token", ["a", "short-token", "sixteen chars ok", "tab\tinside-0123456789", "jeton-à-accents-0123456789"]
)
def test_an_admin_token_short_or_with_spaces_stops_the_start(token: str) -> None:
    """The token enrols people and switches models: as long and plain as an API key (16 printable ASCII characters)."""
    with pytest.raises(ValidationError, match="admin_token"):
        Settings(admin_token=token)  # type: ignore[arg-type]


def test_an_empty_admin_token_leaves_admin_off_and_a_long_one_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPCANVAS_ADMIN_TOKEN", "")  # compose's ${DEEPCANVAS_ADMIN_TOKEN:-}
    assert Settings().admin_token is None
    token = Settings(admin_token="a-long-admin-token-0123")  # type: ignore[arg-type]
    assert token.admin_token is not None and token.admin_token.get_secret_value() == "a-long-admin-token-0123"


def test_the_cache_is_per_user_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Not a shared /tmp folder: it holds the identity database and the models the service verified."""
    monkeypatch.delenv("DEEPCANVAS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Settings().cache_dir == tmp_path / "xdg" / "deepcanvas"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings().cache_dir == tmp_path / "home" / ".cache" / "deepcanvas"


def test_the_cache_folder_is_closed_to_other_users_and_must_be_ours(tmp_path: Path) -> None:
    opened = tmp_path / "open"
    opened.mkdir(mode=0o777)
    opened.chmod(0o777)
    assert stat.S_IMODE(private_folder(opened).stat().st_mode) == 0o700
    assert stat.S_IMODE(private_folder(tmp_path / "new" / "cache").stat().st_mode) == 0o700
    if os.getuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 12345, 12345)
    with pytest.raises(ValueError, match="belongs to another user"):
        private_folder(theirs)
