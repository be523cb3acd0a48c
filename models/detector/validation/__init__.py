"""The detector validation set: real photos no detector trains on, teacher boxes checked by eye.

``boxes.json`` (beside this file) lists each photo by its path relative to the shared data root, with its
``faces`` and its ``ignore`` regions (unsure or tiny, neither a face to find nor a false detection), all in
the face-boxes framing every served detector answers in. ``detector-mixed`` leaves these photos out.
"""

from pathlib import Path

BOXES_JSON = Path(__file__).resolve().parent / "boxes.json"
