"""The one policy for HTTP status codes: which answers mean "try again later".

Used by the Prefect retry condition (``flows/retry.py``), the LLM client (``pipelines/llm.py``)
and the Hub publisher (``pipelines/publish.py``), which used to keep three lists that disagreed
(409 and 501 in one, not in another). Transient: request timeout (408), conflict (409: a
concurrent update, e.g. the Hub's "commit in progress"), too early (425), rate limit (429) and
server-side errors (5xx) except 501 Not Implemented and 505 HTTP Version Not Supported, which
answer the same way every time. Everything else (400, 401, 403, 404, 422...) is the request's
fault: retrying cannot fix it.
"""

from __future__ import annotations

#: HTTP status codes a retry may fix.
TRANSIENT_HTTP_STATUS = frozenset({408, 409, 425, 429}) | (frozenset(range(500, 600)) - {501, 505})


def is_transient_status(status: int | None) -> bool:
    return status in TRANSIENT_HTTP_STATUS


def http_status(exc: BaseException) -> int | None:
    """The HTTP status carried by an httpx / httpx2 / requests / huggingface_hub error, if any."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None
