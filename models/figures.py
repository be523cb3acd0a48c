"""Where figures drawn from ../shared's images go: a local, git-ignored folder, never a model artifact.

../shared's photos (PASCAL VOC, crowds, faces, the style corpus) are for research and evaluation only, and
most of its paintings are not public domain: a picture that shows them (a stylized grid, detections drawn on
a photo, a contact sheet of the validation photos) may not be copied into the repository, nor ship in an
artifact that the Docker image embeds. The commands draw such figures into ``runs/figures/<name>-<version>/``
(or their ``--figures`` folder) and the model card says which command draws them. Charts with no picture in
them (precision-recall, ROC, loss scatter plots) stay in the artifact, listed and hashed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from models.artifact import check_safe_name

FIGURES_ROOT = Path("runs") / "figures"  # relative to where the command runs: the checkout's root in the docs
FIGURES_HELP = "Folder for the pictures of ../shared's images (never shipped); default runs/figures/NAME-VERSION"


def figures_folder(name: str, version: str) -> Path:
    """The default folder for the figures of artifact ``name``/``version``: ``runs/figures/<name>-<version>``."""
    return FIGURES_ROOT / f"{check_safe_name(name)}-{check_safe_name(version)}"


def drop_from_artifact(out_dir: Path, names: Sequence[str]) -> None:
    """Remove an earlier card's pictures named ``names`` from the artifact folder, so a re-pack never lists them."""
    for name in names:
        (out_dir / name).unlink(missing_ok=True)


def not_shipped(files: Sequence[str], command: str, model: str) -> str:
    """The model card's sentence in place of figures drawn from ../shared's images; ``model`` is "name/version".

    Up to three files are named; more (listed by the card itself) are "these N pictures".
    """
    names = ", ".join(f"`{file}`" for file in files) if len(files) <= 3 else f"these {len(files)} pictures"
    verb = "is" if len(files) == 1 else "are"
    folder = (FIGURES_ROOT / model.replace("/", "-")).as_posix()
    return (
        f"Not shipped: {names} {verb} drawn by `{command}` into a local figures folder (`--figures`, default "
        f"`{folder}/`) from ../shared's images, whose terms forbid copying them into the repository or an artifact."
    )
