"""Shared pytest setup: `cuda`-marked tests skip without a GPU; plotting never opens a window."""

import matplotlib

# Agg in this process only (not through MPLBACKEND, which notebook kernels started by nbval inherit: they
# must draw inline, or no figure would be compared with the stored ones).
matplotlib.use("Agg")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
