"""Bullhorn's quirks: the BhRestToken header, the REST URL from login, Note payloads and note actions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb

from tests.adapters.lost_create import SETTLE_SECONDS, lose_create_then_retry
from tests.conftest import Harness
from tests.fakes.base import Fault
from tests.fakes.bullhorn import CORP_TOKEN, FakeBullhorn
from tests.helpers import add_request, sms

TOKEN = "bh-rest-token"
REST_URL = f"https://rest22.bullhornstaffing.com/rest-services/{CORP_TOKEN}/"


def request(message: pb.Message, rest_url: str = REST_URL, **kw: Any) -> Any:
    kw.setdefault("extras", {"noteActions": "SMS"})
    return add_request("bullhorn", message, hostname="", user_info={"rest_url": rest_url}, **kw)


@pytest.fixture
async def crm(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    # One attempt per request: these tests check how one Bullhorn reply is mapped.
    async with make_harness(FakeBullhorn(token=TOKEN), TOKEN, MESSAGELOG_CRM_MAX_ATTEMPTS="1") as harness:
        yield harness


async def test_create_puts_a_note_by_the_sessions_user_on_the_contact(crm: Harness) -> None:
    response = await crm.add(request(sms("m1", text="Hi <b>there</b>")))

    (identity,) = crm.fake.identity_lookups
    (call,) = crm.fake.requests
    assert identity.path == f"/rest-services/{CORP_TOKEN}/settings/corporationId,userId"
    assert (call.method, call.path) == ("PUT", f"/rest-services/{CORP_TOKEN}/entity/Note")
    assert call.headers["bhresttoken"] == TOKEN
    assert "authorization" not in call.headers
    assert set(call.body) == {"personReference", "commentingPerson", "comments", "action"}
    assert call.body["personReference"] == {"id": 42}
    # The session's user, named by the identity reply: with both, the note is on the contact's Notes.
    assert call.body["commentingPerson"] == {"id": crm.fake.user_id}
    assert crm.fake.notes_tab == {42: [int(response.log_id)]}
    assert call.body["action"] == "SMS"
    assert "Hi &lt;b&gt;there&lt;/b&gt;" in call.body["comments"]
    assert response.log_id == "1489"


async def test_an_append_reads_the_comments_then_posts_them_replaced(crm: Harness) -> None:
    first = await crm.add(request(sms("m1", "2026-11-20T15:00:00Z", "one")))
    await crm.add(request(sms("m2", "2026-11-20T15:05:00Z", "two")))

    create, read, append = crm.fake.requests
    note = f"/rest-services/{CORP_TOKEN}/entity/Note/{first.log_id}"
    assert create.method == "PUT"
    assert (read.method, read.path, read.query) == ("GET", note, {"fields": "id,comments"})
    assert (append.method, append.path) == ("POST", note)
    assert set(append.body) == {"comments", "action"}
    assert append.body["comments"].index("one") < append.body["comments"].index("two")


async def test_a_lost_create_is_found_among_the_contacts_notes_by_search(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(
        FakeBullhorn(token=TOKEN),
        TOKEN,
        MESSAGELOG_CRM_MAX_ATTEMPTS="1",
        MESSAGELOG_CREATE_SETTLE_SECONDS=str(SETTLE_SECONDS),
    ) as crm:
        response = await lose_create_then_retry(crm, request(sms("m1")), "PUT", "/entity/Note")
        (made,) = crm.fake.record_ids()
        (search,) = crm.fake.calls("GET", "/search/Note")
    assert response.log_id == made and crm.fake.record_ids() == [made]
    assert search.query["query"] == "personReference.id:42 AND isDeleted:0"
    assert search.query["sort"] == "-dateAdded"


@pytest.mark.parametrize(
    "rest_url",
    [
        "https://evil.example.com/rest-services/abc123/",
        "https://rest22.bullhornstaffing.com.evil.example/rest-services/abc123/",
        "http://rest22.bullhornstaffing.com/rest-services/abc123/",
    ],
)
async def test_a_rest_url_off_bullhorn_or_without_https_is_refused_unsent(
    crm: Harness, rest_url: str
) -> None:
    status = await crm.add_error(request(sms("m1"), rest_url=rest_url))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "CRM_HOST_NOT_ALLOWED"
    assert status.fields == {"user.platform_additional_info[rest_url]"}
    assert crm.fake.requests == []


async def test_a_data_centre_rest_url_is_accepted(crm: Harness) -> None:
    response = await crm.add(
        request(sms("m1"), rest_url=f"https://rest-west9.bullhornstaffing.com/rest-services/{CORP_TOKEN}/")
    )

    assert response.outcome == pb.LOG_OUTCOME_CREATED


async def test_a_missing_rest_url_is_invalid_and_unsent(crm: Harness) -> None:
    status = await crm.add_error(request(sms("m1"), rest_url=""))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.fields == {"user.platform_additional_info[rest_url]"}
    assert crm.fake.requests == []


async def test_a_contact_id_that_is_not_a_bullhorn_id_is_invalid(crm: Harness) -> None:
    status = await crm.add_error(request(sms("m1"), contact_id="abc"))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.fields == {"contact.id"}
    assert crm.fake.requests == []


async def test_without_a_note_action_an_account_requiring_one_rejects_and_nothing_is_lost(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeBullhorn(token=TOKEN, action_required=True), TOKEN) as crm:
        status = await crm.add_error(request(sms("m1"), extras={}))
        assert status.code == grpc.StatusCode.FAILED_PRECONDITION
        assert status.reason == "CRM_REJECTED"
        assert crm.fake.record_ids() == []

        retry = await crm.add(request(sms("m1"), extras={"noteActions": "SMS"}))

        assert retry.outcome == pb.LOG_OUTCOME_CREATED


async def test_without_a_note_action_none_is_sent(crm: Harness) -> None:
    await crm.add(request(sms("m1"), extras={}))

    assert "action" not in crm.fake.requests[0].body


async def test_a_note_action_longer_than_bullhorn_allows_is_invalid(crm: Harness) -> None:
    status = await crm.add_error(request(sms("m1"), extras={"noteActions": "x" * 31}))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.fields == {"additional_submission[noteActions]"}
    assert crm.fake.requests == []


async def test_a_rate_limit_without_retry_after_asks_for_the_documented_second(crm: Harness) -> None:
    crm.fake.inject(Fault(status=429, body={"errorMessage": "Too many requests", "errorCode": 429}))

    status = await crm.add_error(request(sms("m1")))

    assert status.reason == "CRM_RATE_LIMITED"
    assert status.retry_info is not None and status.retry_info.retry_delay.seconds == 1


async def test_the_fakes_own_rate_limit_is_reported_as_rate_limited(make_harness: Callable[..., Any]) -> None:
    async with make_harness(
        FakeBullhorn(token=TOKEN, per_second_limit=2), TOKEN, MESSAGELOG_CRM_MAX_ATTEMPTS="1"
    ) as crm:
        await crm.add(request(sms("m1")))
        status = await crm.add_error(request(sms("m2", "2026-11-20T15:05:00Z")))

    assert status.reason == "CRM_RATE_LIMITED"
    assert status.error_info is not None and status.error_info.metadata["crm_http_status"] == "429"


async def test_a_note_read_back_bare_as_the_docs_show_it_is_read_like_one_under_data(crm: Harness) -> None:
    first = await crm.add(request(sms("m1", "2026-11-20T15:00:00Z", "one")))
    edited = crm.fake.record_body(first.log_id) + "<p>Called back</p>"
    # _entity.md shows a single entity's GET answered without the "data" wrapper.
    bare = {"id": int(first.log_id), "comments": edited}
    crm.fake.inject(Fault(status=200, body=bare, method="GET", path_pattern="/entity/Note/"))

    await crm.add(request(sms("m2", "2026-11-20T15:05:00Z", "two")))

    body = crm.fake.record_body(first.log_id)
    assert body.index("Called back") < body.index("two")
