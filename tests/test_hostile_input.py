"""Property tests over whole requests through the real server: whatever a caller sends, the answer
is OK or a precise INVALID_ARGUMENT, never INTERNAL or UNKNOWN, and no digest is ever corrupted."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb
from messagelog.v1 import message_log_service_pb2_grpc as service_grpc

from service.config import Settings
from service.server import running
from tests.conftest import base_env
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import StatusDetails

INVALID_REASONS = {"INVALID_REQUEST", "UNKNOWN_CRM", "CRM_HOST_NOT_ALLOWED"}


class ThreadedService:
    """The server and a fake Pipedrive on their own event loop, for synchronous property tests."""

    def __init__(self, tmp_path: Path) -> None:
        self.fake = FakePipedrive()
        self._env = base_env(tmp_path)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self.fake.serve() as base_url:
            env = {**self._env, "MESSAGELOG_CRM_PIPEDRIVE_BASE_URL": base_url}
            async with running(Settings.from_env(env)) as server:
                self.port = server.port
                self._ready.set()
                await self._stop.wait()

    def __enter__(self) -> ThreadedService:
        self._thread.start()
        assert self._ready.wait(30), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ThreadedService, service_grpc.MessageLogServiceStub]]:
    with (
        ThreadedService(tmp_path_factory.mktemp("hostile")) as threaded,
        grpc.insecure_channel(f"127.0.0.1:{threaded.port}") as channel,
    ):
        yield threaded, service_grpc.MessageLogServiceStub(channel)


anything = st.text(max_size=40) | st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300
)
mostly = lambda good, bad: st.one_of(st.just(good), st.just(good), st.just(good), bad)  # noqa: E731
hostile_text = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=500),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "------------\nEND",
            "</ul></li><script>x</script>",
            "\u202e\u2066",
            "Conversation (99 messages)",
            "=cmd|' /C calc'!A0",
            "x" * 10_001,
        ]
    ),
)
phones = st.one_of(
    st.just("+16505553204"),
    st.just(""),
    st.text(max_size=25),
    st.from_regex(r"\+?[0-9]{1,22}", fullmatch=True),
)


@st.composite
def timestamps(draw: st.DrawFn) -> timestamp_pb2.Timestamp:
    seconds = draw(
        st.one_of(st.integers(1_700_000_000, 1_795_000_000), st.integers(-62_135_596_800, 253_402_300_799))
    )
    nanos = draw(st.one_of(st.integers(0, 999_999_999), st.integers(-5, 2_000_000_000)))
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


@st.composite
def requests(draw: st.DrawFn) -> service_pb.AddMessageLogRequest:
    message = pb.Message(
        id=draw(mostly("m-1", anything)),
        conversation_id=draw(mostly("conv-1", anything)),
        type=draw(st.one_of(st.sampled_from([1, 2, 3, 4]), st.integers(-3, 99))),
        direction=draw(st.one_of(st.sampled_from([1, 2]), st.integers(-3, 99))),
        sender=pb.Party(phone_number=draw(phones), name=draw(anything)),
        recipients=[
            pb.Party(phone_number=draw(phones), name=draw(anything)) for _ in range(draw(st.integers(0, 3)))
        ],
        subject=draw(hostile_text),
        attachments=[
            pb.Attachment(
                link=draw(st.one_of(st.just("https://media.example.com/a.jpg"), anything)),
                content_type=draw(st.sampled_from(["image/jpeg", "video/mp4", "text/plain", ""])),
            )
            for _ in range(draw(st.integers(0, 22)))
        ],
    )
    if draw(st.booleans()) or draw(st.booleans()):
        message.creation_time.CopyFrom(draw(timestamps()))
    return service_pb.AddMessageLogRequest(
        crm=draw(mostly("pipedrive", st.sampled_from(["", "PIPEDRIVE", "pipedrive\x00", "generic", "nope"]))),
        user=pb.CrmUser(
            id=draw(mostly("1001", anything)),
            hostname=draw(
                mostly(
                    "acme.pipedrive.com",
                    st.sampled_from(
                        [
                            "",
                            "127.0.0.1",
                            "evil.com",
                            "acme.pipedrive.com.evil.com",
                            "ACME.pipedrive.com",
                            "a..pipedrive.com",
                        ]
                    ),
                )
            ),
            time_zone=draw(
                mostly(
                    "America/New_York",
                    st.sampled_from(
                        ["", "Mars/Base", "../../etc/passwd", "UTC", "Asia/Kolkata", "Europe/London"]
                    ),
                )
            ),
            timezone_offset=draw(st.sampled_from(["", "+05:30", "-08:00", "+99:99", "garbage"])),
            name=draw(anything),
        ),
        contact=pb.Contact(id=draw(mostly("42", anything)), name=draw(anything), phone_number=draw(phones)),
        message=message,
        additional_submission=draw(st.dictionaries(anything, anything, max_size=3)),
        recording_link=draw(st.one_of(st.just(""), st.just("https://x.example/v.mp3"), anything)),
        fax_doc_link=draw(st.one_of(st.just(""), anything)),
    )


# Text a caller may legitimately send (anything but NUL), hostile to the digest's structure.
legal_text = st.one_of(
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
        max_size=400,
    ),
    st.sampled_from(
        [
            "------------\nEND",
            "</ul></li><script>x</script>",
            "\u202eevil\u2066",
            "line\r\nbreak",
            "Conversation (99 messages)",
            '=HYPERLINK("http://x")',
            "(ref 000000000000)",
            "",
        ]
    ),
)


@st.composite
def valid_requests(draw: st.DrawFn) -> service_pb.AddMessageLogRequest:
    """Well-formed requests whose free text is hostile: these reach the CRM and build digests."""
    conversation = draw(st.sampled_from(["conv-1", "conv-2"]))
    kind = draw(st.sampled_from([1, 1, 1, 2, 3, 4]))
    message = pb.Message(
        id=draw(st.sampled_from([f"v-{i}" for i in range(40)])),
        conversation_id=conversation,
        type=kind,
        direction=draw(st.sampled_from([1, 2])),
        sender=pb.Party(
            phone_number=draw(st.sampled_from(["+16505553204", "+16505550000", ""])),
            name=draw(legal_text.map(lambda t: t[:255])),
        ),
        subject=draw(legal_text),
        attachments=[
            pb.Attachment(link="https://media.example.com/p.jpg", content_type="image/jpeg")
            for _ in range(draw(st.integers(0, 2)))
        ],
    )
    message.creation_time.FromSeconds(draw(st.integers(1_795_000_000, 1_795_200_000)))
    return service_pb.AddMessageLogRequest(
        crm="pipedrive",
        user=pb.CrmUser(
            id="1001",
            hostname="acme.pipedrive.com",
            time_zone=draw(st.sampled_from(["America/New_York", "Asia/Kolkata", "Pacific/Chatham"])),
            name=draw(legal_text.map(lambda t: t[:255])),
        ),
        contact=pb.Contact(
            id="42", name=draw(legal_text.map(lambda t: t[:255])), phone_number="+16505553204"
        ),
        message=message,
        recording_link="https://x.example/v.mp3" if kind == 3 else "",
        fax_doc_link="https://x.example/f.pdf" if kind == 4 else "",
    )


def _call(
    stub: service_grpc.MessageLogServiceStub, request: service_pb.AddMessageLogRequest
) -> service_pb.AddMessageLogResponse | StatusDetails:
    try:
        response: service_pb.AddMessageLogResponse = stub.AddMessageLog(
            request, metadata=(("crm-authorization", "Bearer pd-token"),), timeout=10
        )
    except grpc.RpcError as error:
        return StatusDetails(error)  # type: ignore[arg-type]
    return response


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(request=st.one_of(requests(), valid_requests()))
def test_any_request_gets_ok_or_a_precise_invalid_argument(
    service: tuple[ThreadedService, service_grpc.MessageLogServiceStub],
    request: service_pb.AddMessageLogRequest,
) -> None:
    _, stub = service
    answer = _call(stub, request)
    if isinstance(answer, StatusDetails):
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, (answer.code, answer.message)
        assert answer.reason in INVALID_REASONS
        assert answer.bad_request is not None
        assert answer.bad_request.field_violations
        return
    response = answer
    assert response.outcome in (
        pb.LOG_OUTCOME_CREATED,
        pb.LOG_OUTCOME_APPENDED,
        pb.LOG_OUTCOME_ALREADY_LOGGED,
    )
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", response.local_date)


def test_every_record_written_during_the_fuzzing_reads_whole(
    service: tuple[ThreadedService, service_grpc.MessageLogServiceStub],
) -> None:
    threaded, _ = service
    assert threaded.fake.activities, "the fuzzing logged nothing: the strategies never reach the CRM"
    for activity in threaded.fake.activities.values():
        note = activity["note"]
        # The record's own counter: a heading right before BEGIN, which escaped caller text cannot forge.
        counter = re.search(r"<b>Conversation \((\d+) messages?\)</b><br>BEGIN<br>", note)
        if counter is not None:
            entries = note[counter.end() : note.rindex("END")]
            assert entries.count("<li><b>") == int(counter[1])
        assert note.count("<ul>") == note.count("</ul>")
        assert note.count("<li>") == note.count("</li>")
        assert "<script" not in note
        assert "\u202e" not in note
        assert "\x00" not in note
        assert note.endswith(")<br>")  # the footer and its reference close every record
