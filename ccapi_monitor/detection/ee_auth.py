"""Earth Engine service-account credentials and client initialization.

The key arrives as JSON text in ``GEE_SERVICE_ACCOUNT_KEY`` (ECS injects it from
Secrets Manager) or as a file named by ``GEE_SERVICE_ACCOUNT_KEY_FILE``. Every message
here names the variable to fix and never quotes key material: errors from parsers and
google-auth are replaced by our own text because they may echo the input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import structlog

from ccapi_monitor.errors import CredentialsError

log = structlog.get_logger(__name__)

#: The endpoint Google recommends for many small, stateless, automated requests.
HIGH_VOLUME_URL: Final = "https://earthengine-highvolume.googleapis.com"
SCOPES: Final = (
    "https://www.googleapis.com/auth/earthengine",
    "https://www.googleapis.com/auth/cloud-platform",
)
_OFFLINE_HINT: Final = "`--imagery demo` runs offline without Earth Engine."
_REQUIRED_FIELDS: Final = ("type", "client_email", "private_key", "token_uri")


def _fail(problem: str) -> CredentialsError:
    return CredentialsError(f"Earth Engine credentials: {problem}. {_OFFLINE_HINT}")


def _read_key(key_json: str | None, key_file: Path | None) -> tuple[dict[str, Any], str]:
    """The parsed key and the name of the variable it came from."""
    if key_json is not None and key_json.strip():
        source, text = "GEE_SERVICE_ACCOUNT_KEY", key_json
    elif key_file is not None:
        source = "GEE_SERVICE_ACCOUNT_KEY_FILE"
        try:
            text = Path(key_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise _fail(
                f"{source} names {key_file}, which cannot be read ({exc.strerror or 'error'})"
            ) from None
    else:
        raise _fail(
            "no service-account key; set GEE_SERVICE_ACCOUNT_KEY (the key JSON) or "
            "GEE_SERVICE_ACCOUNT_KEY_FILE (its path), and GEE_PROJECT"
        )
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        # Position only: the message of a JSON error can include the text around it.
        raise _fail(f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(info, dict):
        raise _fail(f"{source} must hold a JSON object (a service-account key)")
    missing = [name for name in _REQUIRED_FIELDS if not info.get(name)]
    if missing:
        raise _fail(f"{source} is not a service-account key: missing {', '.join(missing)}")
    if info["type"] != "service_account":
        raise _fail(f"{source} has type {info['type']!r}; a 'service_account' key is required")
    return info, source


def load_credentials(
    key_json: str | None, key_file: Path | None, project: str | None
) -> tuple[Any, str, str]:
    """Service-account credentials, the Cloud project, and the key's account e-mail.

    The project comes from ``GEE_PROJECT``, else from the key's ``project_id``.
    """
    from google.oauth2 import service_account

    info, source = _read_key(key_json, key_file)
    try:
        credentials = service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
    except (ValueError, TypeError, KeyError):
        raise _fail(f"{source} holds a private key that cannot be loaded") from None
    chosen = project or info.get("project_id")
    if not chosen:
        raise _fail("no Cloud project; set GEE_PROJECT to the project registered for Earth Engine")
    return credentials, str(chosen), str(info["client_email"])


def initialize_client(
    credentials: Any,
    project: str,
    *,
    url: str = HIGH_VOLUME_URL,
    deadline_s: float,
    http_transport: Any = None,
) -> None:
    """Initialize the (process-global) ``ee`` client: endpoint, deadline, no hidden retries.

    ``ee.data.setMaxRetries(0)``: googleapiclient would otherwise retry 429s and 5xx on its
    own schedule, invisible to the limiter and uncounted; all retries go through
    :func:`ccapi_monitor.detection.ee_quota.run_with_retries` instead.
    """
    import ee

    ee.data.setMaxRetries(0)  # before Initialize: its discovery request honours it too
    ee.Initialize(credentials, url=url, project=project, http_transport=http_transport)
    # A deadline on every request: the requests session's timeout for each HTTP call.
    ee.data.setDeadline(int(deadline_s * 1000))
    ee.data.setUserAgent("ccapi-monitor")
