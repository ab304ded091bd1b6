"""The pure door-visit rules (PRODUCT.md §3): door grid, GPS colours and flags, required fields.

Expectations are computed here, independently: grids are written out by hand or checked
against their defining properties, GPS offsets are laid out in metres on the WGS84
ellipsoid with pyproj (not with the haversine under test).
"""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyproj import Geod

from crm.visits import rules

GEOD = Geod(ellps="WGS84")
HOME = (56.845, 60.605)  # lat, lon: a building in Yekaterinburg


def moved(metres: float, azimuth: float = 0.0, origin=HOME) -> tuple[float, float]:
    """The point ``metres`` away from ``origin`` along ``azimuth`` (degrees from north), as (lat, lon)."""
    lon, lat, _back = GEOD.fwd(origin[1], origin[0], azimuth, metres)
    return lat, lon


# ---------------------------------------------------------------- door grid

def test_ten_flats_three_entrances_two_floors():
    # entrances of 4, 3, 3 flats (the first takes the remainder); within an entrance the bottom floor
    # takes the remainder
    assert rules.door_grid(10, 3, 2) == [[[1, 2], [3, 4]], [[5, 6], [7]], [[8, 9], [10]]]


def test_without_floors_an_entrance_is_one_row():
    assert rules.door_grid(10, 3) == [[[1, 2, 3, 4]], [[5, 6, 7]], [[8, 9, 10]]]
    assert rules.door_grid(10, 3, None) == [[[1, 2, 3, 4]], [[5, 6, 7]], [[8, 9, 10]]]
    assert rules.door_grid(5) == [[[1, 2, 3, 4, 5]]]


def test_more_entrances_than_apartments_clamps_to_one_flat_per_entrance():
    assert rules.door_grid(2, 5) == [[[1]], [[2]]]
    assert rules.door_grid(1, 3) == [[[1]]]
    assert rules.door_grid(3, 4, 2) == [[[1]], [[2]], [[3]]]


def test_floors_split_bottom_first():
    # 7 flats, 1 entrance, 3 floors: 3, 2, 2 from the bottom up
    assert rules.door_grid(7, 1, 3) == [[[1, 2, 3], [4, 5], [6, 7]]]
    # 9 flats over 2 entrances (5 + 4) and 4 floors: 2,1,1,1 then 1,1,1,1
    assert rules.door_grid(9, 2, 4) == [[[1, 2], [3], [4], [5]], [[6], [7], [8], [9]]]


@given(apartments=st.integers(1, 400), entrances=st.integers(1, 12), floors=st.one_of(st.none(), st.integers(1, 25)))
def test_grid_properties(apartments, entrances, floors):
    grid = rules.door_grid(apartments, entrances, floors)
    flats = [flat for entrance in grid for row in entrance for flat in row]
    assert flats == list(range(1, apartments + 1))  # every flat once, in order
    assert len(grid) == min(entrances, apartments)
    sizes = [sum(len(row) for row in entrance) for entrance in grid]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    for entrance, size in zip(grid, sizes):
        rows = [len(row) for row in entrance]
        if floors is None:
            assert len(entrance) == 1
        elif size >= floors:
            assert len(entrance) == floors
        else:  # fewer flats than floors: one flat a floor from the bottom (empty floors may be left out)
            assert rows[:size] == [1] * size and not any(rows[size:])
        assert max(rows) - min(rows) <= 1 and rows == sorted(rows, reverse=True)


# ---------------------------------------------------------------- GPS

@pytest.mark.parametrize("metres, azimuth, colour", [
    (0, 0, "green"), (60, 0, "green"), (95, 90, "green"), (95, 225, "green"),
    (105, 0, "amber"), (200, 90, "amber"), (295, 180, "amber"),
    (305, 0, "red"), (1000, 45, "red"), (50_000, 270, "red"),
])
def test_colour_by_distance(metres, azimuth, colour):
    lat, lon = moved(metres, azimuth)
    check = rules.check_gps(HOME[0], HOME[1], lat, lon, 10)
    assert check.colour == colour
    assert check.distance_m == pytest.approx(metres, rel=0.005, abs=0.5)


@pytest.mark.parametrize("metres, accuracy, flagged", [
    (10, 10, False),
    (140, 10, False),    # amber, but within 150 m
    (160, 10, True),     # farther than 150 m
    (10, 100, False),    # accuracy of exactly 100 m is not worse than 100 m
    (10, 101, True),     # worse than 100 m
    (10, 500, True),
    (400, 500, True),
])
def test_flags(metres, accuracy, flagged):
    lat, lon = moved(metres, 30)
    check = rules.check_gps(HOME[0], HOME[1], lat, lon, accuracy)
    assert check.flagged is flagged
    assert (check.reason is not None) is flagged


def test_missing_gps_is_red_and_flagged():
    check = rules.check_gps(HOME[0], HOME[1], None, None, None)
    assert check.colour == "red" and check.flagged and check.distance_m is None and check.reason


def test_bad_accuracy_keeps_the_distance_colour():
    lat, lon = moved(20, 0)
    check = rules.check_gps(HOME[0], HOME[1], lat, lon, 250)
    assert check.colour == "green" and check.flagged


# ---------------------------------------------------------------- outcomes

def test_required_fields():
    assert rules.required_fields("callback") == ("callback_at",)
    assert rules.required_fields("lead") == ("phone",)
    assert rules.required_fields("competitor") == ("competitor",)
    for outcome in ("not_home", "refused", "not_interested", "signed", "already_subscriber", "no_access",
                    "do_not_knock"):
        assert rules.required_fields(outcome) == (), outcome


def test_outcome_sets_follow_the_spec():
    assert set(rules.OUTCOMES) == {"not_home", "refused", "not_interested", "callback", "lead", "signed",
                                   "already_subscriber", "competitor", "no_access", "do_not_knock"}
    assert rules.LOCKING == {"already_subscriber", "do_not_knock"}
    assert rules.FINAL == {"signed", "already_subscriber", "do_not_knock", "refused", "not_interested"}
