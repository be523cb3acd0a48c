"""POST /stylize: repaint a photo in the style of one or several paintings."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Response, UploadFile
from PIL import Image

from app import services
from app.deps import ImageLimitsDep, ManagerDep, ParamsDep, SettingsDep
from app.errors import InvalidParameter
from app.forms import FormRoute
from app.schemas import ERROR_RESPONSES
from app.telemetry import NST_ROUTE, label_route
from app.uploads import read_image
from models.style.sizing import served_size

router = APIRouter(prefix="/stylize", tags=["stylize"], route_class=FormRoute)
MAX_STYLES = 8  # styles one request may mix, files and gallery names together

IMAGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The stylized image"}
}


async def _within(image: Image.Image, side: int) -> Image.Image:
    """``image`` with its longer side at most ``side`` (the predictor reads no more), shrunk off the event loop."""
    if max(image.size) > side:
        await asyncio.to_thread(image.thumbnail, (side, side), Image.Resampling.LANCZOS)
    return image


def _wide_enough(size: tuple[int, int], side: int, least: int, field: str, largest: int) -> None:
    """422 when the painting, at the photo's proportions with its longer side at most ``side``, would be thinner
    than ``least`` pixels (the smallest side the service accepts): a 16×5000 photo came back 1×64 at max_side 64."""
    width, height = served_size(*size, side)
    if min(width, height) >= least:
        return
    needed = math.ceil(least * max(size) / min(size))
    hint = f"send max_side={needed} or more" if needed <= largest else f"no max_side up to {largest} does; crop it"
    raise InvalidParameter(
        f"{field}: at max_side {side} this photo would be painted {width}×{height}; its smaller side must be at "
        f"least {least} pixels ({hint})"
    )


@router.post("", response_class=Response, responses={**IMAGE_RESPONSE, **ERROR_RESPONSES})
async def stylize_image(
    manager: ManagerDep,
    settings: SettingsDep,
    params: ParamsDep,
    limits: ImageLimitsDep,
    content: Annotated[UploadFile, File(description="The photo to repaint")],
    style: Annotated[
        list[UploadFile] | None,
        File(description=f"Style image(s); repeat to interpolate several (at most {MAX_STYLES} styles in all)"),
    ] = None,
    style_name: Annotated[
        list[str] | None, Form(description="Gallery style name(s) from GET /styles; repeat to interpolate")
    ] = None,
    style_weights: Annotated[
        list[float] | None, Form(description="One weight per style, in the order given", examples=[[0.7, 0.3]])
    ] = None,
    alpha: Annotated[
        float | None,
        Form(
            ge=0,
            le=1,
            allow_inf_nan=False,
            description="0 paints the decoder's reconstruction of the photo (close to it, not identical), 1 paints "
            "fully; default from parameters",
        ),
    ] = None,
    preserve_color: Annotated[bool, Form(description="Keep the photo's colours")] = False,
    method: Annotated[
        Literal["adain", "nst"], Form(description="adain (fast) or nst (classical Gatys optimisation, slow)")
    ] = "adain",
    max_side: Annotated[
        int | None,
        Form(
            ge=32,
            description="Bound on the output's longer side (the photo is never enlarged; its proportions are kept): "
            "at most the service's DEEPCANVAS_STYLIZE_MAX_SIDE_LIMIT (2048 by default), and for method=nst at most "
            "DEEPCANVAS_NST_MAX_SIDE (512 by default); default: the runtime parameter stylize_max_side, or for nst "
            "DEEPCANVAS_NST_MAX_SIDE",
            examples=[768],
        ),
    ] = None,
    format: Annotated[
        Literal["png", "jpeg"],
        Form(
            description="Output encoding: png is lossless; jpeg (quality 92) is about 5x smaller and encodes about "
            "20x faster (a 256 px PNG costs about 6 ms of a small CPU, a quarter of the painting itself)"
        ),
    ] = "png",
    max_seconds: Annotated[
        float | None,
        Form(
            gt=0,
            allow_inf_nan=False,
            description="method=nst: time budget in seconds, at least 1; the steps taken come back in X-NST-Steps",
        ),
    ] = None,
    manner: Annotated[
        float | None,
        Form(
            ge=0,
            le=1,
            allow_inf_nan=False,
            description="How strongly each painting's own palette and marks are matched at every scale of the "
            "decoder (0: plain AdaIN decoding); default: the style model's. Style models without decoder-side "
            "matching (GET /models) accept only 0",
        ),
    ] = None,
) -> Response:
    """Stylize ``content`` with an uploaded style or gallery styles; returns the image bytes."""
    if method == "nst":  # seconds, not milliseconds: NST's latency is counted apart from AdaIN's
        label_route(NST_ROUTE)
    if max_side is not None and max_side > settings.stylize_max_side_limit:
        raise InvalidParameter(f"max_side: must be at most {settings.stylize_max_side_limit}")
    if method == "nst" and max_side is not None and max_side > settings.nst_max_side:
        raise InvalidParameter(f"max_side: method=nst paints at most {settings.nst_max_side} px; ask less or omit it")
    # The painting is made at no more than this side: a large JPEG upload decodes at a reduced DCT scale.
    side = services.stylize_side(settings, params, method, max_side)
    photo = await read_image(content, limits, "content", long_side=side)
    largest = settings.nst_max_side if method == "nst" else settings.stylize_max_side_limit
    _wide_enough(photo.size, side, limits.min_side, "max_side" if max_side is not None else "content", largest)
    count = len(style or []) + len(style_name or [])
    if count > MAX_STYLES:
        raise InvalidParameter(f"style: at most {MAX_STYLES} styles in one request (style and style_name), got {count}")
    # One after another, each shrunk to the painting's side at once: a dozen large PNGs decoded side by side and
    # kept whole held gigabytes for one request.
    styles = [await _within(await read_image(f, limits, "style", long_side=side), side) for f in style or []]
    options = services.StylizeOptions(
        style_names=tuple(style_name or ()),
        style_images=tuple(styles),
        weights=tuple(style_weights) if style_weights is not None else None,
        alpha=alpha,
        preserve_color=preserve_color,
        method=method,
        max_side=max_side,
        format=format,
        max_seconds=max_seconds,
        manner=manner,
    )
    painted = await services.stylize(manager, settings, params, photo, options)
    headers = {"X-Model-Name": painted.model.name, "X-Model-Version": painted.model.version}
    if painted.nst_steps is not None:
        headers["X-NST-Steps"] = str(painted.nst_steps)
    return Response(content=painted.data, media_type=painted.content_type, headers=headers)
