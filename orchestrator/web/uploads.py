"""Request bodies read by hand: every byte counted while it streams, nothing past a limit kept.

Starlette's ``request.form()`` lets python-multipart spool a part of any size to disk before the
code sees it. Here the body is read chunk by chunk from ``request.stream()`` and fed to
python-multipart's push parser; a file part goes straight into the core's ``EvidenceWriter``
(a temporary file under ``evidence_dir/tmp``, hashed as it arrives). The moment the body, a file,
a field or the number of files passes its limit, reading stops (``TooLarge``: 413) and every
temporary file is removed — a 2 GB upload costs at most the limit on disk and one chunk in memory.

Files are kept (moved into the store by hash) only by ``Form.store()``, after the whole body has
been read and the caller has checked the form (ownership, the core's rules): a refused request
leaves nothing.

No byte of a file before the form's CSRF token is verified: every form puts its ``csrf`` field
first; ``csrf`` (the caller's check of a token) is applied the moment that field has been read,
and reading stops there if it fails (``Forbidden``: 403). A file part that arrives before a
verified token is refused the same way, and a form that takes no files (``files=False``, the
default) refuses any file part (400) — nothing is written under ``evidence_dir/tmp`` for them.
A client that goes away mid-body raises Starlette's ``ClientDisconnect`` (after the cleanup).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from orchestrator.admin import evidence
from orchestrator.web.security import CSRF_FIELD

FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


@dataclass(frozen=True)
class UploadLimits:
    max_file_bytes: int = 20 * 1024 * 1024
    max_files: int = 10
    max_field_bytes: int = 64 * 1024
    max_fields: int = 50

    @property
    def files(self) -> evidence.UploadLimits:
        return evidence.UploadLimits(max_bytes=self.max_file_bytes, max_files=self.max_files)

    @property
    def max_body_bytes(self) -> int:
        """The whole request: every file at its limit, the fields, and the multipart framing."""
        return self.max_files * self.max_file_bytes + self.max_fields * self.max_field_bytes + 64 * 1024


class FormError(Exception):
    """The body cannot be used (400); ``status`` says which answer to give."""

    status = 400


class TooLarge(FormError):
    """A limit was passed while reading (413): reading stopped there."""

    status = 413


class Forbidden(FormError):
    """The form's CSRF token is missing or wrong, or a file came before it (403): reading stopped."""

    status = 403


CsrfCheck = Callable[[str], bool]


@dataclass
class Upload:
    """One file part, spooled by the core's ``EvidenceWriter``; ``filename`` is what the browser sent."""

    field: str
    filename: str
    writer: evidence.EvidenceWriter

    @property
    def size(self) -> int:
        return self.writer.size


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def files_of(self, name: str) -> list[Upload]:
        """The files sent in ``name`` (an empty file input sends a part with no name and no bytes)."""
        return [f for f in self.files if f.field == name and (f.size or f.filename)]

    def store(self, name: str) -> list[evidence.StoredFile]:
        """Check every file of ``name`` by its content, then keep them all (``EvidenceError`` and
        nothing kept if one is refused)."""
        wanted = self.files_of(name)
        for upload in wanted:
            writer = upload.writer
            if writer.handle is not None:
                try:
                    writer.handle.flush()
                except OSError as exc:  # a full disk: the server's fault
                    raise evidence.StorageFault(writer.root, exc) from exc
            if writer.size == 0:
                raise evidence.RefusedType(f"{writer.name}: the file is empty")
            if evidence.sniff(writer.temp, writer.head) not in evidence.ALLOWED:
                raise evidence.RefusedType(
                    f"{writer.name}: not an accepted file type (accepted: {evidence.ACCEPTED})"
                )
        return [upload.writer.finish() for upload in wanted]

    def cleanup(self) -> None:
        """Drop every temporary file not kept by ``store``."""
        for upload in self.files:
            upload.writer.abort()


async def read_form(
    request: Request,
    limits: UploadLimits,
    evidence_dir: Path,
    *,
    csrf: CsrfCheck | None = None,
    files: bool = False,
) -> Form:
    """Parse a urlencoded or multipart body within ``limits`` (``FormError``/``TooLarge`` otherwise);
    with ``csrf``, its ``csrf`` field must pass it (``Forbidden``), checked as soon as it is read;
    file parts only with ``files`` (and ``csrf``), each after the verified token."""
    if files and csrf is None:
        raise ValueError("a form that takes files needs its CSRF check")
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    kind = kind.decode("latin-1").lower()
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise TooLarge("the request is larger than the upload limit")
    if kind in (FORM_URLENCODED, ""):  # (no body at all reads as an empty form)
        form = await _read_urlencoded(request, limits)
    elif kind == MULTIPART and options.get(b"boundary"):
        reader = _MultipartReader(options[b"boundary"], limits, evidence_dir, csrf, files)
        form = await reader.read(request)
    else:
        raise FormError("expected a form (multipart/form-data or application/x-www-form-urlencoded)")
    if csrf is not None and not csrf(form.get(CSRF_FIELD)):
        form.cleanup()
        raise Forbidden("the form's CSRF token is missing or wrong")
    return form


