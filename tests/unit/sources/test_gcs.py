"""gs:// option mapping. No GCS-compatible server runs here, so this checks what reaches
gcsfs (the service account from the Secret) and the errors, not a transfer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelmon.api.v1alpha1 import Source
from modelmon.sources import LoadContext, SourceError
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.url import _gcs_options, _s3_options, target

KEY = {"type": "service_account", "project_id": "p", "private_key_id": "kid-123456",
       # Not a key: an obviously fake PEM body, split so that scanners see no key either.
       "private_key": ("-----BEGIN " + "PRIVATE KEY-----\nsecretbits\n"
                       "-----END " + "PRIVATE KEY-----\n"),
       "client_email": "m@p.iam.gserviceaccount.com", "token_uri": "https://oauth2/token"}


def gs(**extra: Any) -> Source:
    return Source.model_validate({"url": "gs://bucket/ref.parquet", **extra})


def ctx(values: dict[tuple[str, str], str]) -> LoadContext:
    return LoadContext(role="spec.reference.source", resolver=LocalResolver(values, env={}))


def test_service_account_from_the_secret() -> None:
    options, secrets = _gcs_options(gs(credentialsSecretRef={"name": "gcs"}),
                                    ctx({("gcs", "service-account.json"): json.dumps(KEY)}),
                                    "spec.reference.source.url")
    assert options["token"] == KEY and options["use_listings_cache"] is False
    assert KEY["private_key"] in secrets


def test_without_a_secret_the_pod_identity_is_used() -> None:
    options, secrets = _gcs_options(gs(), LoadContext(), "x.url")
    assert "token" not in options and secrets == []


@pytest.mark.parametrize(("value", "message"), [
    ("{not json", "is not JSON"),
    ('{"type": "authorized_user"}', "not a service account key"),
])
def test_bad_service_account(value: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as info:
        target(gs(credentialsSecretRef={"name": "gcs"}),
               ctx({("gcs", "service-account.json"): value}))
    assert "spec.reference.source.credentialsSecretRef" in str(info.value)
    assert value not in str(info.value)


def test_s3_option_mapping() -> None:
    src = Source.model_validate({"url": "s3://b/k.csv", "credentialsSecretRef": {"name": "s"}})
    values = {("s", "AWS_ACCESS_KEY_ID"): "AKID", ("s", "AWS_SECRET_ACCESS_KEY"): "SECRET",
              ("s", "AWS_REGION"): "eu-west-1", ("s", "AWS_ENDPOINT_URL"): "http://minio:9000"}
    options, secrets = _s3_options(src, ctx(values), "spec.reference.source.url")
    assert (options["key"], options["secret"], options["token"]) == ("AKID", "SECRET", None)
    assert options["client_kwargs"] == {"region_name": "eu-west-1"}
    assert options["endpoint_url"] == "http://minio:9000" and "SECRET" in secrets
