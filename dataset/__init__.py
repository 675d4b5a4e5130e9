"""The audio-visual action dataset: simulated end to end (``dataset.build``) or imported
(``dataset.importers``), stored as HDF5 sequence files with a manifest (``dataset.store``), with
MFCC compression of acoustic cubes (``dataset.mfcc``).  See docs/DATASET.md."""
