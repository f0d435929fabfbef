"""Fixtures for tests/api: ``mock_api`` (an AmoClient on httpx.MockTransport; see apihelpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from apihelpers import MockApi


@pytest.fixture
async def mock_api() -> AsyncIterator[MockApi]:
    api = MockApi()
    yield api
    for c in api.clients:
        await c.aclose()
