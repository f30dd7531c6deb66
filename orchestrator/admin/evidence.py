"""Evidence files (佐证材料): streamed to disk under a limit, typed by their content, stored by hash.

``store_file`` (or ``EvidenceWriter`` for a caller that gets chunks one at a time, such as an
async upload) writes the bytes to a temporary file under ``evidence_dir/tmp`` while counting them:
past ``limits.max_bytes`` it stops reading, deletes the temporary file and raises ``TooLarge`` —
a 2 GB upload never sits in memory or on disk past the limit. The media type is sniffed from the
content (magic bytes; zip containers and OLE compound files looked into), never from the name; a
type not allowed raises ``RefusedType``. The file then moves to ``evidence_dir/ab/abcdef….bin``
named by its SHA-256 (the same content is stored once). The user's file name is only ever a label
in the database, sanitised for display by ``display_name``; it is never part of a path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from workflows.errors import DubanError

CHUNK = 64 * 1024
MAX_NAME = 120

PDF = "application/pdf"
OFD = "application/ofd"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ZIP = "application/zip"
JPEG = "image/jpeg"
PNG = "image/png"
ALLOWED = frozenset({PDF, OFD, DOC, XLS, DOCX, XLSX, ZIP, JPEG, PNG})
EXTENSIONS = {PDF: "pdf", OFD: "ofd", DOC: "doc", XLS: "xls", DOCX: "docx", XLSX: "xlsx", ZIP: "zip"}
EXTENSIONS |= {JPEG: "jpg", PNG: "png"}
ACCEPTED = "pdf, ofd, doc, docx, xls, xlsx, jpg, png, zip"

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_WORD = "WordDocument".encode("utf-16-le")
_BOOK = ("Workbook".encode("utf-16-le"), "Book".encode("utf-16-le"))
_HEX = re.compile(r"^[0-9a-f]{64}$")


class EvidenceError(DubanError):
    """A file that cannot be kept as evidence (bad input: exit 2, a 4xx page); nothing stored."""


class TooLarge(EvidenceError):
    """The file is over the size limit (found while reading it)."""


class RefusedType(EvidenceError):
    """The file's content is not one of the accepted types (whatever its name says)."""


class TooManyFiles(EvidenceError):
    """More files in one submission than the limit."""


class StorageFault(DubanError):
    """The evidence folder cannot be written (permissions, a full disk, a missing mount): the
    server's fault, not the sender's (a 503, exit 1). ``folder`` and ``error`` say where and why."""

    exit_code = 1

    def __init__(self, folder: Path, error: OSError) -> None:
        self.folder = Path(folder)
        self.error = error.strerror or type(error).__name__
        super().__init__(f"{self.folder}: cannot write an evidence file ({self.error})")


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_files: int = 10


@dataclass(frozen=True)
class StoredFile:
    """A file kept under ``evidence_dir`` by its hash, with the name its sender gave it (sanitised)."""

    sha256: str
    size: int
    media_type: str
    name: str


def display_name(name: str | None) -> str:
    """A user's file name made harmless to show: its last path component, without control, format
    (RTL override, zero-width) or separator characters, at most ``MAX_NAME`` characters (the
    extension kept). Never a path."""
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] not in ("C", "Z") or c == " ")
    text = " ".join(text.split()).strip(". ")
    if len(text) > MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            text = stem[: MAX_NAME - len(ext) - 2] + "…." + ext
        else:
            text = text[: MAX_NAME - 1] + "…"
    return text or "file"


def evidence_path(evidence_dir: Path, sha256: str) -> Path:
    """Where the file with this hash lives: ``evidence_dir/ab/abcdef….bin``."""
    if not _HEX.match(sha256):
        raise EvidenceError(f"bad evidence hash {sha256[:80]!r}")
    return Path(evidence_dir) / sha256[:2] / f"{sha256}.bin"


