"""Teachers, students and distillation on acam datasets (needs PyTorch: the ``learn`` extra).

``learn.models`` (registry), ``learn.data`` (crop datasets), ``learn.losses`` (Eq. 1),
``learn.train`` (the one training loop), ``learn.evaluate``, ``learn.transfer``, ``learn.reproduce``.
"""
