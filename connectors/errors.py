"""Typed connector errors.

Our exception hierarchy::

    ConnectorError            anything a connector raises on purpose
    ├── ManifestError         a manifest is malformed (file, field, allowed values)
    ├── AuthFailed            credentials rejected, refresh failed, or 401 after one refresh
    ├── RateLimited           the vendor throttled us past the call's deadline (retry_after)
    ├── VendorError           the vendor answered with an error (status, vendor_message)
    └── OutboundBlocked       the SSRF guard refused a URL

Messages are written for a care-home manager first: they carry the vendor's own words.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConnectorError(Exception):
    """Base class of every error a connector raises on purpose."""

    retryable: bool = False


class ManifestError(ConnectorError):
    """A connector manifest failed validation; names the file, the field and the allowed values."""

    def __init__(self, path: str, field: str, message: str, allowed: Sequence[str] = ()) -> None:
        self.path = path
        self.field = field
        self.message = message
        self.allowed = list(allowed)
        text = f"{path}: field `{field}`: {message}"
        if self.allowed:
            text += f". Allowed values: {', '.join(self.allowed)}"
        super().__init__(text)


class AuthFailed(ConnectorError):
    """The vendor rejected our credentials, or refreshing them failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class RateLimited(ConnectorError):
    """The vendor throttled us and the wait does not fit in the call's deadline."""

    retryable = True

    def __init__(self, retry_after: float, message: str = "", *, problem: str | None = None) -> None:
        self.retry_after = retry_after
        self.problem = problem
        super().__init__(message or f"rate limited ({problem or 'unspecified'}); retry after {retry_after:.1f}s")


class VendorError(ConnectorError):
    """The vendor answered with an error status; ``vendor_message`` is the vendor's own text."""

    def __init__(self, status: int, vendor_message: str, *, code: str | None = None, retryable: bool = False) -> None:
        self.status = status
        self.vendor_message = vendor_message
        self.code = code
        self.retryable = retryable
        super().__init__(f"HTTP {status}: {vendor_message}" + (f" ({code})" if code else ""))


class OutboundBlocked(ConnectorError):
    """The SSRF guard refused to call a URL (private, loopback, link-local or metadata address)."""