async def _read_urlencoded(request: Request, limits: UploadLimits) -> Form:
    cap = limits.max_fields * limits.max_field_bytes
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise TooLarge("the form is larger than the limit")
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    if len(pairs) > limits.max_fields:
        raise TooLarge("too many form fields")
    form = Form()
    for name, value in pairs:
        form.fields.setdefault(name, []).append(value)
    return form


class _MultipartReader:
    """python-multipart's callbacks, collecting fields in memory and files in the spool folder."""

    def __init__(
        self, boundary: bytes, limits: UploadLimits, evidence_dir: Path, csrf: CsrfCheck | None, files: bool
    ) -> None:
        self.limits = limits
        self.evidence_dir = evidence_dir
        self.csrf = csrf
        self.files = files
        self.verified = False
        self.form = Form()
        self.error: FormError | None = None
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._part: _Part | None = None
        self._count = 0
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )

    async def read(self, request: Request) -> Form:
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > self.limits.max_body_bytes:
                    raise TooLarge("the request is larger than the upload limit")
                self.parser.write(chunk)
                if self.error is not None:
                    raise self.error
            self.parser.finalize()
            if self.error is not None:
                raise self.error
            if self._part is not None:
                raise FormError("the form ended in the middle of a part")
        except (
            FormError,
            evidence.EvidenceError,
            evidence.StorageFault,
            ClientDisconnect,
        ):  # (StorageFault: the server's fault)
            self._abort()
            raise
        except BaseException as exc:  # python-multipart's own parse errors
            self._abort()
            if not isinstance(exc, Exception):
                raise
            raise FormError("the form could not be read") from exc
        return self.form

    def _abort(self) -> None:
        if self._part is not None:
            self._part.discard()
            self._part = None
        self.form.cleanup()
        self.form.files.clear()

    def _fail(self, error: FormError) -> None:
        if self.error is None:
            self.error = error

    def _begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).decode("latin-1").lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if not self.files:
                self._fail(FormError("this form takes no files"))
                return
            if not self.verified:
                self._fail(Forbidden("a file part before the form's verified CSRF token"))
                return
            if len(self.form.files) + 1 > self.limits.max_files:
                self._fail(TooLarge(f"more than {self.limits.max_files} files"))
                return
            filename = options[b"filename"].decode("utf-8", "replace")
            self._part = _FilePart(name, filename, self.evidence_dir, self.limits.files)
        else:
            self._count += 1
            if self._count > self.limits.max_fields:
                self._fail(TooLarge("too many form fields"))
                return
            self._part = _FieldPart(name, self.limits.max_field_bytes)

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part is None or self.error is not None:
            return
        try:
            self._part.write(data[start:end])
        except evidence.TooLarge as exc:
            self._fail(TooLarge(str(exc)))
        except FormError as exc:
            self._fail(exc)

    def _end(self) -> None:
        part, self._part = self._part, None
        if part is None or self.error is not None:
            if part is not None:
                part.discard()
            return
        part.finish(self.form)
        if isinstance(part, _FieldPart) and part.name == CSRF_FIELD and self.csrf and not self.verified:
            if not self.csrf(self.form.get(CSRF_FIELD)):
                self._fail(Forbidden("the form's CSRF token is missing or wrong"))
                return
            self.verified = True


class _Part:
    def write(self, data: bytes) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, form: Form) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def discard(self) -> None:
        pass


class _FieldPart(_Part):
    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self.value = bytearray()

    def write(self, data: bytes) -> None:
        self.value += data
        if len(self.value) > self.limit:
            raise TooLarge(f"the field {self.name!r} is too long")

    def finish(self, form: Form) -> None:
        form.fields.setdefault(self.name, []).append(self.value.decode("utf-8", "replace"))


class _FilePart(_Part):
    def __init__(self, name: str, filename: str, evidence_dir: Path, limits: evidence.UploadLimits) -> None:
        self.upload = Upload(name, filename, evidence.EvidenceWriter(evidence_dir, filename, limits))

    def write(self, data: bytes) -> None:
        self.upload.writer.write(data)  # evidence.TooLarge past the limit (the file is dropped)

    def finish(self, form: Form) -> None:
        form.files.append(self.upload)

    def discard(self) -> None:
        self.upload.writer.abort()
