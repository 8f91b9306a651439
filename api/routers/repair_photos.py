"""Photos on repair orders: a student shows the broken tap, a worker the mended one. Whoever may see an
order may add a photo to it while it is not finished, and see its photos."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Path, UploadFile, status
from fastapi.responses import Response
from sqlalchemy import func, select

from api.bounds import MAX_ROW_ID
from api.repair_access import ViewerStep
from api.schemas import RepairPhotoOut
from houqin.store.tables import OrderStatus, RepairPhoto

router = APIRouter(prefix="/api/v1/repairs/{order_id}/photos", tags=["repairs"])

MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_PHOTOS_PER_ORDER = 12
# What a photo is, from its first bytes: the type the client claims is not trusted.
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def _image_type(head: bytes) -> str | None:
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


@router.post(
    "",
    response_model=RepairPhotoOut,
    status_code=status.HTTP_201_CREATED,
    summary="Attach a photo: JPEG, PNG or WebP up to 5 MB (whoever may see the order)",
)
async def add_photo(photo: Annotated[UploadFile, File(description="the photo")], step: ViewerStep) -> RepairPhotoOut:
    order, session, user = step.order, step.session, step.user
    if order.status in {OrderStatus.CLOSED, OrderStatus.CANCELLED}:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{order.number} is {order.status}: no more photos")
    data = await photo.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"a photo is at most {MAX_PHOTO_BYTES >> 20} MB")
    content_type = _image_type(data[:16])
    if content_type is None:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "a photo must be a JPEG, PNG or WebP image")
    count = (await session.execute(select(func.count()).where(RepairPhoto.order_id == order.id))).scalar_one()
    if count >= MAX_PHOTOS_PER_ORDER:
        raise HTTPException(status.HTTP_409_CONFLICT, f"an order holds at most {MAX_PHOTOS_PER_ORDER} photos")
    now = datetime.now(UTC)
    row = RepairPhoto(order_id=order.id, uploaded_by=user.username, content_type=content_type, size=len(data),
                      data=data, created_at=now)  # fmt: skip
    session.add(row)
    await session.flush()
    step.desk.photo(session, order, user, now, row.id)
    await session.commit()
    return RepairPhotoOut.model_validate(row, from_attributes=True)


@router.get("", response_model=list[RepairPhotoOut], summary="An order's photos")
async def list_photos(step: ViewerStep) -> list[RepairPhotoOut]:
    order, session = step.order, step.session
    query = select(RepairPhoto.id, RepairPhoto.uploaded_by, RepairPhoto.content_type, RepairPhoto.size,
                   RepairPhoto.created_at).where(RepairPhoto.order_id == order.id).order_by(RepairPhoto.id)  # fmt: skip
    return [RepairPhotoOut.model_validate(row, from_attributes=True) for row in (await session.execute(query)).all()]


@router.get(
    "/{photo_id}",
    summary="One photo's image (whoever may see the order)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}},
)
async def read_photo(photo_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], step: ViewerStep) -> Response:
    order = step.order
    photo = await step.session.get(RepairPhoto, photo_id)
    if photo is None or photo.order_id != order.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no photo {photo_id} on {order.number}")
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'"}  # fmt: skip
    return Response(photo.data, media_type=photo.content_type, headers=headers)
