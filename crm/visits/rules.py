"""The door-visit rules of PRODUCT.md §3, pure (no Flask, no database): outcomes and the
fields each needs, GPS flags, the door grid, the funnel's categories."""
from __future__ import annotations

import math
from dataclasses import dataclass

OUTCOMES = ("not_home", "refused", "not_interested", "callback", "lead", "signed", "already_subscriber",
            "competitor", "no_access", "do_not_knock")
#: outcomes that lock the door until a supervisor unlocks it
LOCKING = frozenset({"already_subscriber", "do_not_knock"})
#: a flat with one of these has a final outcome (a building is done when every flat has one)
FINAL = frozenset({"signed", "already_subscriber", "do_not_knock", "refused", "not_interested"})
#: visits that reached a person (the funnel's contacts)
CONTACTS = frozenset(set(OUTCOMES) - {"not_home", "no_access"})
LEADS = frozenset({"lead", "callback", "signed"})

FLAG_ACCURACY_M = 100.0
FLAG_DISTANCE_M = 150.0
GREEN_M, AMBER_M = 100.0, 300.0


def N_(s: str) -> str:
    return s


def required_fields(outcome: str) -> tuple[str, ...]:
    """The extra field an outcome needs (§3)."""
    return {"callback": ("callback_at",), "lead": ("phone",), "competitor": ("competitor",)}.get(outcome, ())


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine; plenty for 'is the agent at the building')."""
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class GpsCheck:
    distance_m: float | None
    colour: str        # green ≤ 100 m, amber ≤ 300 m, red beyond (or no usable fix)
    flagged: bool      # for the supervisor: no fix, accuracy worse than 100 m, or farther than 150 m
    reason: str | None  # msgid


def check_gps(building_lat: float, building_lon: float, lat: float | None, lon: float | None,
              accuracy: float | None) -> GpsCheck:
    if lat is None or lon is None:
        return GpsCheck(None, "red", True, N_("no GPS position"))
    distance = distance_m(building_lat, building_lon, lat, lon)
    colour = "green" if distance <= GREEN_M else "amber" if distance <= AMBER_M else "red"
    if accuracy is None or accuracy > FLAG_ACCURACY_M:
        return GpsCheck(distance, colour, True, N_("GPS accuracy worse than 100 m"))
    if distance > FLAG_DISTANCE_M:
        return GpsCheck(distance, colour, True, N_("farther than 150 m from the building"))
    return GpsCheck(distance, colour, False, None)


def door_grid(apartments: int, entrances: int = 1, floors: int | None = None) -> list[list[list[int]]]:
    """Flats 1..apartments split over entrances as evenly as possible (the first entrances take
    the remainder), and within an entrance over floors, bottom floor first (the lower floors
    take the remainder); no ``floors``: one row per entrance. Returns
    ``grid[entrance][floor] = [flat, …]`` with entrance and floor counted from 0."""
    entrances = max(1, min(entrances or 1, apartments))
    base, extra = divmod(apartments, entrances)
    grid, flat = [], 1
    for e in range(entrances):
        count = base + (1 if e < extra else 0)
        rows = max(1, min(floors or 1, count))
        per, more = divmod(count, rows)
        entrance = []
        for f in range(rows):
            n = per + (1 if f < more else 0)
            entrance.append(list(range(flat, flat + n)))
            flat += n
        grid.append(entrance)
    return grid


def time_of_day(hour: int) -> str:
    """morning (before 12), day (12–17), evening (from 17): not_home doors come back at another one."""
    return "morning" if hour < 12 else "day" if hour < 17 else "evening"
