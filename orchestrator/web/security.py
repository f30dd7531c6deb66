"""The portal's defences, each small: CSRF tokens, the office session, rate limits, headers, names.

- CSRF: every form carries ``csrf``, ``URLSafeTimedSerializer(key, salt="duban.web.csrf")`` over
  what the form is bound to (a digest of the unit's link, or the office session's id) and a
  random form id; a POST is refused (403) unless the token is genuine, fresh and bound to the same
  link or session. The form id makes a double submit of one rendered form recognisable.
- The office session: a signed cookie (``salt="duban.web.session"``) with the email and a random
  session id, HttpOnly, SameSite=Lax, Secure when the portal is served over https; the server
  knows the session (``admin.office_sessions``: the id's SHA-256), so logout ends it for good.
- Rate limit: a sliding window of POSTs per link or session, in memory (one web process); the
  office's login-link requests have their own three counts (``LoginRequests``).
- Headers on every answer: a CSP without inline script, no referrer (the link is a credential),
  nosniff, no framing, no caching of pages that carry a link.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict, deque
from dataclasses import dataclass
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeTimedSerializer

from orchestrator.admin.evidence import EXTENSIONS, display_name

CSRF_FIELD = "csrf"
CSRF_MAX_AGE = 12 * 3600
SESSION_COOKIE = "duban_office"
SESSION_MAX_AGE = 8 * 3600

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def binding_of(secret_text: str) -> str:
    """A short digest standing for a link or a session id (so the token never holds the link)."""
    return hashlib.sha256(secret_text.encode("utf-8")).hexdigest()[:32]


class Csrf:
    def __init__(self, key: bytes | str) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt="duban.web.csrf")

    def issue(self, binding: str) -> str:
        return self._serializer.dumps({"b": binding, "f": secrets.token_urlsafe(12)})

    def check(self, token: str, binding: str) -> str | None:
        """The form id when ``token`` is genuine, fresh and bound to ``binding``; else None."""
        try:
            data = self._serializer.loads(token, max_age=CSRF_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not secrets.compare_digest(str(data.get("b", "")), binding):
            return None
        return str(data.get("f", ""))


@dataclass(frozen=True)
class OfficeSession:
    email: str
    sid: str


class Sessions:
    def __init__(self, key: bytes | str) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt="duban.web.session")

    def issue(self, email: str, sid: str) -> str:
        """The cookie for the server's session ``sid`` of ``email``."""
        return self._serializer.dumps({"e": email, "s": sid})

    def read(self, cookie: str | None, allowed: frozenset[str]) -> OfficeSession | None:
        """The session ``cookie`` names if it is genuine, fresh and its email is still an office email
        (whether the server still knows it is ``Portal.office_of``'s question)."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        email = str(data.get("e", "")) if isinstance(data, dict) else ""
        sid = str(data.get("s", "")) if isinstance(data, dict) else ""
        if email.lower() not in allowed or not sid:
            return None
        return OfficeSession(email, sid)


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds for one key (the oldest keys are forgotten)."""

    def __init__(self, limit: int, window: float, *, keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self._keys = keys
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._seen.pop(key, None) or deque()
            while times and times[0] <= now - self.window:
                times.popleft()
            allowed = len(times) < self.limit
            if allowed:
                times.append(now)
            self._seen[key] = times
            while len(self._seen) > self._keys:
                self._seen.popitem(last=False)
            return allowed


class LoginRequests:
    """Whether an office login-link request may send a mail, each limit its own count (so a stranger
    cannot spend the office's allowance): per client address, per address and client, and per
    address from clients the office has not logged in from (``known``)."""

    def __init__(self) -> None:
        self.per_client = RateLimiter(5, 15 * 60)
        self.per_address_client = RateLimiter(2, 15 * 60)
        self.per_address_strangers = RateLimiter(10, 3600)

    def allow(self, email: str, client: str | None, known: bool) -> bool:
        if not self.per_client.allow(f"{client}"):
            return False
        if not self.per_address_client.allow(f"{email}\n{client}"):
            return False
        return known or self.per_address_strangers.allow(email)


class SeenForms:
    """Form ids already handled, with the answer given (a double submit gets the same answer)."""

    def __init__(self, size: int = 5_000) -> None:
        self._size = size
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, form_id: str) -> str | None:
        with self._lock:
            return self._seen.get(form_id)

    def put(self, form_id: str, answer: str) -> None:
        with self._lock:
            self._seen[form_id] = answer
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)


# -- what users typed -------------------------------------------------------------------------

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def clean_text(value: str, limit: int) -> str:
    """A user's text with control and bidi-override characters removed (newlines kept), capped."""
    text = unicodedata.normalize("NFC", value).replace("\r\n", "\n")
    text = "".join(ch for ch in text if ch == "\n" or not _UNSAFE.match(ch))
    return text.strip()[:limit]


_SAME_TYPE = {"jpeg": "jpg", "jpe": "jpg"}  # other names of one type's extension


def download_name(name: str, media_type: str) -> str:
    """The user's file name with the extension of the type its content was found to be: ``x.html``
    holding a PDF downloads as ``x.pdf`` (no name makes a browser or a desktop open a file as
    something it is not); a name without an extension gets one."""
    wanted = EXTENSIONS.get(media_type)
    safe = display_name(name)
    if wanted is None:
        return safe
    stem, dot, ext = safe.rpartition(".")
    if dot and stem and _SAME_TYPE.get(ext.lower(), ext.lower()) == wanted:
        return safe
    return f"{stem if dot and stem else safe}.{wanted}"


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the UTF-8 name (RFC 6266 / RFC 5987)."""
    safe = display_name(name)
    ascii_name = safe.encode("ascii", "ignore").decode("ascii").strip() or "file"
    if "." in safe and "." not in ascii_name:
        ascii_name += "." + safe.rpartition(".")[2].encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]", "_", ascii_name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(safe, safe='')}"


def clean_agent(value: str | None) -> str | None:
    return clean_text(value, 200) if value else None
