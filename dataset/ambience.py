"""Noise of physics version 2: ambience per scenario (diffuse), wind and the microphones' own noise
(independent per channel).

| scenario | diffuse ambience | independent per microphone |
|---|---|---|
| 1 anechoic room | none (a chamber's 11 dBA is 18 dB under the microphones' self-noise) | self-noise 29 dBA |
| 2 office | HVAC, NC-35 spectrum (44 dBA), spherically isotropic | self-noise |
| 3 terrace | distant traffic, EN 1793-3 spectrum at the urban L95 55 dBA, horizontal (cylindrically isotropic) | self-noise, wind 3 m/s (Strasberg 1988) |
"""

from __future__ import annotations

import numpy as np

from . import physics as ph


def band_psd(bands, fraction: int, f) -> np.ndarray:
    """PSD (Pa^2/Hz) at ``f`` from band levels ``((centre Hz, dB SPL), ...)`` of 1/``fraction``-octave
    bands: each band's power spread over its width, interpolated linearly in log-log between centres,
    held below the first and extended with the last slope above the last."""
    fc = np.array([b[0] for b in bands], float)
    level = np.array([b[1] for b in bands], float)
    width = fc * (2 ** (0.5 / fraction) - 2 ** (-0.5 / fraction))
    log_psd = np.log10(ph.P_REF ** 2 * 10 ** (level / 10) / width)
    lf = np.log10(np.maximum(np.asarray(f, float), fc[0]))
    slope = (log_psd[-1] - log_psd[-2]) / (np.log10(fc[-1]) - np.log10(fc[-2]))
    out = np.interp(lf, np.log10(fc), log_psd)
    above = lf > np.log10(fc[-1])
    out[above] = log_psd[-1] + slope * (lf[above] - np.log10(fc[-1]))
    return 10 ** out


def nc35_psd(f) -> np.ndarray:
    """Office HVAC: the NC-35 octave-band curve."""
    return band_psd(ph.NC35_BANDS, 1, f)


def traffic_psd(f) -> np.ndarray:
    """Distant traffic: EN 1793-3 relative A-weighted third-octave levels placed at the urban L95."""
    bands = [(fc, ph.URBAN_L95.value + rel - float(ph.a_weighting_db(fc))) for fc, rel in ph.EN1793_THIRDS]
    return band_psd(bands, 3, f)


def wind_psd(f) -> np.ndarray:
    """Wind on the microphone port (Strasberg 1988), third-octave levels turned into a PSD."""
    v, d = ph.WIND_SPEED.value, ph.WIND_PORT.value
    f = np.maximum(np.asarray(f, float), 0.1 * v / d)
    level = 40 * np.log10(v) - 23 * np.log10(f * d / v) + 15
    return ph.P_REF ** 2 * 10 ** (level / 10) / (0.2316 * f)


#: Diffuse ambience per scenario: (kind of field, PSD) or None.
AMBIENCE = {1: None, 2: ("spherical", nc35_psd), 3: ("horizontal", traffic_psd)}
WIND = {1: False, 2: False, 3: True}


def incoherent_psd(scenario: int, f) -> np.ndarray:
    """PSD of what is independent per microphone: self-noise, plus wind outdoors."""
    out = np.full(np.shape(f), ph.self_noise_psd())
    return out + wind_psd(f) if WIND[scenario] else out


def incoherent_noise(n: int, n_mics: int, fs: float, scenario: int, rng: np.random.Generator,
                     mic_gain=None, block: int = 16) -> np.ndarray:
    """Independent noise per microphone with :func:`incoherent_psd`: [shape=(n, n_mics)], float32."""
    f = np.fft.rfftfreq(n, 1 / fs)
    amp = np.sqrt(incoherent_psd(scenario, f) * fs / 2)
    out = np.empty((n, n_mics), np.float32)
    g = np.ones(n_mics) if mic_gain is None else np.asarray(mic_gain, float)
    for c in range(0, n_mics, block):
        white = rng.standard_normal((min(block, n_mics - c), n))
        out[:, c:c + block] = (np.fft.irfft(np.fft.rfft(white, axis=1) * amp[None, :], n, axis=1)
                               * g[c:c + block, None]).T
    return out


def ambient_gain(scenario: int, fs: float, freqs: np.ndarray) -> np.ndarray | None:
    """The diffuse ambience as a white-noise multiplier per bin of ``freqs`` [shape=(F, 1)], or None."""
    amb = AMBIENCE[scenario]
    if amb is None:
        return None
    return np.sqrt(amb[1](freqs) * fs / 2)[:, None]
