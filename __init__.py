"""acam - an acoustic-camera toolkit.

``acam.beamform``   many-microphone recordings -> acoustic cubes (NumPy/Numba on the CPU, CuPy on the GPU)
``acam.dataset``    simulated and imported audio-visual action datasets, MFCC compression of cubes
``acam.learn``      teachers, single-microphone students and distillation (PyTorch, the ``learn`` extra)
``acam.benchmarks`` throughput of every heavy step against peers
``acam.core``       what they share: errors, progress, the task runner, digests, machine resources
``acam.cli``        the ``acam``, ``beamform`` and ``learn`` commands

In the repository these are the top-level folders ``beamform/``, ``dataset/``, ``learn/``,
``benchmarks/``, ``core/`` and the file ``cli.py``; ``pyproject.toml`` installs them under the one
import name ``acam``.
"""

__version__ = "0.2.0"

# before NumPy loads OpenBLAS: the right kernels on CPUs OpenBLAS does not know yet (acam.core.cpu).
# Imported by its absolute name: pytest imports this file as a plain module when it collects the
# repository root (a folder with __init__.py) under a name that is no Python identifier.
from acam.core.cpu import prefer_openblas_kernels as _prefer_openblas_kernels  # noqa: E402

_prefer_openblas_kernels()
