from __future__ import annotations

from django import forms
from django.views.decorators.debug import sensitive_variables


class TokenForm(forms.Form):
    """Collects the token; checking it is the service's job (accounts.services)."""

    label_suffix = ""

    token = forms.CharField(
        label="API token",
        max_length=1024,
        strip=True,
        help_text=(
            "Create a token in your DCDN Cloud account. The panel checks it with DCDN, "
            "then stores it encrypted; afterwards only its last four characters are shown."
        ),
        # A password input that never echoes the value back into the page. "new-password"
        # keeps browsers from filling in the panel password here.
        widget=forms.PasswordInput(
            render_value=False,
            attrs={
                "autocomplete": "new-password",
                "autocapitalize": "off",
                "spellcheck": "false",
            },
        ),
    )


class ReauthForm(forms.Form):
    label_suffix = ""

    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )

    def __init__(self, *args, user, **kwargs) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    @sensitive_variables("password")
    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password.", code="wrong_password")
        return password


def describe_fields_with(form: forms.BaseForm, element_id: str) -> None:
    """Tie every visible input to a form-wide message (a non-field error, a lock notice),
    so screen readers read it with the field. Field-level errors Django ties itself."""
    for bound in form.visible_fields():
        attrs = bound.field.widget.attrs
        attrs["aria-describedby"] = " ".join(
            part for part in (element_id, attrs.get("aria-describedby", "")) if part
        )
