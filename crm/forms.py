"""Form helpers shared by every feature."""
from __future__ import annotations

from wtforms.fields.choices import SelectChoice


def choices(pairs) -> list[SelectChoice]:
    """``[(value, label), …]`` → WTForms choices."""
    return [SelectChoice(value, str(label)) for value, label in pairs]


def refuse_and_redirect(exc, back: str):
    """A service refused a one-button action: undo the unit of work, let rights and missing
    objects become their 403/404 pages, otherwise flash the reason and go back."""
    from flask import flash, redirect

    from crm.extensions import db

    db.session.rollback()
    if exc.status in (403, 404):
        raise exc
    flash(exc.message, "error")
    return redirect(back)


def refuse_into_form(form, exc, aliases: dict | None = None) -> None:
    """A service refused what a form page sent: undo the unit of work, let a rights refusal
    become its 403 page, and show every field message next to its field plus a flash."""
    from flask import flash

    from crm.extensions import db

    db.session.rollback()
    if exc.status == 403:
        raise exc
    for name, message in exc.fields.items():
        name = (aliases or {}).get(name, name)
        field = getattr(form, name, None) or getattr(form, f"{name}_id", None)
        if field is not None:
            field.errors = list(field.errors) + [message]
    flash(exc.message, "error")
