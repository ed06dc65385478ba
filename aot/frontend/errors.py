"""FrontendError: every refusal of the frontend (bad model file, train mode,
random ops, data-dependent shapes, a failed capture) is one of these, with a
message that says what, where (model.py line) and what to do instead."""

from __future__ import annotations


class FrontendError(Exception):
    """A model the frontend cannot capture, with the reason and a hint."""
