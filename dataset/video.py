"""Rendered video for simulated sequences: a person and an object at the source's image position.

:func:`render` is physics version 1 (below); :func:`render_v2` is version 2, where what moves is what
is seen (lips for speech, hands or tool at the impacts) and the sound's envelope never drives the
picture (:func:`motion_v2`; docs/DATASET.md).

What the version 1 picture shows, and why it is an honest cue:

- The background depends on the scenario: 1 a dark room lined with foam wedges, 2 an office wall
  with desks, screens and clutter (more in every sequence, drawn per sequence), 3 sky and a terrace
  floor with plants.  It says where, not what.
- The person (head, torso, two hands) stands at the projection of the source's position, scaled by
  its distance; shirt colour and height belong to the subject, not the action.
- The hands move with the action's rhythm (their motion follows the envelope of the sound the
  subject makes), as hands do in real video.
- The object in the hands comes from a small set of props shared by several actions (no prop:
  clapping, snapping fingers, speaking, whistling; small toy: kendama, peanuts; keyboard / mouse
  block: typing, clicking; tool: knocking, hammering, stick dropping; sheet: paper ripping, paper
  shaking, plastic crumpling), with jittered colour and size and frames where it is hidden.  So the
  picture narrows the action down to a group; the motion tells more; neither gives it away.
"""

from __future__ import annotations

import numpy as np

from acam.beamform.grid import CameraGrid

from . import physics as _ph
from .sounds import ACTIONS

PROP_OF_ACTION = {0: None, 1: None, 2: None, 3: None, 4: "toy", 5: "block", 6: "block", 7: "tool",
                  8: "tool", 9: "toy", 10: "sheet", 11: "sheet", 12: "sheet", 13: "tool"}
PROPS = {"toy": ((200, 60, 50), (0.05, 0.05)), "block": ((70, 70, 80), (0.12, 0.05)),
         "tool": ((120, 90, 60), (0.04, 0.25)), "sheet": ((235, 235, 225), (0.2, 0.28))}


