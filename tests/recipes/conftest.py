"""Shared set-up of the recipe tests: a small phantom subject and a 16 × 16 C-arm."""

import pytest

from xrender.geometry import get_preset
from xrender.subject import phantom_subject


@pytest.fixture(scope="module")
def subject():
    return phantom_subject(24, 200.0)


@pytest.fixture(scope="module")
def carm():
    return get_preset("prost").downsample(8)  # 16 × 16
