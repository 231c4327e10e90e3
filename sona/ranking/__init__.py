"""Shared ranking operations: top-k with filters, re-ranking, blending."""

from sona.ranking.topk import topk

__all__ = ["topk"]
