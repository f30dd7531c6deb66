"""The hand-folded headers (``notifications.render``) read back by the ``email`` package.

``Renderer`` writes From/To/Subject already RFC 2047-encoded and folded, instead of letting the
email package fold them (for speed). Whatever the names, a reader using either policy of the
standard library (``email.policy.default`` and ``compat32``) must get the same names and addresses
back, and no line may pass 78 characters.

One difference is Python's, not ours: a display name too long for one encoded word (over 45
UTF-8 octets, 16 Chinese characters) is split into several, and ``email.policy.default``'s
address parser (CPython 3.11) keeps the folding space between them, which RFC 2047 (6.2) says
to ignore; compat32's ``decode_header`` drops it. The stdlib's own folding of the same name reads
back the same way (``test_the_stdlib_folding_reads_back_with_the_same_space``), so for such names
the modern reading is compared without the spaces at encoded-word boundaries.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, compat32, default
from email.utils import getaddresses

from hypothesis import given, settings
from hypothesis import strategies as st

from notifications.model import Digest, DigestItem, Recipient
from notifications.render import Renderer, address_list, unstructured

CHINESE = "督办法治政府建设指标体系试点县司法局公安市场监督管理镇人民政府办公室，、（）"
NAME = (
    st.text(st.sampled_from([*CHINESE, "𠀀", *"abcXYZ019 .-'"]), min_size=1, max_size=40)
    .map(lambda s: " ".join(s.split()))
    .filter(bool)
)
LOCAL = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789.-_+"), min_size=1, max_size=30).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s
)
EMAIL = st.builds(
    lambda local, host: f"{local}@{host}", LOCAL, st.sampled_from(["example.gov.cn", "a.b.example.com"])
)
ADDRESSES = st.lists(st.tuples(NAME, EMAIL), min_size=1, max_size=25)


def parsed(header: str, value: str, policy):
    return message_from_bytes(f"{header}: {value}\r\n\r\nbody\r\n".encode("ascii"), policy=policy)


def compat32_addresses(message, header: str) -> list[tuple[str, str]]:
    """What a compat32 reader does: split the addresses, then decode each display name."""
    return [
        (str(make_header(decode_header(name))), email)
        for name, email in getaddresses(message.get_all(header))
    ]


def modern_names(value: str) -> list[tuple[str, str]]:
    return [(a.display_name, a.addr_spec) for a in parsed("To", value, default)["To"].addresses]


def same_name(read: str, name: str) -> bool:
    """``read`` is ``name``; for a name in several encoded words, up to spaces the parser inserted."""
    if name.isascii() or len(name.encode("utf-8")) <= ONE_WORD:
        return read == name
    return (
        read.replace(" ", "") == name.replace(" ", "") and len(read) - len(name) <= len(name.encode()) // 40
    )


ONE_WORD = 45  # octets in one encoded word of an address (base64: 60 characters)


def assert_lines_fit(header: str, value: str) -> None:
    assert value.isascii()
    assert all(len(line) <= 78 for line in f"{header}: {value}".split("\r\n"))


@settings(max_examples=300, deadline=None)
@given(ADDRESSES)
def test_address_lists_read_back_the_same_with_both_policies(addresses):
    value = address_list("To", addresses)
    assert_lines_fit("To", value)
    modern = modern_names(value)
    assert [e for _, e in modern] == [e for _, e in addresses]
    assert all(same_name(read, name) for (read, _), (name, _) in zip(modern, addresses, strict=True))
    assert compat32_addresses(parsed("To", value, compat32), "To") == addresses


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from([*CHINESE, "😀", *"abc XYZ019:【】-"]), min_size=1, max_size=200))
def test_subjects_read_back_the_same_with_both_policies(subject):
    value = unstructured("Subject", subject)
    assert_lines_fit("Subject", value)
    expected = " ".join(subject.split())
    assert str(parsed("Subject", value, default)["Subject"]) == expected
    assert str(make_header(decode_header(parsed("Subject", value, compat32)["Subject"]))) == expected


def test_a_rendered_digest_to_many_chinese_names_reads_back_with_both_policies():
    names = [
        "县市场监督管理局办公室",
        "乙镇人民政府",
        "Office of the County",
        "法治政府建设指标体系试点工作领导小组办公室",
    ]
    emails = tuple(f"unit{n}@example.gov.cn" for n in range(30))
    renderer = Renderer(
        sender="督办系统（县司法局法治督察科） <duban@example.gov.cn>",
        reply_to='"县司法局法治督察科, 县政府办公室" <office@example.gov.cn>',
        domain="example.gov.cn",
        timezone="Asia/Shanghai",
    )
    item = DigestItem(
        key="k1",
        kind="reminder",
        workflow="rule-of-law-pilot",
        workflow_title="法治政府建设指标体系试点" * 3,
        phase=None,
        phase_name=None,
        task="T05",
        task_title="制定本单位实施方案",
        section=None,
        detail=None,
        unit="town-b",
        unit_name=names[3],
        occurrence=None,
        due=date(2026, 6, 10),
        opens=date(2026, 5, 10),
    )
    digest = Digest(Recipient("town-b", names[3], emails), date(2026, 6, 1), (item,))
    wire = renderer.render(digest, now=datetime(2026, 6, 1, 1, tzinfo=UTC)).as_bytes()
    head = wire.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and all(len(line) <= 78 for line in head.split(b"\r\n"))

    modern = message_from_bytes(wire, policy=default)
    old = message_from_bytes(wire, policy=compat32)
    expected_to = [(names[3], e) for e in emails]
    to = [(a.display_name, a.addr_spec) for a in modern["To"].addresses]
    assert [e for _, e in to] == list(emails) and all(same_name(read, names[3]) for read, _ in to)
    assert compat32_addresses(old, "To") == expected_to
    sender = [("督办系统（县司法局法治督察科）", "duban@example.gov.cn")]
    assert [(a.display_name, a.addr_spec) for a in modern["From"].addresses] == sender
    assert compat32_addresses(old, "From") == sender
    reply_to = [("县司法局法治督察科, 县政府办公室", "office@example.gov.cn")]
    assert compat32_addresses(old, "Reply-To") == reply_to
    ((read, address),) = [(a.display_name, a.addr_spec) for a in modern["Reply-To"].addresses]
    assert address == reply_to[0][1] and same_name(read, reply_to[0][0])
    assert (
        str(make_header(decode_header(old["Subject"]))) == str(modern["Subject"]) == renderer.subject(digest)
    )


def test_the_stdlib_folding_reads_back_with_the_same_space():
    """Why ``same_name`` allows spaces: the email package's own folding of a long name reads back so."""
    name = "法治政府建设指标体系试点工作领导小组办公室"
    message = EmailMessage(policy=SMTP)
    message["To"] = Address(display_name=name, addr_spec="office@example.gov.cn")
    message.set_content("x")
    folded = message.as_bytes().split(b"\r\n\r\n")[0].decode("ascii")
    assert folded.count("=?utf-8?") == 2  # two encoded words
    read = message_from_bytes(message.as_bytes(), policy=default)["To"].addresses[0].display_name
    assert read != name and same_name(read, name)
    ours = modern_names(address_list("To", [(name, "office@example.gov.cn")]))[0][0]
    assert same_name(ours, name)
