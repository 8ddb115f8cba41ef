"""gs:// option mapping, and how the errors gcsfs raises become messages. Transfers against
a GCS server (fake-gcs-server) are in tests/integration/test_sources_gcs.py; here the
errors are the ones gcsfs's own response check raises for each HTTP status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelmon.api.v1alpha1 import Source
from modelmon.sources import LoadContext, SourceError
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.url import Target, target
from modelmon.sources.url.targets import _gcs_options, _s3_options

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


def gcs_error(status: int, message: str = "") -> BaseException:
    """What gcsfs raises for a response with this status and a GCS JSON error body."""
    from gcsfs.retry import validate_response

    body = json.dumps({"error": {"code": status, "message": message,
                                 "errors": [{"message": message}]}}).encode()
    try:
        validate_response(status, body, "b/o/ref.parquet")
    except Exception as exc:
        return exc
    raise AssertionError(f"gcsfs accepted HTTP {status}")


def gs_target() -> Target:
    return Target(None, "bucket/ref.parquet", "gs://bucket/ref.parquet",
                  "spec.reference.source.url", remote=True, prefix=False)


@pytest.mark.parametrize(("status", "message"), [
    (403, "monitor@p.iam.gserviceaccount.com does not have storage.objects.get access"),
    (401, "Anonymous caller does not have storage.objects.get access"),
])
def test_forbidden_and_unauthenticated_say_to_check_the_credentials(status: int,
                                                                    message: str) -> None:
    error = gs_target().fail(gcs_error(status, message))
    assert str(error) == (
        "spec.reference.source.url: access denied to read gs://bucket/ref.parquet; check "
        "the credentials (credentialsSecretRef, or the pod's identity) and what they may "
        "read")
    assert not error.transient


def test_missing_object_is_not_found() -> None:
    error = gs_target().fail(gcs_error(404, "No such object"))
    assert "gs://bucket/ref.parquet not found" in str(error) and not error.transient


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_server_errors_and_throttling_are_transient(status: int) -> None:
    error = gs_target().fail(gcs_error(status, "backend unavailable"))
    assert error.transient, error
    assert "access denied" not in str(error) and "not found" not in str(error)


def test_refused_and_unavailable_token_service() -> None:
    from google.auth.exceptions import RefreshError

    refused = gs_target().fail(
        RefreshError("invalid_grant: Invalid JWT Signature."))  # type: ignore[no-untyped-call]
    assert "access denied to read gs://bucket/ref.parquet (the token service refused the " \
        "key); check the credentials (credentialsSecretRef" in str(refused)
    assert not refused.transient
    down = gs_target().fail(
        RefreshError("temporarily unavailable", retryable=True))  # type: ignore[no-untyped-call]
    assert down.transient and "access denied" not in str(down)
