"""Every string the code and templates show has a Russian and a Ukrainian translation."""
from __future__ import annotations

import os

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = [("crm/**.py", "python"), ("territories/**.py", "python"), ("app.py", "python"),
           ("templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None, "N_": None}


def _source_messages() -> set:
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            ROOT, METHODS, keywords=KEYWORDS, options_map={"templates/**.html": {"extensions": "jinja2.ext.do"}}):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("locale", ["ru", "uk"])
def test_catalog_translates_every_source_string(locale):
    with open(os.path.join(ROOT, "translations", locale, "LC_MESSAGES", "messages.po"), "rb") as fh:
        catalog = read_po(fh)
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog
                  if m.id and (all(m.string) if isinstance(m.string, tuple) else m.string) and not m.fuzzy}
    messages = _source_messages()
    assert len(messages) > 150
    missing = sorted(messages - translated)
    assert missing == [], f"untranslated in {locale}: {missing}"
