"""acam's beamformer: many-microphone recordings -> acoustic cubes (NumPy on the CPU, CuPy on the GPU).

Data flow: raw recording (HDF5) -> :class:`~acam.beamform.io.RawRecording` -> :class:`Beamformer`
-> acoustic cube (HDF5, :class:`~acam.beamform.io.Cube`).  Importing this package needs neither CuPy
nor a GPU.
"""

from .. import __version__
from ..core.errors import AcamError, FormatError  # noqa: E402
from .filter_and_sum import Beamformer, frame_layout, frame_spectra, steered_power  # noqa: E402
from .geometry import ArrayGeometry, aperiodic, default_array  # noqa: E402
from .grid import CameraGrid  # noqa: E402
from .io import Cube, RawRecording, write_raw  # noqa: E402
from .steering import SteeringSpec, steering_matrix  # noqa: E402

__all__ = [
    "AcamError", "FormatError", "Beamformer", "frame_layout", "frame_spectra", "steered_power",
    "ArrayGeometry", "aperiodic", "default_array", "CameraGrid", "Cube", "RawRecording",
    "write_raw", "SteeringSpec", "steering_matrix", "__version__",
]
