"""The demo (``flask crm seed-demo``): idempotent, every password ``demo``.

Each feature adds its part here (city, catalogue, history) and its count to the
"demo ready" line.
"""
from __future__ import annotations

from sqlalchemy import func, select

from crm.extensions import db
from crm.users import services as users
from crm.users.models import User

DEMO_PASSWORD = "demo"

# login, role, manager, name
DEMO_PEOPLE = [
    ("head", "sales_head", None, "Ирина Соколова"),
    ("sup1", "supervisor", "head", "Андрей Волков"),
    ("sup2", "supervisor", "head", "Марина Лебедева"),
    ("sup3", "supervisor", "head", "Олег Никитин"),
    ("agent1", "agent", "sup1", "Дмитрий Козлов"),
    ("agent2", "agent", "sup1", "Екатерина Морозова"),
    ("agent3", "agent", "sup1", "Артём Павлов"),
    ("agent4", "agent", "sup1", "Наталья Белова"),
    ("agent5", "agent", "sup2", "Сергей Фёдоров"),
    ("agent6", "agent", "sup2", "Анна Егорова"),
    ("agent7", "agent", "sup2", "Максим Орлов"),
    ("agent8", "agent", "sup2", "Юлия Киселёва"),
    ("agent9", "agent", "sup3", "Илья Макаров"),
    ("agent10", "agent", "sup3", "Ольга Андреева"),
    ("agent11", "agent", "sup3", "Тимур Захаров"),
    ("agent12", "agent", "sup3", "Алина Ковалёва"),
    ("fin1", "finance", None, "Галина Степанова"),
    ("fin2", "finance", None, "Виктор Романов"),
    ("admin", "admin", None, "Служба ИТ"),
]


def seed_people() -> None:
    for number, (login, role, manager_login, name) in enumerate(DEMO_PEOPLE, start=1):
        if users.find_by_login(login):
            continue
        manager = users.find_by_login(manager_login) if manager_login else None
        users.create_user(None, login=login, name=name, role=role, manager=manager,
                          personnel_number=f"D-{number:04d}", password=DEMO_PASSWORD, must_change_password=False)


def seed() -> dict[str, int]:
    """Create whatever part of the demo is missing; return what the demo holds."""
    seed_people()
    db.session.flush()
    return {"users": db.session.scalar(select(func.count()).select_from(User))}
