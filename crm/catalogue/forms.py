from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from crm.catalogue.models import ADDON_KINDS, TARIFF_KINDS
from crm.forms import choices


class TariffForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(_l("Required.")), Length(max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(_l("Required.")), Length(max=200)])
    is_addon = BooleanField(_l("Add-on"))
    kind = SelectField(_l("Kind"), choices=choices((k, k) for k in dict.fromkeys(TARIFF_KINDS + ADDON_KINDS)))
    speed_mbit = StringField(_l("Speed, Mbit/s"), validators=[Optional(), Length(max=6)])
    monthly_fee = StringField(_l("Monthly fee"), validators=[DataRequired(_l("Required.")), Length(max=16)])
