from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional


class ProposeForm(FlaskForm):
    beneficiary = StringField(_l("Beneficiary (login)"), validators=[DataRequired(_l("Required.")), Length(max=64)])
    amount = StringField(_l("Amount"), validators=[DataRequired(_l("Required.")), Length(max=20)])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(_l("Give a reason.")), Length(max=2000)])
    corrects = IntegerField(_l("Corrects ledger entry #"), validators=[Optional(), NumberRange(min=1)])
    dispute_id = HiddenField()


class DecisionForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=2000)])


class DisputeForm(FlaskForm):
    text = TextAreaField(_l("What is wrong?"), validators=[DataRequired(_l("Tell us what is wrong.")), Length(max=2000)])
    entry = IntegerField(_l("Ledger entry #"), validators=[Optional(), NumberRange(min=1)])
    contract = StringField(_l("Contract number"), validators=[Optional(), Length(max=20)])


class MessageForm(FlaskForm):
    text = TextAreaField(_l("Message"), validators=[DataRequired(_l("Write a message.")), Length(max=2000)])
