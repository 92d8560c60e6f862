"""The devices tests run on, and skipping a render backend where it cannot run."""

import pytest
import torch

from xrender.render import BACKENDS

#: The devices a ``device`` test runs on: the CPU, and CUDA wherever a GPU is present.
DEVICES = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def backend_on(name: str, device: torch.device) -> str:
    """The render backend ``name``, or skip the test where it cannot render on ``device``."""
    types = BACKENDS.get(name).device_types
    if types is not None and device.type not in types:
        pytest.skip(f"the {name} backend renders on {', '.join(types)} only, not {device.type}")
    return name
