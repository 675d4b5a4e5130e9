"""Physics version 2: every figure of the simulation in one place, each with where it comes from.

Labels (as in docs/DATASET.md): **F** found in a document (cited), **M** a standard or textbook value
recalled, not re-checked against the document, **E** an estimate with no measurement behind it (a
placeholder to replace with a measurement), **V** computed here from other figures.  All figures were
fixed before any training and are never tuned towards a result.

Conventions: levels are dB re 20 uPa; a source's level is its free-field A-weighted equivalent level
``LAeq`` at 1 m over the time the action goes on (the whole sequence: the subject repeats the action
throughout); positions and heights in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from acam.beamform.sensor import BAD_MICS

from .sounds import ACTIONS

P_REF = 20e-6                       # Pa
PHYSICS_VERSIONS = (1, 2)
DEFAULT_PHYSICS = 2


@dataclass(frozen=True)
class Figure:
    """One number of the simulation, its unit, confidence label and source."""

    value: float
    unit: str
    label: str          # F, M, E or V
    source: str


# -------------------------------------------------------------------------------- action levels
#: LAeq at 1 m over the action, dB(A).  Searches of the literature (docs/DATASET.md lists them) found
#: a measured level only for speech; the others are physically reasoned estimates.
ACTION_LEVEL = {
    "clapping": Figure(75.0, "dBA", "E", "2 Pa peak, 3 ms decay, 3 claps/s; record clap 117 dBA is an upper bound"),
    "snapping fingers": Figure(62.0, "dBA", "E", "about 10 dB below a clap, 1.5 snaps/s"),
    "speaking": Figure(60.0, "dBA", "M", "ISO 9921:2003 vocal effort 'normal' (Pearsons et al. 1977: 55-58 dBA)"),
    "whistling": Figure(70.0, "dBA", "E", "casual tune, tonal 1-3 kHz"),
    "playing kendama": Figure(58.0, "dBA", "E", "60 g hardwood ball caught about once a second"),
    "clicking": Figure(45.0, "dBA", "E", "mouse or pen clicks, 3 per second"),
    "typing": Figure(52.0, "dBA", "E", "5 keystrokes/s; the key hitting the keyboard base (mechanism: "
                                       "PC keyboard noise study)"),
    "knocking": Figure(68.0, "dBA", "E", "knuckles on wood, bursts of 3-4 knocks"),
    "hammering": Figure(88.0, "dBA", "E", "claw hammer on a nail, 1.5 blows/s"),
    "peanut breaking": Figure(40.0, "dBA", "E", "the faintest class"),
    "paper ripping": Figure(62.0, "dBA", "E", "A4 80 g/m2, about 1 s tears"),
    "plastic crumpling": Figure(58.0, "dBA", "E", "bag or film; click-train structure: Kramer & Lobkovsky 1996"),
    "paper shaking": Figure(52.0, "dBA", "E", "one A4 sheet shaken"),
    "stick dropping": Figure(68.0, "dBA", "E", "30 cm wooden stick dropped 1 m onto a hard floor, with bounces"),
}
#: Subject-to-subject spread of every action level: uniform +-3 dB (E).
LEVEL_SPREAD_DB = Figure(3.0, "dB", "E", "uniform spread between subjects")

# ------------------------------------------------------------------------------------ heights
ARRAY_HEIGHT = Figure(0.80, "m", "E", "array centre above the floor; the paper does not say. At 0.8 m every "
                                      "source height, floor to mouth, is inside the 45 degree vertical view at 2-4 m")
STATURE_SPREAD = Figure(0.07, "relative", "M", "5th-95th percentile stature about +-7 % (Pheasant & Haslegrave 2006)")
#: Height of the sound source of each action, metres; ``scales`` True: times the subject's stature.
SOURCE_HEIGHT = {
    "mouth": (Figure(1.50, "m", "M", "standing eye height 1.63/1.505 m (Pheasant & Haslegrave 2006, Table 10.1) "
                                     "minus 0.11 m, plus shoes"), True),
    "hands": (Figure(1.20, "m", "E", "in front of the chest: standing elbow height 1.09/1.005 m plus 0.15 m"), True),
    "table": (Figure(0.80, "m", "F/E", "desk top 0.74 m (EN 527-1:2011, type C) plus 0.06 m for the object"), False),
    "floor": (Figure(0.01, "m", "-", "an impact on the floor"), False),
}
SOURCE_PLACE = {
    "speaking": "mouth", "whistling": "mouth",
    "clapping": "hands", "snapping fingers": "hands", "playing kendama": "hands",
    "clicking": "table", "typing": "table", "knocking": "table", "hammering": "table",
    "peanut breaking": "table", "paper ripping": "table", "plastic crumpling": "table", "paper shaking": "table",
    "stick dropping": "floor",
}

# ------------------------------------------------------------------------------------- sensor
#: MEMS microphone: ICS-43434 datasheet (TDK InvenSense DS-000069 rev 1.2): SNR 65 dBA at 94 dB SPL.
SELF_NOISE_DBA = Figure(29.0, "dBA SPL", "F", "equivalent input noise = 94 - 65 dB (ICS-43434 datasheet; AN-1112)")
GAIN_SD_DB = Figure(0.20, "dB", "F", "Wijnings et al. ICASSP 2021: +-0.39 dB 95 % interval over 8384 MEMS mics")
GAIN_LIMIT_DB = Figure(1.0, "dB", "F", "datasheet sensitivity tolerance (ICS-43434)")
PHASE_SD_DEG_1K = Figure(0.42, "degrees at 1 kHz", "F", "Wijnings et al. 2021: +-0.82 degrees 95 % interval")
DEAD_MICS = BAD_MICS                # the authors' device (0-based), zeroed in their data (the authors' reference notes)

# ------------------------------------------------------------------------------------- rooms
#: Random-incidence absorption per octave band 125 Hz - 4 kHz (Vorlaender 2008, Auralization, annex,
#: as shipped in pyroomacoustics' materials.json).
OCTAVES = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)
MATERIALS = {
    "linoleum_on_concrete": (0.02, 0.03, 0.03, 0.03, 0.03, 0.02),
    "ceiling_fissured_tile": (0.49, 0.53, 0.53, 0.75, 0.92, 0.99),
    "ceiling_plasterboard": (0.20, 0.15, 0.10, 0.08, 0.04, 0.02),
    "plasterboard": (0.15, 0.10, 0.06, 0.04, 0.04, 0.05),
    "glass_window": (0.10, 0.05, 0.04, 0.03, 0.03, 0.03),
    "concrete_floor": (0.01, 0.03, 0.05, 0.02, 0.02, 0.02),
}
#: Air attenuation, energy, 1/m, 20 C, 30-50 % RH (pyroomacoustics' table after ISO 9613-1).
AIR_ABSORPTION = (0.1e-3, 0.3e-3, 0.6e-3, 1.0e-3, 1.9e-3, 5.8e-3)


@dataclass(frozen=True)
class Room:
    """A room of a scenario: ``kind`` ``free`` (no reflections), ``ground`` (one reflecting floor)
    or ``shoebox``; ``walls`` maps x0, x1, y0, y1, floor, ceiling to octave-band absorption."""

    kind: str
    dim: tuple = (0.0, 0.0, 0.0)
    array_at: tuple = (0.0, 0.0, 0.0)        # array centre, room coordinates (z up), facing +y
    walls: tuple = ()                        # ((name, absorption per octave), ...)
    stated_rt60: float = 0.0
    ism_until: float = 0.05                  # s: image sources up to here, the diffuse tail after


def _mix(a, b, fa):
    return tuple(fa * x + (1 - fa) * y for x, y in zip(MATERIALS[a], MATERIALS[b]))


#: The office: 12 x 9 x 3.2 m (v1's size), hard floor, suspended fissured-tile ceiling of which 10 %
#: is hard fittings (E, the one free figure: it puts the Eyring mid-frequency RT at the stated 0.7 s),
#: one long glazed wall, plasterboard elsewhere.
ROOMS = {
    1: Room("free"),
    2: Room("shoebox", (12.0, 9.0, 3.2), (6.0, 3.0, 0.80),
            (("floor", MATERIALS["linoleum_on_concrete"]),
             ("ceiling", _mix("ceiling_fissured_tile", "ceiling_plasterboard", 0.9)),
             ("y1", MATERIALS["glass_window"]), ("y0", MATERIALS["plasterboard"]),
             ("x0", MATERIALS["plasterboard"]), ("x1", MATERIALS["plasterboard"])), 0.7),
    3: Room("ground", (0.0, 0.0, 0.0), (0.0, 0.0, 0.80), (("floor", MATERIALS["concrete_floor"]),)),
}


def eyring_rt60(room: Room) -> np.ndarray:
    """Eyring reverberation time per octave band with air absorption, s [shape=(6,)]."""
    lx, ly, lz = room.dim
    area = {"x0": ly * lz, "x1": ly * lz, "y0": lx * lz, "y1": lx * lz, "floor": lx * ly, "ceiling": lx * ly}
    total = sum(area.values())
    absorbed = sum(area[name] * np.asarray(a) for name, a in room.walls)
    mean = absorbed / total
    volume = lx * ly * lz
    return 0.161 * volume / (-total * np.log(1 - mean) + 4 * np.asarray(AIR_ABSORPTION) * volume)


# ------------------------------------------------------------------------------------ levels
def a_weighting_db(f) -> np.ndarray:
    """IEC 61672-1 A-weighting, dB, at frequencies ``f`` (Hz); -inf at 0 Hz."""
    f2 = np.asarray(f, float) ** 2
    with np.errstate(divide="ignore"):
        ra = (12194.0 ** 2 * f2 ** 2) / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2))
                                         * (f2 + 12194.0 ** 2))
        return 20 * np.log10(ra) + 2.00


def laeq(x: np.ndarray, fs: float) -> float:
    """A-weighted equivalent level of a pressure signal in Pa (the whole signal), dB re 20 uPa."""
    x = np.asarray(x, float)
    spec = np.fft.rfft(x)
    w = 10 ** (a_weighting_db(np.fft.rfftfreq(len(x), 1 / fs)) / 20)
    power = np.sum(np.abs(spec * w) ** 2 * np.where(np.arange(len(spec)) == 0, 1.0, 2.0)) / len(x) ** 2
    if len(x) % 2 == 0:
        power -= np.abs(spec[-1] * w[-1]) ** 2 / len(x) ** 2          # Nyquist bin counted once
    return 10 * math.log10(max(power, 1e-30) / P_REF ** 2)


def scale_to_laeq(x: np.ndarray, fs: float, level_db: float) -> np.ndarray:
    """``x`` scaled so that its LAeq is ``level_db`` (a silent signal stays silent)."""
    now = laeq(x, fs)
    if now <= -290:
        return np.zeros_like(x, dtype=float)
    return np.asarray(x, float) * 10 ** ((level_db - now) / 20)


def action_level(action: int, loudness: float) -> float:
    """The level of ``action`` for a subject of ``loudness`` (v1's factor, 0.7-1.4): the cited level
    plus the subject's offset, clipped to the +-3 dB spread."""
    spread = LEVEL_SPREAD_DB.value
    offset = float(np.clip(20 * math.log10(loudness), -spread, spread))
    return ACTION_LEVEL[ACTIONS[action]].value + offset


def stature(subject: int, seed: int) -> float:
    """The subject's stature relative to the mean (1 +- 7 %)."""
    rng = np.random.default_rng([seed, 7919, subject, 1])
    s = STATURE_SPREAD.value
    return float(rng.uniform(1 - s, 1 + s))


def source_height(action: int, subject_stature: float) -> float:
    """Height above the floor of the sound of ``action``, metres."""
    fig, scales = SOURCE_HEIGHT[SOURCE_PLACE[ACTIONS[action]]]
    return fig.value * (subject_stature if scales else 1.0)


def self_noise_psd() -> float:
    """One-sided PSD (Pa^2/Hz) of white noise whose A-weighted level over 20 Hz - 20 kHz is the
    microphone's equivalent input noise (the datasheet's SNR bandwidth)."""
    f = np.linspace(20.0, 20000.0, 20001)
    enbw = float(np.trapezoid(10 ** (a_weighting_db(f) / 10), f))        # about 12.5 kHz
    return (P_REF * 10 ** (SELF_NOISE_DBA.value / 20)) ** 2 / enbw


# ------------------------------------------------------------------------------------ ambience
#: Office HVAC bed: the NC-35 curve, octave bands 63-4000 Hz (Beranek; ANSI S12.2), dB SPL; its
#: A-weighted sum is 44 dBA (V).  Spherically isotropic.
NC35 = Figure(0.0, "dB SPL per octave", "F", "NC-35: 60/52/45/40/36/34/33 dB at 63-4000 Hz (Crystal Instruments 2018)")
NC35_BANDS = ((63.0, 60.0), (125.0, 52.0), (250.0, 45.0), (500.0, 40.0), (1000.0, 36.0), (2000.0, 34.0),
              (4000.0, 33.0))
#: Terrace ambience: typical urban daytime L95 (EEA 1995, Dobris Assessment, Table 10.8), with the
#: normalised road-traffic spectrum of EN 1793-3:1997 (relative A-weighted third-octave levels
#: 100 Hz - 5 kHz, values recalled: M).  Cylindrically isotropic (sources around, in the horizontal).
URBAN_L95 = Figure(55.0, "dBA", "F", "EEA 1995 Dobris Assessment Box 10G: typical urban daytime L95 55 dB(A)")
EN1793_THIRDS = ((100, -20), (125, -20), (160, -18), (200, -16), (250, -15), (315, -14), (400, -13),
                 (500, -12), (630, -11), (800, -9), (1000, -8), (1250, -9), (1600, -10), (2000, -11),
                 (2500, -13), (3150, -15), (4000, -16), (5000, -18))
#: Wind on an unscreened port: Strasberg (1988), third-octave level
#: 40 lg(V) - 23 lg(f D / V) + 15 dB SPL (valid 0.1 < fD/V < 5; extended flat below, same slope above),
#: incoherent between microphones (Lyons, Hart & Raspet 2021).  V and D are estimates.
WIND_SPEED = Figure(3.0, "m/s", "E", "Beaufort 2, light breeze (WMO scale: 1.6-3.3 m/s)")
WIND_PORT = Figure(0.01, "m", "E", "effective 'screen' diameter of a bare MEMS port (an extrapolation)")

# --------------------------------------------------------------------------------- interferers
TALKER_LEVEL = Figure(60.0, "dBA at 1 m", "M", "ISO 9921 normal effort, as the speaking action")
PASSER_BY_LEVEL = Figure(64.0, "dBA at 1 m", "M/F", "normal effort + Lombard rise in 55 dBA (van Heusden et al. 1979)")
TYPING_COLLEAGUE_LEVEL = Figure(50.0, "dBA at 1 m", "E", "a colleague typing, lighter than the typing action")
PHONE_LEVEL = Figure(68.0, "dBA at 1 m", "E", "desk phone ringing, 1 s on / 2 s off")
PRINTER_LEVEL = Figure(60.0, "dBA at 1 m", "F/V", "Blue Angel DE-UZ 205: LWA <= 47 + 15 lg(30 + 10) = 71 dB at 30 ppm; "
                                                  "Lp = LWA - 11 dB at 1 m (free field)")
CAR_LEVEL = Figure(84.5, "dBA at 1 m", "M/V", "UN ECE R51.03 limit LAFmax 70 dB(A) at 7.5 m (over the ground, which "
                                               "adds up to 3 dB): 70 + 20 lg 7.5 - 3")
FOOTSTEP_LEVEL = Figure(62.0, "dBA LAFmax at 1 m", "E", "hard shoes on paving, 2 steps/s")
BIRD_LEVEL = Figure(91.0, "dB SPL at 1 m", "F", "red-winged blackbird song, mean of maximum rms 88.5-93.5 dB "
                                                 "(Brenowitz 1982)")
WALKING_SPEED = Figure(1.4, "m/s", "M", "comfortable walking speed of adults")
CAR_SPEED_KMH = (30.0, 50.0)
CARS_PER_SECOND = Figure(0.1, "1/s", "E", "360 vehicles/h on a city street (300-600)")
ROAD_DISTANCE = Figure(15.0, "m", "E", "terrace to the lane centre")
