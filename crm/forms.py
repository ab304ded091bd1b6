"""Form helpers shared by every feature."""
from __future__ import annotations

from wtforms.fields.choices import SelectChoice


def choices(pairs) -> list[SelectChoice]:
    """``[(value, label), …]`` → WTForms choices."""
    return [SelectChoice(value, str(label)) for value, label in pairs]
