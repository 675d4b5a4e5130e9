"""The audio-visual action dataset (simulated and imported).  Not built yet: see the open issues."""
