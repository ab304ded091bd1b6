"""The demo city: a deterministic slice of Yekaterinburg with territories, zones and buildings.

Everything goes through the real services (polygon validation, the importer, the
assignment rules) with the clock moved to when it happened, so the history is genuine.
Layout: the city is split into three vertical strips (one territory per supervisor);
each strip's southern part is four zones (one per agent) and its northern rim is left
unzoned (the supervisor's queue); a band along the city's northern edge lies outside
every territory (the sales head's queue).
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import func, select

from crm.extensions import db
from crm.users.models import User
from territories.importfile import BuildingRecord
from territories.models import Building, Territory

STREETS = ["ул. Малышева", "ул. Ленина", "ул. 8 Марта", "ул. Белинского", "ул. Куйбышева", "ул. Радищева",
           "ул. Репина", "ул. Викулова", "ул. Татищева", "ул. Шейнкмана", "ул. Челюскинцев", "ул. Мамина-Сибиряка",
           "ул. Луначарского", "ул. Декабристов", "ул. Фрунзе", "ул. Сакко и Ванцетти", "ул. Щорса", "ул. Бажова",
           "ул. Степана Разина", "ул. Серова", "ул. Большакова", "ул. Белореченская", "ул. Посадская",
           "ул. Крауля", "ул. Заводская", "ул. Металлургов", "ул. Восточная", "ул. Гагарина", "ул. Мира",
           "ул. Комсомольская", "ул. Уральская", "ул. Блюхера", "ул. Советская", "ул. Кировградская",
           "ул. Уралмаш", "пр. Космонавтов", "ул. Машиностроителей", "ул. Победы", "ул. Амундсена", "ул. Академика Бардина"]
CENTRE = (56.8389, 60.6057)
SOUTH, NORTH = 56.795, 56.885
WEST, EAST = 60.52, 60.69
ZONED_NORTH = 56.868  # zones stop here: the rim above is each supervisor's queue
TERRITORY_NORTH = 56.876  # territories stop here: the band above is the sales head's queue


def _rect(west: float, south: float, east: float, north: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north],
                                                [west, south]]]}


def seed_polygons(now: datetime, clock_at) -> None:
    """Three territories (one per supervisor), four zones each, walked by the supervisor's agents."""
    from territories import services

    if db.session.scalar(select(func.count()).select_from(Territory)):
        return
    head = db.session.scalar(select(User).where(User.login == "head"))
    strips = [WEST + (EAST - WEST) * i / 3 for i in range(4)]
    with clock_at(now - timedelta(days=150)):
        for i, login in enumerate(("sup1", "sup2", "sup3")):
            supervisor = db.session.scalar(select(User).where(User.login == login))
            territory = services.save_territory(None, name=f"Территория {i + 1}", region=head, supervisor=supervisor,
                                                geometry_json=_rect(strips[i], SOUTH, strips[i + 1],
                                                                    TERRITORY_NORTH)).polygon
            agents = db.session.scalars(select(User).where(User.manager_id == supervisor.id, User.role == "agent")
                                        .order_by(User.id)).all()
            cols = [strips[i] + (strips[i + 1] - strips[i]) * k / 2 for k in range(3)]
            rows = [SOUTH + (ZONED_NORTH - SOUTH) * k / 2 for k in range(3)]
            for k, agent in enumerate(agents[:4]):
                cx, cy = k % 2, k // 2
                services.save_zone(None, name=f"Зона {i + 1}.{k + 1}", territory=territory, agent=agent,
                                   geometry_json=_rect(cols[cx], rows[cy], cols[cx + 1], rows[cy + 1]))
    db.session.flush()


def seed_buildings(count: int, now: datetime, rng: random.Random, clock_at) -> int:
    """Import ``count`` demo buildings through the importer unless they exist; returns how many exist."""
    from territories import importer

    existing = db.session.scalar(select(func.count()).select_from(Building).where(Building.external_id.like("demo-%")))
    if existing:
        return existing
    seen: set[tuple[str, int]] = set()
    records = []
    for i in range(1, count + 1):
        while True:
            street, number = rng.choice(STREETS), rng.randint(1, 220)
            if (street, number) not in seen:
                seen.add((street, number))
                break
        floors = rng.choice([5, 5, 9, 9, 10, 12, 16, 17, 25])
        entrances = rng.randint(1, 8 if floors <= 10 else 4)
        per_floor = rng.choice([4, 4, 5, 6, 8])
        # denser towards the centre, like a real city
        lat, lon = rng.gauss(CENTRE[0], 0.022), rng.gauss(CENTRE[1], 0.04)
        while not (SOUTH < lat < NORTH and WEST < lon < EAST):
            lat, lon = rng.gauss(CENTRE[0], 0.022), rng.gauss(CENTRE[1], 0.04)
        records.append(BuildingRecord(
            index=i, label=f"#{i}", external_id=f"demo-{i:05d}", lat=round(lat, 6), lon=round(lon, 6), footprint=None,
            fields={"address": f"Екатеринбург, {street}, {number}", "apartments": entrances * floors * per_floor,
                    "entrances": entrances, "floors": floors,
                    "connected_at": now - timedelta(days=rng.randint(141, 400))}))
    with clock_at(now - timedelta(days=140)):
        importer.import_buildings(records, [], source="demo")
    return count
