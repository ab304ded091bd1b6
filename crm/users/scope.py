"""Scope: the part of the hierarchy a user may see. Every later query goes through here.

agent → self; supervisor → self and own agents; sales_head → the whole region
below; finance → everyone (money is theirs, field data read-only); admin →
everyone (user management only).
"""
from __future__ import annotations

from sqlalchemy import Select, literal, select, true

from crm.extensions import db
from crm.users.models import ADMIN, AGENT, FINANCE, User


def subtree_ids(root_id: int) -> Select:
    """A SELECT of ``root_id`` and every user below it (recursive CTE, both databases)."""
    users = User.__table__
    tree = select(literal(root_id).label("id")).cte("subtree", recursive=True)
    tree = tree.union_all(select(users.c.id).where(users.c.manager_id == tree.c.id))
    return select(tree.c.id)


def sees_everyone(user) -> bool:
    return user.role in (ADMIN, FINANCE)


def visible_user_ids(user) -> Select:
    """A SELECT of the ids of every user ``user`` may see."""
    if sees_everyone(user):
        return select(User.id)
    if user.role == AGENT:
        return select(literal(user.id).label("id"))
    return subtree_ids(user.id)


def user_filter(user, column):
    """A WHERE clause keeping rows whose ``column`` (a user id) is in scope."""
    if sees_everyone(user):
        return true()
    if user.role == AGENT:
        return column == user.id
    return column.in_(subtree_ids(user.id))


def in_scope(user, target_id: int | None) -> bool:
    """May ``user`` see the user ``target_id``?"""
    if target_id is None:
        return sees_everyone(user)
    if sees_everyone(user) or target_id == user.id:
        return True
    if user.role == AGENT:
        return False
    return is_below(user.id, target_id)


def get_in_scope(user, target_id: int) -> User | None:
    """The user ``target_id`` if ``user`` may see it, else None (callers answer 404)."""
    if not in_scope(user, target_id):
        return None
    return db.session.get(User, target_id)


def is_below(manager_id: int, target_id: int) -> bool:
    """True when ``target_id`` is strictly below ``manager_id`` in the hierarchy."""
    if target_id == manager_id:
        return False
    found = db.session.execute(
        select(User.id).where(User.id == target_id, User.id.in_(subtree_ids(manager_id)))
    ).first()
    return found is not None
