"""Shared pytest setup: `cuda`-marked tests skip without a GPU; plotting never opens a window; nbval waits for
a busy kernel's output."""

import matplotlib

# Agg in this process only (not through MPLBACKEND, which notebook kernels started by nbval inherit: they
# must draw inline, or no figure would be compared with the stored ones).
matplotlib.use("Agg")

import pytest  # noqa: E402

# nbval gives a kernel 5 s between two output messages once a cell has finished, and then fails the cell
# ("Timeout of 5 seconds exceeded waiting for output") and restarts the kernel. On the 2-core machine, with two
# notebooks training at once, a kernel can fall that far behind after a long training cell: seen twice on a
# loaded machine. 60 s keeps the check (a kernel that stops answering still fails) without the flake.
NBVAL_OUTPUT_TIMEOUT_S = 60
try:
    from nbval.plugin import IPyNbCell as _NbCell

    _nbval_init = _NbCell.__init__

    def _patient_init(self, *args, **kwargs):
        _nbval_init(self, *args, **kwargs)
        self.output_timeout = NBVAL_OUTPUT_TIMEOUT_S

    _NbCell.__init__ = _patient_init
except ImportError:  # pragma: no cover - nbval is a test dependency
    pass


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
