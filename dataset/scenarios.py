"""The three scenarios' names: the one place that maps scenario numbers to what people read.

The dataset stores scenarios as numbers (1, 2, 3, as the paper's files do); every table, log line
and command shows and accepts the names too.  (:data:`acam.dataset.scenes.SCENARIOS` has the longer
descriptions of how each is simulated.)
"""

from __future__ import annotations

from ..core.errors import AcamError

SCENARIO_NAMES = {1: "anechoic", 2: "office", 3: "outdoor"}
SCENARIO_NUMBERS = {name: k for k, name in SCENARIO_NAMES.items()}


def scenario_name(k) -> str:
    """``2`` -> ``'office'`` (a number without a name stays ``'scenario 7'``)."""
    try:
        return SCENARIO_NAMES[int(k)]
    except (KeyError, ValueError, TypeError):
        return f"scenario {k}"


def scenario_label(k) -> str:
    """``2`` -> ``'office (2)'``: the name, with the number the files use."""
    name = scenario_name(k)
    return name if name.startswith("scenario ") else f"{name} ({int(k)})"


def parse_scenarios(text: str, what: str = "scenarios") -> list[int]:
    """``'all'``, or numbers and names separated by commas (``'1,3'``, ``'office,outdoor'``) -> sorted
    scenario numbers.  ``what`` names the parameter in the error message."""
    text = str(text).strip().lower()
    if text == "all":
        return sorted(SCENARIO_NAMES)
    out = set()
    for part in (p.strip() for p in text.split(",")):
        if part in SCENARIO_NUMBERS:
            out.add(SCENARIO_NUMBERS[part])
        elif part.isdigit() and int(part) in SCENARIO_NAMES:
            out.add(int(part))
        else:
            names = ", ".join(f"{k} {n}" for k, n in SCENARIO_NAMES.items())
            raise AcamError(f"{what}={text!r}: {part!r} is not a scenario; use all, or numbers or names "
                            f"separated by commas ({names})")
    return sorted(out)
