"""Machinery shared by every step: the one exception family (:mod:`.errors`), progress reporting
(:mod:`.progress`), the task runner that fans work out serially or onto Dask (:mod:`.tasks`),
settings digests (:mod:`.digest`), what the machine offers a process and the check that refuses an
allocation before it is made (:mod:`.resources`), safe files - regular inputs only, one atomic
output path that never replaces an input (:mod:`.safeio`) - checked HDF5 reading (:mod:`.h5read`)
and checks of numeric settings by parameter name (:mod:`.checks`).

Imports nothing from ``acam.beamform``, ``acam.dataset`` or ``acam.learn``: they import it.
"""
