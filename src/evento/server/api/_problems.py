"""Errors as ``application/problem+json`` (RFC 9457): every client mistake a 4xx with one readable line, every
failure a JSON body, never a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["install_problem_handlers"]


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem document. (Skeleton: filled in by the API work of issue 10.)"""
    return
