"""Machinery shared by every step: the one exception family (:mod:`.errors`), progress reporting
(:mod:`.progress`), the task runner that fans work out serially or onto Dask (:mod:`.tasks`),
settings digests (:mod:`.digest`) and what the machine offers a process (:mod:`.resources`).

Imports nothing from ``acam.beamform``, ``acam.dataset`` or ``acam.learn``: they import it.
"""
