"""The API's dashboard routes. (Skeleton: filled in by the work of issue 10.)"""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
