"""The SDK's standard target test suite, against the emulator on a free loopback port."""

from __future__ import annotations

import typing as t

import pytest
from singer_sdk.testing import get_target_test_class

from target_stitch_import.target import TargetStitchImport

if t.TYPE_CHECKING:
    from conftest import Emulator

#: Filled in by the fixture below before each test builds its runner (the SDK keeps
#: a reference to this dict, not a copy).
SAMPLE_CONFIG: dict[str, t.Any] = {"token": "test-token", "api_url": "http://127.0.0.1:9"}

StandardTargetTests = get_target_test_class(TargetStitchImport, config=SAMPLE_CONFIG)


class TestTargetStitchImport(StandardTargetTests):  # type: ignore[misc, valid-type]
    """Standard target tests: every test really drains into a fresh emulator."""

    @pytest.fixture(autouse=True)
    def _emulator(self, emulator: Emulator) -> t.Iterator[None]:
        SAMPLE_CONFIG["api_url"] = emulator.url
        SAMPLE_CONFIG["token"] = emulator.token
        yield
        SAMPLE_CONFIG["api_url"] = "http://127.0.0.1:9"
