from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from crm.apikeys.models import SCOPES
from crm.forms import choices


class CreateKeyForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(_l("Required.")), Length(max=64)])
    scopes = SelectMultipleField(_l("Scopes"), choices=choices((s, s) for s in SCOPES),
                                 validators=[DataRequired(_l("Choose at least one scope."))],
                                 widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
