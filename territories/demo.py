"""Demo buildings: a deterministic slice of a city (Yekaterinburg's centre) for the demo seed."""
from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import func, select

from crm.extensions import db
from territories.models import Building

STREETS = ["ул. Малышева", "ул. Ленина", "ул. 8 Марта", "ул. Белинского", "ул. Куйбышева", "ул. Радищева",
           "ул. Репина", "ул. Викулова", "ул. Татищева", "ул. Шейнкмана", "ул. Челюскинцев", "ул. Мамина-Сибиряка",
           "ул. Луначарского", "ул. Декабристов", "ул. Фрунзе", "ул. Сакко и Ванцетти", "ул. Щорса", "ул. Бажова"]
CENTRE = (56.8389, 60.6057)


def seed_buildings(count: int, now: datetime, rng: random.Random) -> int:
    """Create ``count`` demo buildings unless the demo ones exist already; returns how many exist."""
    existing = db.session.scalar(select(func.count()).select_from(Building).where(Building.external_id.like("demo-%")))
    if existing:
        return existing
    seen = set()
    for i in range(1, count + 1):
        while True:
            street, number = rng.choice(STREETS), rng.randint(1, 180)
            if (street, number) not in seen:
                seen.add((street, number))
                break
        floors = rng.choice([5, 5, 9, 9, 10, 12, 16, 17, 25])
        entrances = rng.randint(1, 8 if floors <= 10 else 4)
        per_floor = rng.choice([4, 4, 5, 6, 8])
        db.session.add(Building(
            external_id=f"demo-{i:05d}", address=f"{street}, {number}",
            lat=round(CENTRE[0] + rng.uniform(-0.045, 0.045), 6), lon=round(CENTRE[1] + rng.uniform(-0.08, 0.08), 6),
            apartments=entrances * floors * per_floor, entrances=entrances, floors=floors,
            connected_at=now - timedelta(days=rng.randint(100, 400)), created_at=now - timedelta(days=100)))
    db.session.flush()
    return count
