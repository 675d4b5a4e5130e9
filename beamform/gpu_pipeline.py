"""The GPU's block loop of :func:`acam.beamform.pipeline.beamform_file`: three streams, nothing waits.

Per block of frames (256 by default on the GPU):

* the reading thread reads block i+1 from the file and uploads it on an upload stream into one of
  two device input buffers (:class:`acam.beamform.backend.Uploads`);
* the compute stream beamforms block i into one of two device outputs (float16 cubes are converted
  there, so half the bytes cross the bus);
* a copy stream moves block i into one of two page-locked host buffers
  (:func:`acam.beamform.backend.pinned`: registered in place, so they keep the page alignment that
  ``O_DIRECT`` writes need) while the compute stream goes on with block i+1
  (:class:`acam.beamform.backend.Downloads`);
* the writing thread waits for block i's copy event and writes it to the cube file.

Every buffer is reused two blocks later, after an event says its last user is done, so the cube is
the same as a serial loop's (``tests/test_gpu.py`` compares them block by block).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import backend
from .io import aligned_empty


def stream_gpu(raw, bf, starts, block: int, writer, bar, first: int = 0, stop: int | None = None) -> None:
    """Like :func:`acam.beamform.pipeline._stream` (same arguments), for a beamformer on the GPU."""
    rows, cols, n_bins = bf.cube_shape_per_frame
    host = [aligned_empty((block, rows, cols, n_bins), np.dtype(writer.dtype).newbyteorder("=")) for _ in range(2)]
    stop = len(starts) if stop is None else stop
    firsts = list(range(first, stop, block))
    with backend.pinned(*host), ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer_pool:
        down = backend.Downloads(host, bf.real_dtype)
        up = backend.Uploads((block, bf.frame_len, bf.spec.geometry.n_mics), bf.real_dtype)

        def read(i):
            f0 = firsts[i]
            return up.put(i, raw.read_frames(starts[f0:min(f0 + block, stop)], bf.frame_len, bf.real_dtype))

        def write(done, f0, buf):
            done.synchronize()
            writer.write(f0, buf)

        try:
            next_frames = reader.submit(read, 0)
            with down.compute:
                bf.prepare()      # steering (or its factors) built once, while the first block is read
            pending, first_at = None, None
            for i, f0 in enumerate(firsts):
                frames, ready = next_frames.result()
                first_at = time.perf_counter() if first_at is None else first_at
                if i + 1 < len(firsts):
                    next_frames = reader.submit(read, i + 1)
                n = frames.shape[0]
                down.compute.wait_event(ready)
                with down.compute:
                    bf.process(frames, out=down.target(i, n))
                up.release(i, down.compute)
                done = down.start(i, n)
                if pending is not None:
                    pending.result()   # block i-1 written: host buffer (i+1) % 2 is free for block i+1
                pending = writer_pool.submit(write, done, f0, host[i % 2][:n])
                bar.update(n)
            if pending is not None:
                pending.result()
        finally:        # nothing may still copy into the host buffers when they are unpinned
            for s in (up.stream, down.compute, down.copy):
                s.synchronize()
    # launches are asynchronous: the compute time is the loop's wall time from the first block's
    # launch to the last copy (it includes transfers the streams could not hide)
    return {"compute_s": time.perf_counter() - first_at if first_at is not None else 0.0,
            "first_compute_at": first_at}
