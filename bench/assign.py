"""Buildings to zones: ``territories.geometry.assign_points`` (a) against the bare STRtree query (b).

    .venv/bin/python bench/assign.py [--buildings 100000] [--zones 2000] [--edge-points 2] [--seed 1]

The zones tile a city-sized area around Yekaterinburg (about 22 × 22 km) as a grid of
slightly irregular polygons sharing their edges: every lattice vertex is jittered, and
every edge carries ``--edge-points`` jittered intermediate vertices that both neighbours
use, so a zone has 4 × (1 + edge points) vertices. Zone ids are a random permutation of
1..zones. The buildings are random points over an area 10 % wider than the grid (so some
fall in no zone), 1 % of them placed exactly on shared vertices (ties between 2 and 4
zones, which must go to the lowest id).

(a) ``territories.geometry.assign_points(lats, lons, [(id, polygon), …])``
(b) floor: ``shapely.STRtree(polygons).query(shapely.points(lons, lats), predicate="intersects")``
    — the same tree and query, without mapping pairs to ids or breaking ties.

Both include building the tree and the points. Best of 3 each after a warm-up, the runs
interleaved; the
target is a/b ≤ 1.5. (a) is checked against a slow per-point reference on a sample of
1,000 buildings (ties included); the script exits 1 if they disagree.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import shapely

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # noqa: E402  (puts the project root on sys.path)

from territories.geometry import assign_points  # noqa: E402

CENTRE_LAT, CENTRE_LON = 56.84, 60.6
SIDE_M = 22_000  # the tiled square
M_PER_DEG_LAT = 111_320.0
REPEAT = 3
SAMPLE = 1_000


def build_zones(count: int, edge_points: int, rng: np.random.Generator) -> tuple[np.ndarray, list, np.ndarray]:
    """A grid of ``count``-ish zones with shared, jittered edges: (ids, polygons, shared vertices)."""
    rows = max(1, round(math.sqrt(count)))
    cols = math.ceil(count / rows)
    dlat = SIDE_M / M_PER_DEG_LAT / rows
    dlon = SIDE_M / (M_PER_DEG_LAT * math.cos(math.radians(CENTRE_LAT))) / cols
    lat0 = CENTRE_LAT - rows * dlat / 2
    lon0 = CENTRE_LON - cols * dlon / 2

    # lattice vertices, jittered by up to 20 % of a cell
    lat = lat0 + np.arange(rows + 1)[:, None] * dlat + rng.uniform(-0.2, 0.2, (rows + 1, cols + 1)) * dlat
    lon = lon0 + np.arange(cols + 1)[None, :] * dlon + rng.uniform(-0.2, 0.2, (rows + 1, cols + 1)) * dlon
    lattice = np.stack([lon, lat], axis=-1)  # x = lon, y = lat

    def between(a, b, along_lat: bool) -> np.ndarray:
        """Intermediate vertices of the edge a→b, jittered across it by up to 8 % of a cell."""
        t = (np.arange(1, edge_points + 1) / (edge_points + 1))[:, None]
        pts = a + t * (b - a)
        if along_lat:  # a vertical edge: jitter in lon
            pts[:, 0] += rng.uniform(-0.08, 0.08, edge_points) * dlon
        else:
            pts[:, 1] += rng.uniform(-0.08, 0.08, edge_points) * dlat
        return pts

    horizontal = {(r, c): between(lattice[r, c], lattice[r, c + 1], False)
                  for r in range(rows + 1) for c in range(cols)}
    vertical = {(r, c): between(lattice[r, c], lattice[r + 1, c], True)
                for r in range(rows) for c in range(cols + 1)}

    polygons = []
    for r in range(rows):
        for c in range(cols):
            if len(polygons) == count:
                break
            ring = np.concatenate([
                lattice[r, c][None], horizontal[(r, c)],            # bottom, west → east
                lattice[r, c + 1][None], vertical[(r, c + 1)],      # east side, south → north
                lattice[r + 1, c + 1][None], horizontal[(r + 1, c)][::-1],  # top, east → west
                lattice[r + 1, c][None], vertical[(r, c)][::-1],    # west side, north → south
            ])
            polygons.append(shapely.Polygon(ring))
    ids = rng.permutation(np.arange(1, len(polygons) + 1)).astype(np.int64)
    shared = np.concatenate([lattice.reshape(-1, 2)] + list(horizontal.values()) + list(vertical.values()))
    return ids, polygons, shared


def build_points(n: int, polygons: list, shared: np.ndarray, rng: np.random.Generator):
    xmin, ymin, xmax, ymax = shapely.total_bounds(polygons)
    padx, pady = (xmax - xmin) * 0.05, (ymax - ymin) * 0.05
    lons = rng.uniform(xmin - padx, xmax + padx, n)
    lats = rng.uniform(ymin - pady, ymax + pady, n)
    ties = rng.choice(n, size=n // 100, replace=False)
    picked = shared[rng.integers(0, len(shared), len(ties))]
    lons[ties], lats[ties] = picked[:, 0], picked[:, 1]
    return lats, lons, ties


def best_of(fns, repeat: int = REPEAT) -> list[tuple[float, object]]:
    """Best time and result of each function; one warm-up each, then rounds of a, b, a, b…
    (interleaved, so a change in the machine's load hits both alike)."""
    out = [fn() for fn in fns]
    best = [math.inf] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            out[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return list(zip(best, out))


def reference(lat: float, lon: float, ids: np.ndarray, geoms: np.ndarray) -> int:
    """The slow answer: test the point against every zone, keep the lowest id."""
    hits = ids[shapely.intersects(geoms, shapely.Point(lon, lat))]
    return int(hits.min()) if len(hits) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--zones", type=int, default=2_000)
    parser.add_argument("--edge-points", type=int, default=2, help="intermediate vertices per zone edge")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print(f"commit {common.revision()}; {common.load()}")
    print(f"shapely {shapely.__version__} (GEOS {shapely.geos_version_string}), numpy {np.__version__}")
    rng = np.random.default_rng(args.seed)
    ids, polygons, shared = build_zones(args.zones, args.edge_points, rng)
    geoms = np.asarray(polygons, dtype=object)
    invalid = int((~shapely.is_valid(geoms)).sum())
    overlap = float(shapely.area(geoms).sum() - shapely.union_all(geoms).area) / float(shapely.area(geoms).sum())
    lats, lons, ties = build_points(args.buildings, polygons, shared, rng)
    zone_list = list(zip(ids.tolist(), polygons))
    print(f"{len(polygons):,} zones of {len(shapely.get_coordinates(polygons[0])) - 1} vertices "
          f"(invalid: {invalid}, overlap {overlap:.1e} of their area); "
          f"{len(lats):,} buildings, {len(ties):,} on shared vertices")

    (ta, assigned), (tb, pairs) = best_of([
        lambda: assign_points(lats, lons, zone_list),
        lambda: shapely.STRtree(geoms).query(shapely.points(lons, lats), predicate="intersects"),
    ])

    in_zone = int((assigned != 0).sum())
    tied = int((np.bincount(pairs[0], minlength=len(lats)) > 1).sum())
    print(f"assigned {in_zone:,} buildings, {len(lats) - in_zone:,} in no zone; "
          f"{len(pairs[0]):,} pairs, {tied:,} buildings in more than one zone")
    print(f"(a) assign_points     {ta * 1000:8.1f} ms  ({common.rate(len(lats), ta)} buildings/s)")
    print(f"(b) STRtree floor     {tb * 1000:8.1f} ms  ({common.rate(len(lats), tb)} buildings/s)")
    print(f"a/b = {ta / tb:.2f} (target ≤ 1.5)")

    plain = np.setdiff1d(np.arange(len(lats)), ties)
    sample = np.concatenate([ties[:100], rng.choice(plain, size=min(SAMPLE - len(ties[:100]), len(plain)),
                                                     replace=False)])
    t = time.perf_counter()
    expected = np.array([reference(lats[i], lons[i], ids, geoms) for i in sample], dtype=np.int64)
    slow = time.perf_counter() - t
    wrong = int((assigned[sample] != expected).sum())
    sample_ties = int(np.isin(sample, ties).sum())
    print(f"check: {len(sample):,} sampled buildings ({sample_ties} on shared vertices) against the per-point "
          f"reference ({slow * 1000:.0f} ms): {'all agree' if not wrong else f'{wrong} DISAGREE'}")
    return 1 if wrong or invalid else 0


if __name__ == "__main__":
    sys.exit(main())
