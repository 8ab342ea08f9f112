"""Forms for the instances pages: every rule DCDN enforces is checked here first, so most
mistakes are caught before an operation is recorded or a request is sent."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from decimal import Decimal

from django import forms

from panel.dcdn.types import HOURS_PER_MONTH, Catalog

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
CPU_TYPES = (("shared", "Shared"), ("dedicated", "Dedicated"))
NAME_IN_USE = "This name is already in use by one of your instances."
NOT_ENOUGH_CREDITS = "Not enough credits on your DCDN account for this instance."


def validate_public_key(line: str) -> str:
    """One OpenSSH public key: a known type, then valid base64 (an optional comment)."""
    parts = line.strip().split()
    if len(parts) < 2:
        raise forms.ValidationError(
            "A key is its type, then the key itself, e.g. “ssh-ed25519 AAAA…”.",
            code="format",
        )
    key_type, blob = parts[0], parts[1]
    if key_type not in SSH_KEY_TYPES:
        raise forms.ValidationError(
            "Unsupported key type “%(type)s”: use one of %(types)s.",
            code="type",
            params={"type": key_type[:40], "types": ", ".join(SSH_KEY_TYPES)},
        )
    try:
        base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise forms.ValidationError(
            "The key after “%(type)s” is not valid base64.",
            code="base64",
            params={"type": key_type},
        ) from exc
    return " ".join(parts)


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def hourly(monthly: Decimal) -> str:
    return f"{(monthly / HOURS_PER_MONTH).quantize(Decimal('0.0001'))}"


def plan_label(plan) -> str:
    ram = plan.ram_mb / 1024
    ram_text = f"{ram:g} GB" if plan.ram_mb >= 1024 else f"{plan.ram_mb} MB"
    return (
        f"{plan.id} — {plan.vcpus} vCPU, {ram_text} RAM, {plan.disk_gb} GB disk · "
        f"${money(plan.price_usd)}/month"
    )


class InstanceCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=63,
        help_text=(
            "1–63 lowercase letters, digits and hyphens; not starting or ending with a hyphen."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    cpu_type = forms.ChoiceField(label="CPU type", choices=CPU_TYPES, initial="shared")
    plan = forms.ChoiceField(label="Plan")
    image = forms.ChoiceField(label="Image")
    region = forms.ChoiceField(label="Region")
    redundant = forms.BooleanField(
        label="Redundant",
        required=False,
        help_text="Runs on two nodes of the region, at twice the price.",
    )
    ssh_keys = forms.CharField(
        label="SSH keys",
        required=False,
        help_text="One public key per line, e.g. “ssh-ed25519 AAAA… you@laptop”.",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
    )

    def __init__(self, *args, catalog: Catalog, taken_names: Iterable[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.catalog = catalog
        self.taken_names = {n.lower() for n in taken_names}
        groups = []
        for cpu_type, title in CPU_TYPES:
            options = [(p.id, plan_label(p)) for p in catalog.plans if p.cpu_type == cpu_type]
            if options:
                groups.append((f"{title} CPU", options))
        self.fields["plan"].choices = groups
        self.fields["image"].choices = [(i.id, i.name) for i in catalog.images]
        self.fields["region"].choices = [
            (r.id, f"{r.id} ({r.nodes} node{'s' if r.nodes != 1 else ''})") for r in catalog.regions
        ]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not NAME_RE.match(name):
            raise forms.ValidationError(
                "Use 1–63 lowercase letters, digits and hyphens, not starting or ending "
                "with a hyphen.",
                code="invalid",
            )
        if name.lower() in self.taken_names:
            raise forms.ValidationError(NAME_IN_USE, code="in_use")
        return name

    def clean_ssh_keys(self) -> list[str]:
        keys, errors = [], []
        for number, line in enumerate(self.cleaned_data.get("ssh_keys", "").splitlines(), 1):
            if not line.strip():
                continue
            try:
                keys.append(validate_public_key(line))
            except forms.ValidationError as exc:
                errors.append(
                    forms.ValidationError(
                        "Line %(line)s: %(problem)s",
                        params={"line": number, "problem": " ".join(exc.messages)},
                        code=exc.code,
                    )
                )
        if errors:
            raise forms.ValidationError(errors)
        return keys

    def clean(self):
        data = super().clean()
        plan = self.catalog.plan(data.get("plan", ""))
        cpu_type = data.get("cpu_type")
        if plan and cpu_type and plan.cpu_type != cpu_type:
            self.add_error(
                "plan",
                f"Plan {plan.id} has {plan.cpu_type} CPUs; choose a {cpu_type} plan or "
                f"change the CPU type.",
            )
        region = self.catalog.region(data.get("region", ""))
        if data.get("redundant") and region and not region.supports_redundant:
            self.add_error(
                "redundant",
                f"Region {region.id} has only {region.nodes} node; redundant instances "
                f"need a region with at least 2 nodes.",
            )
        return data

    def create_params(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "plan": data["plan"],
            "image": data["image"],
            "region": data["region"],
            "cpu_type": data["cpu_type"],
            "ssh_keys": tuple(data["ssh_keys"]),
            "redundant": bool(data["redundant"]),
        }

    def price(self) -> dict | None:
        """The monthly and hourly price of the current choice, for the first render."""
        value = self.data.get("plan") if self.is_bound else self.initial.get("plan")
        plan = self.catalog.plan(value or "")
        if plan is None and self.catalog.plans:
            cpu = (self.data.get("cpu_type") if self.is_bound else None) or "shared"
            plan = next((p for p in self.catalog.plans if p.cpu_type == cpu), None)
        if plan is None:
            return None
        redundant = (
            self.data.get("redundant") in ("on", "true", "1", True)
            if self.is_bound
            else bool(self.initial.get("redundant"))
        )
        monthly = plan.price_usd * (2 if redundant else 1)
        return {"monthly": money(monthly), "hourly": hourly(monthly), "redundant": redundant}

    def apply_upstream_error(self, *, code: str, field: str, message: str) -> None:
        """Put an error DCDN returned for this create where it belongs.

        402 → a form-level "not enough credits"; 409 → Name "already in use"; 400 → the
        field the error names (the form when it names none).
        """
        kind = upstream_error_kind(code)
        if kind == "credits":
            self.add_error(None, NOT_ENOUGH_CREDITS)
            return
        if kind == "conflict" and field in ("", "name", None):
            if not self.has_error("name"):
                self.add_error("name", NAME_IN_USE)
            return
        target = field if field in self.fields else None
        if target and self.has_error(target):
            return
        text = message or "DCDN refused this value."
        self.add_error(target, text)


def upstream_error_kind(code: str | int | None) -> str:
    """'credits', 'conflict', 'invalid' or 'other' for a stored error code.

    Tolerates the HTTP status ("402") or a class or provider code ("insufficient_credits").
    """
    text = str(code or "").lower().replace("-", "_")
    if "402" in text or "credit" in text or "payment" in text:
        return "credits"
    if "409" in text or "conflict" in text or "in_use" in text or "exists" in text:
        return "conflict"
    if "400" in text or "bad" in text or "invalid" in text:
        return "invalid"
    return "other"


class SshKeyForm(forms.Form):
    public_key = forms.CharField(
        label="Public key",
        help_text="One OpenSSH public key, e.g. “ssh-ed25519 AAAA… you@laptop”.",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
    )

    def clean_public_key(self) -> str:
        value = self.cleaned_data["public_key"].strip()
        if len(value.splitlines()) > 1:
            raise forms.ValidationError("Add one key at a time.", code="many")
        return validate_public_key(value)


class DestroyConfirmForm(forms.Form):
    confirm_name = forms.CharField(
        label="Type the instance name to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, instance_name: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance_name = instance_name
        self.fields["confirm_name"].help_text = f"Type “{instance_name}” exactly."

    def clean_confirm_name(self) -> str:
        value = self.cleaned_data["confirm_name"].strip()
        if value != self.instance_name:
            raise forms.ValidationError(
                "That is not this instance's name; type “%(name)s” exactly.",
                code="mismatch",
                params={"name": self.instance_name},
            )
        return value


def operation_error_summary(*, kind: str, code: str, field: str, message: str) -> dict:
    """What a failed operation's page says: the form label it concerns and the words,
    phrased as the create form would phrase them."""
    text = message or "DCDN refused the request."
    if kind != "create":
        return {"field": "", "text": text}
    error_kind = upstream_error_kind(code)
    if error_kind == "credits":
        return {"field": "", "text": NOT_ENOUGH_CREDITS}
    if error_kind == "conflict" and field in ("", "name", None):
        return {"field": "Name", "text": NAME_IN_USE}
    form_field = InstanceCreateForm.base_fields.get(field or "")
    return {"field": form_field.label if form_field else "", "text": text}
