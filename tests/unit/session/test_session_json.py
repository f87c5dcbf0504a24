from __future__ import annotations

import json

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_gateway._session.json import session_from_json, session_to_json
from trio_gateway._session.model import (
    AccessDefinition,
    AccessLimit,
    AllowedUrl,
    Session,
)

TYK_SESSION = """
{
  "last_check": 0, "allowance": 1000, "rate": 1000, "per": 60, "throttle_interval": -1,
  "throttle_retry_limit": -1, "expires": 1700000000, "quota_max": -1, "quota_renews": 1481546970,
  "quota_remaining": 0, "quota_renewal_rate": 60,
  "access_rights": {"api1": {"api_id": "api1", "api_name": "Test", "versions": ["Default"],
                             "allowed_urls": null, "limit": null}},
  "org_id": "org", "oauth_client_id": "", "oauth_keys": null,
  "basic_auth_data": {"password": "", "hash_type": ""}, "jwt_data": {"secret": ""},
  "hmac_enabled": false, "hmac_string": "", "is_inactive": false, "apply_policy_id": "",
  "apply_policies": null, "data_expires": 0, "monitor": {"trigger_limits": null},
  "enable_detailed_recording": false, "meta_data": {"tier": "gold", "n": 1}, "tags": null,
  "alias": "ann", "last_updated": "1481546970", "id_extractor_deadline": 0,
  "session_lifetime": 0, "some_future_field": {"x": 1}
}
"""


def test_reads_tyk_json_with_nulls_and_unknown_fields() -> None:
    session = session_from_json(json.loads(TYK_SESSION))
    assert session.rate == 1000
    assert session.per == 60
    assert session.quota_max == -1
    assert session.access_rights["api1"].versions == ["Default"]
    assert session.access_rights["api1"].allowed_urls == []
    assert session.access_rights["api1"].limit is None
    assert session.tags == []
    assert session.apply_policies == []
    assert session.oauth_keys == {}
    assert session.meta_data == {"tier": "gold", "n": 1}
    assert session.alias == "ann"
    assert session.expires == 1700000000


def test_writes_tyk_field_names() -> None:
    data = session_to_json(
        Session(
            rate=2,
            access_rights={
                "a": AccessDefinition(
                    api_id="a",
                    allowed_urls=[AllowedUrl(url="^/x", methods=["GET"])],
                    limit=AccessLimit(rate=1, per=2),
                )
            },
        )
    )
    assert data["rate"] == 2
    assert data["quota_renewal_rate"] == 0
    assert data["access_rights"]["a"]["allowed_urls"] == [{"url": "^/x", "methods": ["GET"]}]
    assert data["access_rights"]["a"]["limit"]["per"] == 2
    assert data["basic_auth_data"] == {"password": "", "hash_type": ""}
    json.dumps(data)


def test_rejects_non_objects() -> None:
    with pytest.raises(cattrs.BaseValidationError):
        session_from_json({"access_rights": {"a": "nope"}})


sessions = st.builds(
    Session,
    rate=st.integers(0, 1000).map(float),
    per=st.integers(0, 3600).map(float),
    quota_max=st.integers(-1, 10**6),
    expires=st.integers(0, 2**40),
    is_inactive=st.booleans(),
    meta_data=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)),
    tags=st.lists(st.text(max_size=5), max_size=3),
    access_rights=st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.builds(
            AccessDefinition,
            api_id=st.text(max_size=5),
            versions=st.lists(st.text(max_size=5), max_size=2),
            allowed_urls=st.lists(
                st.builds(AllowedUrl, url=st.text(max_size=5), methods=st.just(["GET"])),
                max_size=2,
            ),
            limit=st.none() | st.builds(AccessLimit, rate=st.integers(0, 9).map(float)),
        ),
        max_size=2,
    ),
)


@given(sessions)
def test_round_trip_through_json_text(session: Session) -> None:
    assert session_from_json(json.loads(json.dumps(session_to_json(session)))) == session


def test_copy_for_request_owns_meta_data_only() -> None:
    session = Session(meta_data={"a": 1}, tags=["t"])
    copy = session.copy_for_request()
    copy.meta_data["a"] = 2
    assert session.meta_data == {"a": 1}
    assert copy.tags is session.tags
