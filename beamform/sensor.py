"""The sensor the paper's data came from (DualCam) and the physical constants every module shares.

One home for these numbers: import them, never type them again.  Sources: the paper (section 3)
and the authors' code, as gathered in the authors' reference notes (README, "File formats").
"""

from __future__ import annotations

#: Speed of sound in air at about 20 degrees C, m/s.
SPEED_OF_SOUND = 343.0

#: Audio sample rate of the sensor, Hz (12 video frames x 1024 samples per second; the paper says "12 kHz").
SAMPLE_FREQ = 12288.0
#: Video frames per second.
FRAME_RATE = 12.0
#: Audio samples per video frame.
SAMPLES_PER_FRAME = 1024
#: Frequency bins per acoustic image (1024-point FFT without its Nyquist bin), 12 Hz apart.
N_BINS = 512
#: Acoustic image size, rows x columns.
IMAGE_ROWS, IMAGE_COLS = 36, 48
#: Camera field of view, degrees (horizontal, vertical) - the 640 x 480 camera at the array centre.
HFOV, VFOV = 60.0, 45.0
#: Microphones and the side of the square planar aperture, metres.
N_MICS = 128
APERTURE = 0.45
#: Microphones broken in the authors' device (0-based), zeroed in their data.
BAD_MICS = (79, 105)
#: Band whose energy the paper's pictures show, Hz.
DISPLAY_BAND = (900.0, 6400.0)
