"""Input streams the tests hand to storages: those the storage contract uses."""

from __future__ import annotations

from sa_depot.testing.streams import FailingStream, GeneratedStream, InputBroke

__all__ = ["FailingStream", "GeneratedStream", "InputBroke"]
