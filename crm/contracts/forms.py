from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget


class SignForm(FlaskForm):
    agent_id = SelectField(_l("Agent"), coerce=int, choices=[])
    building = StringField(_l("Building (external id)"), validators=[DataRequired(_l("Required.")), Length(max=100)])
    flat = IntegerField(_l("Flat"), validators=[DataRequired(_l("Required.")), NumberRange(min=1, max=100000)])
    subscriber_name = StringField(_l("Subscriber"), validators=[DataRequired(_l("Required.")), Length(max=200)])
    phone = StringField(_l("Phone"), validators=[DataRequired(_l("Required.")), Length(max=40)])
    tariff = SelectField(_l("Tariff"), choices=[])
    addons = SelectMultipleField(_l("Add-ons"), choices=[], widget=ListWidget(prefix_label=False),
                                 option_widget=CheckboxInput())
    adult_confirmed = BooleanField(_l("The subscriber is an adult (18+)"))
    at = StringField(_l("Signed at"), validators=[Optional(), Length(max=40)])


class EventForm(FlaskForm):
    event = SelectField(_l("Event"), choices=[])
    at = StringField(_l("When"), validators=[Optional(), Length(max=40)])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(_l("Give a reason.")), Length(max=1000)])
