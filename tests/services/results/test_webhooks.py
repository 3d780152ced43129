"""Webhook signatures and the delivery schedule."""

from __future__ import annotations

from services.results.webhooks import backoff_seconds, sign


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # A fixed vector: anyone can check it with `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test`.
    header = sign("whsec_test", 1700000000, '{"a":1}')
    assert header == "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"


def test_attempts_back_off_exponentially_up_to_six_hours() -> None:
    assert [backoff_seconds(n, 10) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert backoff_seconds(40, 10) == 6 * 3600
