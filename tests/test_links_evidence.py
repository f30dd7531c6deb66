"""Signed unit links and office logins (``admin.links``), and the evidence store (``admin.evidence``),
on a real SQLite file and real files. Time is a parameter (``now``)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from orchestrator.admin.evidence import (
    DOC,
    DOCX,
    JPEG,
    OFD,
    PDF,
    PNG,
    XLS,
    XLSX,
    ZIP,
    EvidenceWriter,
    RefusedType,
    TooLarge,
    UploadLimits,
    display_name,
    evidence_path,
    store_file,
)
from orchestrator.admin.links import (
    WeakSecret,
    link_for_unit,
    make_office_login,
    make_unit_token,
    read_unit_token,
    revoke,
    unit_link,
    use_office_login,
)
from orchestrator.store.db import make_engine, transaction, upgrade
from orchestrator.store.models import Event

SECRET = "s" * 40
NOW = datetime(2026, 6, 10, 1, 30, tzinfo=UTC)
YEAR = 456 * 86400


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'duban.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_good_unit_token_names_its_unit(engine):
    with Session(engine) as session:
        token = make_unit_token(SECRET, "town-a", 1, now=NOW)
        assert read_unit_token(SECRET, token, session, YEAR, now=NOW + timedelta(days=300)) == "town-a"
        link = link_for_unit(SECRET, "https://duban.example.gov.cn/", session, "town-a", now=NOW)
    assert link.startswith("https://duban.example.gov.cn/u/") and SECRET not in link
    assert unit_link("http://x/", "T") == "http://x/u/T"


def test_tampered_expired_revoked_and_foreign_tokens_all_read_as_none(engine):
    token = make_unit_token(SECRET, "town-a", 1, now=NOW)
    head, _, tail = token.rpartition(".")
    flipped = head + "." + ("A" if tail[0] != "A" else "B") + tail[1:]
    other_salt_login = None
    with transaction(engine) as session:
        other_salt_login = make_office_login(SECRET, "fazhiban@example.gov.cn", session, NOW)
    bad = {
        "tampered signature": flipped,
        "tampered payload": token.replace(token[2], "x" if token[2] != "x" else "y", 1),
        "other key": make_unit_token("k" * 40, "town-a", 1, now=NOW),
        "office token": other_salt_login,
        "garbage": "../../etc/passwd",
        "empty": "",
        "from the future": make_unit_token(SECRET, "town-a", 1, now=NOW + timedelta(days=3)),
        "unknown version": make_unit_token(SECRET, "town-a", 7, now=NOW),
    }
    with Session(engine) as session:
        for what, candidate in bad.items():
            assert read_unit_token(SECRET, candidate, session, YEAR, now=NOW) is None, what
        assert read_unit_token(SECRET, token, session, YEAR, now=NOW + timedelta(seconds=YEAR + 1)) is None
        assert read_unit_token(SECRET, token, session, YEAR, now=NOW) == "town-a"
    with transaction(engine) as session:
        assert revoke(session, "town-a", NOW, "alice") == 2
    with Session(engine) as session:
        assert read_unit_token(SECRET, token, session, YEAR, now=NOW) is None
        fresh = link_for_unit(SECRET, "http://h", session, "town-a", now=NOW).rpartition("/")[2]
        assert read_unit_token(SECRET, fresh, session, YEAR, now=NOW) == "town-a"
        event = session.exec(select(Event).where(Event.kind == "unit.link_revoked")).one()
    assert (event.actor, event.before, event.after) == ("alice", {"version": 1}, {"version": 2})


def test_a_short_secret_is_refused_without_showing_it():
    with pytest.raises(WeakSecret) as caught:
        make_unit_token("short-key", "town-a", 1)
    assert "short-key" not in str(caught.value)


def test_an_office_login_works_once_and_for_15_minutes(engine):
    with transaction(engine) as session:
        token = make_office_login(SECRET, "fazhiban@example.gov.cn", session, NOW)
        late = make_office_login(SECRET, "fazhiban@example.gov.cn", session, NOW)
    with transaction(engine) as session:
        assert use_office_login(SECRET, late, session, NOW + timedelta(minutes=15, seconds=1)) is None
        assert (
            use_office_login(SECRET, token, session, NOW + timedelta(minutes=14)) == "fazhiban@example.gov.cn"
        )
    with transaction(engine) as session:
        assert use_office_login(SECRET, token, session, NOW + timedelta(minutes=14)) is None
        unit = make_unit_token(SECRET, "town-a", 1, now=NOW)
        assert use_office_login(SECRET, unit, session, NOW) is None


# -- evidence ------------------------------------------------------------------------------------


def _zip(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504


@pytest.mark.parametrize(
    ("content", "media_type"),
    [
        (b"%PDF-1.7\n1 0 obj\n%%EOF", PDF),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, PNG),
        (b"\xff\xd8\xff\xe0" + b"\0" * 20, JPEG),
        (OLE + "WordDocument".encode("utf-16-le") + b"\0" * 100, DOC),
        (OLE + "Workbook".encode("utf-16-le") + b"\0" * 100, XLS),
        (_zip("[Content_Types].xml", "word/document.xml"), DOCX),
        (_zip("[Content_Types].xml", "xl/workbook.xml"), XLSX),
        (_zip("OFD.xml", "Doc_0/Document.xml"), OFD),
        (_zip("a.txt"), ZIP),
    ],
)
def test_the_type_is_sniffed_from_the_content(tmp_path, content, media_type):
    stored = store_file(tmp_path, [content], "whatever.bin", UploadLimits())
    assert stored.media_type == media_type
    assert evidence_path(tmp_path, stored.sha256).read_bytes() == content


@pytest.mark.parametrize(
    "content",
    [b"MZ\x90\x00" + b"\0" * 100, b"#!/bin/sh\nrm -rf /\n", b"<html><script>", OLE + b"\0" * 100, b""],
)
def test_an_exe_renamed_pdf_and_other_types_are_refused_and_leave_no_file(tmp_path, content):
    with pytest.raises(RefusedType, match=r"accepted|empty"):
        store_file(tmp_path, [content], "报告.pdf", UploadLimits())
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_size_limit_stops_a_2_gb_stream_while_reading_and_leaves_no_file(tmp_path):
    produced = 0
    chunk = b"%PDF-" + b"\0" * (1024 * 1024 - 5)

    def two_gigabytes():
        nonlocal produced
        for _ in range(2048):
            produced += len(chunk)
            yield chunk

    with pytest.raises(TooLarge, match="20 MB"):
        store_file(tmp_path, two_gigabytes(), "big.pdf", UploadLimits(max_bytes=20 * 1024 * 1024))
    assert produced <= 21 * 1024 * 1024  # stopped reading at the limit
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_writer_refuses_the_chunk_that_passes_the_limit(tmp_path):
    writer = EvidenceWriter(tmp_path, "a.pdf", UploadLimits(max_bytes=10))
    writer.write(b"%PDF-1234")
    with pytest.raises(TooLarge):
        writer.write(b"56")
    assert not writer.temp.exists()


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Windows\\system32\\cmd.pdf", "cmd.pdf"),
        ("report\x00.pdf", "report.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("\x1b[31mred\x1b[0m.pdf", "[31mred[0m.pdf"),
        ("  ..hidden.pdf  ", "hidden.pdf"),
        ("", "file"),
        ("/", "file"),
        ("实施方案\u200b（定稿）.pdf", "实施方案（定稿）.pdf"),
    ],
)
def test_hostile_file_names_are_harmless(tmp_path, name, shown):
    assert display_name(name) == shown
    stored = store_file(tmp_path / "ev", [b"%PDF-1.4 x"], name, UploadLimits())
    assert stored.name == shown
    files = [p for p in (tmp_path / "ev").rglob("*") if p.is_file()]
    assert files == [evidence_path(tmp_path / "ev", stored.sha256)]
    assert files[0].name == f"{stored.sha256}.bin"


def test_a_very_long_name_is_cut_keeping_its_extension():
    shown = display_name("很" * 500 + ".docx")
    assert len(shown) <= 120 and shown.endswith(".docx")


def test_the_same_content_is_stored_once(tmp_path):
    first = store_file(tmp_path, [b"%PDF-1.4 same"], "a.pdf", UploadLimits())
    second = store_file(tmp_path, io.BytesIO(b"%PDF-1.4 same"), "b.pdf", UploadLimits())
    assert first.sha256 == second.sha256 and (first.name, second.name) == ("a.pdf", "b.pdf")
    assert len([p for p in tmp_path.rglob("*.bin")]) == 1
    assert not any((tmp_path / "tmp").iterdir())


def test_a_bad_hash_is_never_a_path(tmp_path):
    with pytest.raises(Exception, match="bad evidence hash"):
        evidence_path(tmp_path, "../../etc/passwd")
    assert isinstance(evidence_path(tmp_path, "a" * 64), Path)
