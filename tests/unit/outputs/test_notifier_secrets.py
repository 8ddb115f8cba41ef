"""A notifier's Secret errors name the field that references the Secret."""

from __future__ import annotations

import pytest

from modelmon.api.v1alpha1 import Notifier
from modelmon.outputs.notifiers.base import FieldSecrets
from modelmon.sources import MissingKeyError, SourceError


class Refusing:
    """A resolver that refuses every Secret but ``ok`` (as KubeResolver refuses an
    unlabeled one), and lacks every key of ``ok`` but ``user``."""

    def secret(self, name: str, key: str) -> str:
        if name != "ok":
            raise SourceError(f"Secret ml/{name} does not exist or is not labeled "
                              "modelmon.io/use=true")
        if key != "user":
            raise MissingKeyError(f"Secret ml/ok has no key {key!r}")
        return "monitor"


EMAIL = Notifier.model_validate({"email": {
    "smtp": {"host": "127.0.0.1", "usernameSecretRef": {"name": "ok", "key": "user"},
             "passwordSecretRef": {"name": "ok", "key": "password"},
             "caSecretRef": {"name": "smtp-ca", "key": "ca.crt"}},
    "from": "mm@example.org", "to": ["ml@example.org"]}})


def test_nested_refs_are_named_and_the_error_kind_is_kept() -> None:
    secrets = FieldSecrets(Refusing(), EMAIL, 3)
    assert secrets.secret("ok", "user") == "monitor"
    with pytest.raises(MissingKeyError) as missing:
        secrets.secret("ok", "password")
    assert str(missing.value) == ("spec.alerting.notifiers[3].email.smtp.passwordSecretRef: "
                                  "Secret ml/ok has no key 'password'")
    with pytest.raises(SourceError) as refused:
        secrets.secret("smtp-ca", "ca.crt")
    assert str(refused.value).startswith(
        "spec.alerting.notifiers[3].email.smtp.caSecretRef: Secret ml/smtp-ca does not exist")
    assert not refused.value.transient


def test_slack_webhook_ref() -> None:
    slack = Notifier.model_validate({"slack": {"webhookSecretRef": {"name": "s", "key": "u"}}})
    with pytest.raises(SourceError, match=r"^spec\.alerting\.notifiers\[0\]\.slack\."
                                          r"webhookSecretRef: Secret ml/s "):
        FieldSecrets(Refusing(), slack, 0).secret("s", "u")