def background(scenario: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One background image (h, w, 3) uint8 for a sequence of the scenario."""
    img = np.zeros((h, w, 3), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    if scenario == 1:
        img[:] = (45, 45, 50)
        wedge = ((xx // max(2, w // 24) + yy // max(2, h // 18)) % 2) * 18
        img += wedge[..., None]
    elif scenario == 2:
        img[:] = (185, 180, 170)
        img[int(h * 0.7):] = (120, 110, 100)
        for _ in range(int(rng.integers(6, 14))):
            y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            hh, ww = int(rng.integers(h // 12, h // 4)), int(rng.integers(w // 12, w // 4))
            img[y0:y0 + hh, x0:x0 + ww] = rng.uniform(30, 230, 3)
    else:
        sky = np.linspace(150, 230, h)[:, None]
        img[..., 0], img[..., 1], img[..., 2] = sky * 0.6, sky * 0.8, sky
        img[int(h * 0.6):] = (150, 140, 120)
        for _ in range(int(rng.integers(3, 7))):
            cy, cx, r = rng.integers(int(h * 0.5), h), rng.integers(0, w), rng.integers(h // 16, h // 6)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] = (40, rng.uniform(90, 150), 40)
    return np.clip(img, 0, 255).astype(np.uint8)


def _disc(img, cy, cx, r, colour):
    h, w = img.shape[:2]
    y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 1)
    x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    img[y0:y1, x0:x1][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = colour


def _rect(img, cy, cx, hh, ww, colour):
    h, w = img.shape[:2]
    y0, y1 = max(0, int(cy - hh / 2)), min(h, int(cy + hh / 2) + 1)
    x0, x1 = max(0, int(cx - ww / 2)), min(w, int(cx + ww / 2) + 1)
    if y0 < y1 and x0 < x1:
        img[y0:y1, x0:x1] = colour


def render(action: int, scenario: int, subject: int, track: np.ndarray, envelope: np.ndarray,
           size: tuple[int, int], grid: CameraGrid, rng: np.random.Generator) -> np.ndarray:
    """Frames of one sequence.

    Parameters
    ----------
    track : np.ndarray [shape=(n_frames, 3)]
        Source (hands) position per frame, metres, array frame.
    envelope : np.ndarray [shape=(n_frames,)]
        Sound level per frame, 0-1 (drives the hands).
    size : (height, width)

    Returns
    -------
    np.ndarray [shape=(n_frames, height, width, 3), uint8]
    """
    h, w = size
    n = len(track)
    bg = background(scenario, h, w, rng)
    srng = np.random.default_rng([subject, 31337])
    shirt = srng.uniform(40, 220, 3)
    tall = srng.uniform(0.9, 1.1)
    prop = PROP_OF_ACTION[action]
    if prop is not None:
        colour, (pw, ph) = PROPS[prop]
        colour = np.clip(np.array(colour) + rng.normal(0, 25, 3), 0, 255)
        pw, ph = pw * rng.uniform(0.7, 1.3), ph * rng.uniform(0.7, 1.3)
    hidden = rng.random(n) < 0.2
    frames = np.empty((n, h, w, 3), np.uint8)
    fx = w / (2 * np.tan(np.radians(grid.hfov) / 2))
    fy = h / (2 * np.tan(np.radians(grid.vfov) / 2))
    for t in range(n):
        img = bg.copy()
        x, y, z = track[t]
        cx, cy = w / 2 + fx * x / z, h / 2 - fy * y / z
        s = fy / z                                  # pixels per metre at the subject
        _rect(img, cy - 0.35 * s * tall, cx, 0.6 * s * tall, 0.38 * s, shirt)       # torso
        _disc(img, cy - 0.78 * s * tall, cx, 0.11 * s, (215, 180, 150))             # head
        swing = 0.08 * s * envelope[t]
        for side in (-1, 1):                                                      # hands
            _disc(img, cy + side * swing * 0.3, cx + side * (0.12 * s - swing), 0.045 * s, (215, 180, 150))
        if prop is not None and not hidden[t]:
            _rect(img, cy + 0.05 * s, cx, ph * s, pw * s, colour)
        noise = rng.normal(0, 4, (h, w, 1))
        frames[t] = np.clip(img + noise, 0, 255).astype(np.uint8)
    return frames


# =============================================================================== physics version 2
# What moves is what is seen: the lips for speech (with its articulation), the hands or the tool at the
# times of the impacts the subject makes (claps, knocks, hammer blows, catches, cracks, the stick's fall),
# random motion where the visible motion is not tied to the sound (typing and clicking fingers are too
# small to see; paper is shaken at its own pace), stillness otherwise (whistling).  The sound's envelope
# never drives the picture.

SKIN = (215, 180, 150)


def _nearest_gap(t: float, events: np.ndarray) -> tuple[float, float]:
    """Seconds since the last event and until the next (inf when none)."""
    before = events[events <= t]
    after = events[events > t]
    return (t - before[-1] if len(before) else np.inf), (after[0] - t if len(after) else np.inf)


def motion_v2(action: int, n_frames: int, fs: float, frame_rate: float, trace, rng: np.random.Generator) -> dict:
    """Per-frame motion of one sequence: ``hands`` (separation, m), ``lift`` (hand or tool above its
    rest, m), ``mouth`` (opening, m), ``prop`` (prop height above the hands, m), ``jitter`` (x, y) m.
    Driven by the synthesiser's event times (``trace``), never by the sound's envelope."""
    name = ACTIONS[action]
    times = (np.arange(n_frames) + 0.5) / frame_rate
    ev = np.asarray(trace.events, float) / fs
    spans = [(a / fs, b / fs) for a, b in trace.spans]
    out = {k: np.zeros(n_frames) for k in ("hands", "lift", "mouth", "prop")}
    out["jitter"] = np.zeros((n_frames, 2))
    gaps = np.array([_nearest_gap(t, ev) for t in times]) if len(ev) else np.full((n_frames, 2), np.inf)
    since, until = gaps[:, 0], gaps[:, 1]
    near = np.minimum(since, until)
    in_span = np.array([any(a <= t < b for a, b in spans) for t in times])
    if name == "clapping":
        out["hands"] = 0.16 * np.clip(near / 0.12, 0, 1)
    elif name == "snapping fingers":
        out["lift"] = 0.03 * np.exp(-np.clip(since, 0, 10) / 0.06)
    elif name == "speaking" and trace.mouth is not None:
        m = np.asarray(trace.mouth, float)
        L = max(1, int(round(fs / frame_rate)))
        idx = np.minimum(np.arange(n_frames)[:, None] * L + np.arange(L)[None, :], len(m) - 1)
        out["mouth"] = 0.035 * m[idx].mean(1)
    elif name == "playing kendama":
        ok = np.isfinite(since + until)
        phase = np.zeros(n_frames)
        phase[ok] = since[ok] / np.maximum(since[ok] + until[ok], 1e-9)
        out["prop"] = 0.30 * (1 - (2 * phase - 1) ** 2)
    elif name in ("knocking", "hammering"):
        out["lift"] = 0.18 * np.clip(until / 0.25, 0, 1) * np.clip(since / 0.05, 0, 1)
    elif name == "peanut breaking":
        out["hands"] = 0.06 - 0.03 * np.exp(-near / 0.1)
    elif name == "paper ripping":
        frac = np.array([next(((t - a) / (b - a) for a, b in spans if a <= t < b), 0.0) for t in times])
        out["hands"] = 0.10 + 0.25 * frac
    elif name == "plastic crumpling":
        out["jitter"] = rng.normal(0, 0.02, (n_frames, 2)) * in_span[:, None]
        out["hands"] = 0.08 - 0.03 * in_span
    elif name == "paper shaking":
        rate, ph0 = rng.uniform(2.0, 4.0), rng.uniform(0, 2 * np.pi)
        out["lift"] = 0.04 * np.sin(2 * np.pi * rate * times + ph0)
    elif name in ("typing", "clicking"):
        out["jitter"] = rng.normal(0, 0.005, (n_frames, 2))
    elif name == "stick dropping":            # held at 1 m, free fall (0.45 s) ending at each impact
        fall = np.clip(until / 0.45, 0, 1) ** 2
        held = since > 0.6
        out["prop"] = np.where(held | ~np.isfinite(since), 1.0, 0.0)
        out["prop"] = np.where(until < 0.45, fall, out["prop"])          # metres above the floor
    out["hands"] = out["hands"] if np.any(out["hands"]) else np.full(n_frames, 0.12)
    return out


def render_v2(action: int, scenario: int, subject: int, track: np.ndarray, motion: dict, stature: float,
              size: tuple[int, int], grid: CameraGrid, rng: np.random.Generator) -> np.ndarray:
    """Frames of one v2 sequence: the subject stands at the source's horizontal position (behind the
    table for table actions), the sound comes from the mouth, the hands, the table or the floor.

    Returns
    -------
    np.ndarray [shape=(n_frames, height, width, 3), uint8]
    """
    h, w = size
    n = len(track)
    bg = background(scenario, h, w, rng)
    srng = np.random.default_rng([subject, 31337])
    shirt = srng.uniform(40, 220, 3)
    place = _ph.SOURCE_PLACE[ACTIONS[action]]
    prop = PROP_OF_ACTION[action]
    if prop is not None:
        colour, (pw, ph_) = PROPS[prop]
        colour = np.clip(np.array(colour) + rng.normal(0, 25, 3), 0, 255)
        pw, ph_ = pw * rng.uniform(0.7, 1.3), ph_ * rng.uniform(0.7, 1.3)
    hidden = rng.random(n) < 0.2
    fx = w / (2 * np.tan(np.radians(grid.hfov) / 2))
    fy = h / (2 * np.tan(np.radians(grid.vfov) / 2))
    base = _ph.ARRAY_HEIGHT.value
    frames = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        img = bg.copy()
        x, _, z = track[t]
        zp = z + (0.35 if place == "table" else 0.0)

        def px(xx, height, zz=zp):                   # world (x, height above floor, z) -> pixel
            return h / 2 - fy * (height - base) / zz, w / 2 + fx * xx / zz

        s = fy / zp
        S = stature
        cy, cx = px(x, 0.48 * S)
        _rect(img, cy, cx, 0.96 * S * s, 0.22 * s, (60, 60, 70))                          # legs
        cy, cx = px(x, 1.20 * S)
        _rect(img, cy, cx, 0.50 * S * s, 0.38 * s, shirt)                                 # torso
        cy, cx = px(x, 1.60 * S)
        _disc(img, cy, cx, 0.11 * s, SKIN)                                                # head
        my, mx = px(x, _ph.SOURCE_HEIGHT["mouth"][0].value * S)
        _rect(img, my, mx, max(1.0, (0.006 + motion["mouth"][t]) * s), 0.05 * s, (120, 40, 40))   # mouth
        if place == "table":
            ty, tx_ = px(x, 0.37, z)
            _rect(img, ty, tx_, 0.74 * fy / z, 0.9 * fx / z, (110, 80, 50))                 # table
        hand_h = {"hands": 1.20 * S, "table": 0.80, "mouth": 0.85 * S, "floor": 1.0}[place]
        hz = z if place == "table" else zp
        jx, jy = motion["jitter"][t]
        sep = motion["hands"][t]
        for side in (-1, 1):
            hy, hx = px(x + side * sep / 2 + jx, hand_h + motion["lift"][t] + jy, hz)
            _disc(img, hy, hx, 0.045 * fy / hz, SKIN)
        if prop is not None and not hidden[t]:
            above = motion["prop"][t]
            height = above if place == "floor" else hand_h + motion["lift"][t] + above
            py, pxx = px(x, height, hz)
            _rect(img, py, pxx, ph_ * fy / hz, pw * fx / hz, colour)
        noise = rng.normal(0, 4, (h, w, 1))
        frames[t] = np.clip(img + noise, 0, 255).astype(np.uint8)
    return frames
