from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from crm.forms import choices


class LoginForm(FlaskForm):
    login = StringField(_l("Login"), validators=[DataRequired(_l("Enter your login.")), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password.")), Length(max=256)])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(_l("Required.")), Length(max=256)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(_l("Required.")), Length(min=8, max=256,
                                 message=_l("At least 8 characters."))])
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(_l("Required.")), EqualTo("new_password", _l("The passwords differ."))])


class LanguageForm(FlaskForm):
    locale = SelectField(_l("Language"), choices=choices([("ru", "Русский"), ("uk", "Українська"), ("en", "English")]))