def sniff(path: Path, head: bytes) -> str | None:
    """The media type of the file at ``path`` (``head``: its first bytes), or None if not accepted."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(_OLE):
        return _ole_kind(path)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(path)
    return None


def _zip_kind(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "OFD.xml" in names:
        return OFD
    if "[Content_Types].xml" in names:
        if any(n.startswith("word/") for n in names):
            return DOCX
        if any(n.startswith("xl/") for n in names):
            return XLSX
    return ZIP


def _ole_kind(path: Path) -> str | None:
    """An OLE compound file: a Word document or an Excel workbook by its stream names."""
    tail = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            window = tail + chunk
            if _WORD in window:
                return DOC
            if any(b in window for b in _BOOK):
                return XLS
            tail = window[-32:]
    return None


class EvidenceWriter:
    """Receives one file's chunks (``write``), then ``finish`` keeps it, or ``abort`` drops it.

    The size limit is enforced in ``write``: the chunk that passes it is not written, the
    temporary file is removed and ``TooLarge`` raised.
    """

    def __init__(self, evidence_dir: Path, original_name: str | None, limits: UploadLimits):
        self.root = Path(evidence_dir)
        self.name = display_name(original_name)
        self.limits = limits
        spool = self.root / "tmp"
        try:
            spool.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=spool, prefix="upload-", suffix=".part")
        except OSError as exc:
            raise StorageFault(self.root, exc) from exc
        self.temp = Path(temp)
        self.handle: BinaryIO | None = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size = 0
        self.head = b""

    def write(self, chunk: bytes) -> None:
        if self.handle is None:
            raise EvidenceError("the upload is already closed")
        self.size += len(chunk)
        if self.size > self.limits.max_bytes:
            self.abort()
            raise TooLarge(f"{self.name}: larger than the limit of {_megabytes(self.limits.max_bytes)} MB")
        if len(self.head) < 64:
            self.head += chunk[: 64 - len(self.head)]
        self.hash.update(chunk)
        try:
            self.handle.write(chunk)
        except OSError as exc:  # a full disk
            self.abort()
            raise StorageFault(self.root, exc) from exc

    def abort(self) -> None:
        handle, self.handle = self.handle, None
        with contextlib.suppress(OSError):  # (closing flushes: on a full disk that fails too)
            if handle is not None:
                handle.close()
            self.temp.unlink(missing_ok=True)

    def finish(self) -> StoredFile:
        if self.handle is None:
            raise EvidenceError("the upload is already closed")
        handle, self.handle = self.handle, None
        try:
            handle.close()
        except OSError as exc:
            self.temp.unlink(missing_ok=True)
            raise StorageFault(self.root, exc) from exc
        try:
            if self.size == 0:
                raise RefusedType(f"{self.name}: the file is empty")
            media_type = sniff(self.temp, self.head)
            if media_type not in ALLOWED:
                raise RefusedType(f"{self.name}: not an accepted file type (accepted: {ACCEPTED})")
            sha256 = self.hash.hexdigest()
            target = evidence_path(self.root, sha256)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.temp, target)  # the same content twice: one file
            except OSError as exc:
                raise StorageFault(self.root, exc) from exc
            return StoredFile(sha256, self.size, media_type, self.name)
        finally:
            with contextlib.suppress(OSError):
                self.temp.unlink(missing_ok=True)


def store_file(
    evidence_dir: Path,
    source: Iterable[bytes] | Path | BinaryIO,
    original_name: str | None,
    limits: UploadLimits,
) -> StoredFile:
    """Stream ``source`` (chunks, a path or an open binary file) into the evidence store."""
    writer = EvidenceWriter(evidence_dir, original_name, limits)
    try:
        if isinstance(source, Path):
            with open(source, "rb") as handle:
                _copy(handle, writer)
        elif hasattr(source, "read"):
            _copy(source, writer)  # type: ignore[arg-type]
        else:
            for chunk in source:  # type: ignore[union-attr]
                writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


def _copy(handle: BinaryIO, writer: EvidenceWriter) -> None:
    while chunk := handle.read(CHUNK):
        writer.write(chunk)


def check_count(count: int, limits: UploadLimits) -> None:
    if count > limits.max_files:
        raise TooManyFiles(f"{count} files: at most {limits.max_files} in one submission")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g}"
