"""The payout form. The rules live in services.payout_prepare; the form only carries the
input back to the page with the errors next to their fields."""

from __future__ import annotations

from django import forms

from .services import WALLET_HELP


class PayoutForm(forms.Form):
    amount = forms.CharField(
        label="Amount",
        max_length=40,
        strip=True,
        help_text="In DCDN, at least 10 and at most your available balance; up to 8 decimals.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    wallet_address = forms.CharField(
        label="Wallet address",
        max_length=64,
        strip=True,
        help_text=WALLET_HELP,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "class": "mono"}
        ),
    )
