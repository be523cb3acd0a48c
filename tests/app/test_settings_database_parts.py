"""DEEPCANVAS_DATABASE_URL assembled from parts, as the ECS task gets them (RDS host, secret user and password)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from app.settings import Settings

PARTS = {
    "DEEPCANVAS_DATABASE_HOST": "deepcanvas.abc123.eu-west-1.rds.amazonaws.com",
    "DEEPCANVAS_DATABASE_PORT": "5433",
    "DEEPCANVAS_DATABASE_NAME": "identities",
    "DEEPCANVAS_DATABASE_USER": "deepcanvas",
    # What Secrets Manager may generate: every character that means something in a URL.
    "DEEPCANVAS_DATABASE_PASSWORD": "p@ss:w/rd?#%&=+ x",
}


def _url(settings: Settings) -> str:
    assert settings.database_url is not None
    return settings.database_url.get_secret_value()


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPCANVAS_DATABASE_URL", raising=False)
    for name, value in PARTS.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("parts")
def test_parts_build_a_postgresql_url_that_sqlalchemy_reads_back_exactly() -> None:
    url = make_url(_url(Settings()))
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database) == (PARTS["DEEPCANVAS_DATABASE_HOST"], 5433, "identities")
    assert (url.username, url.password) == ("deepcanvas", PARTS["DEEPCANVAS_DATABASE_PASSWORD"])


@pytest.mark.usefixtures("parts")
def test_an_explicit_database_url_wins_over_the_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPCANVAS_DATABASE_URL", "sqlite:////tmp/identities.sqlite3")
    assert _url(Settings()) == "sqlite:////tmp/identities.sqlite3"


def test_port_and_name_default_and_the_password_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPCANVAS_DATABASE_URL", raising=False)
    settings = Settings(database_host="db", database_user="app", database_password="s3cret")
    assert _url(settings) == "postgresql+psycopg://app:s3cret@db:5432/deepcanvas"
    assert "s3cret" not in repr(settings)


def test_without_a_host_the_parts_build_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPCANVAS_DATABASE_URL", raising=False)
    monkeypatch.delenv("DEEPCANVAS_DATABASE_HOST", raising=False)
    assert Settings(database_user="app", database_password="s3cret").database_url is None


def test_an_impossible_port_is_refused() -> None:
    with pytest.raises(ValidationError, match="database_port"):
        Settings(database_host="db", database_port=70000)


@pytest.mark.parametrize(
    "password",
    ["Sup3r@S3cretTail", "p@ss:w/rd?S3cretTail"],  # "@" moved the tail into the host; ":" after it broke the port
)
def test_a_database_url_whose_password_is_not_encoded_is_refused_without_repeating_it(password: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(database_url=f"postgresql+psycopg://app:{password}@db.internal:5432/deepcanvas")
    message = str(refused.value)
    assert "percent-encode" in message and "DEEPCANVAS_DATABASE_PASSWORD" in message
    assert "S3cretTail" not in message and "ss:w" not in message


def test_a_database_url_with_an_encoded_password_keeps_it_exactly() -> None:
    password = "p@ss:w/rd?#%&=+ x"
    settings = Settings(database_url=f"postgresql+psycopg://app:{quote(password, safe='')}@db.internal/deepcanvas")
    assert make_url(_url(settings)).password == password and make_url(_url(settings)).host == "db.internal"
