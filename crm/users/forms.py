from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class CreateUserForm(FlaskForm):
    login = StringField(_l("Login"), validators=[DataRequired(_l("Required.")), Length(min=2, max=64)])
    name = StringField(_l("Full name"), validators=[DataRequired(_l("Required.")), Length(max=200)])
    role = SelectField(_l("Role"), choices=[])
    manager_id = SelectField(_l("Manager"), coerce=int, choices=[])
    personnel_number = StringField(_l("Personnel number"), validators=[Optional(), Length(max=32)])


class EditUserForm(FlaskForm):
    name = StringField(_l("Full name"), validators=[DataRequired(_l("Required.")), Length(max=200)])
    personnel_number = StringField(_l("Personnel number"), validators=[Optional(), Length(max=32)])


class MoveForm(FlaskForm):
    supervisor_id = SelectField(_l("New supervisor"), coerce=int, choices=[])


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=[])
    manager_id = SelectField(_l("Manager"), coerce=int, choices=[])


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class RejectForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(_l("Give a reason.")), Length(max=1000)])
