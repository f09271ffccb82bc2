"""X-Ray tracing: a segment per run, subsegments per region and per external call.

Off unless enabled (``--xray``): the disabled tracer hands out one shared no-op span, so
instrumented code pays an attribute lookup and nothing else.

The aws-xray-sdk recorder keeps its context in thread-locals, which loses the parent as
soon as region work moves to a ``ThreadPoolExecutor``. So this module uses the SDK's
entity models and talks to the daemon itself: the run segment is shared explicitly, each
thread keeps its own stack of open subsegments, and a call made on a thread with no open
region attaches to the run segment. Every subsegment is sent on its own datagram when it
closes (an "independent subsegment" in X-Ray terms), so a run with many regions and
thousands of Earth Engine calls never builds a document over the 64 KB UDP limit.
Sending is fire-and-forget UDP: no daemon listening is never an error.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from types import TracebackType
from typing import Any

import structlog
from aws_xray_sdk.core.models.segment import Segment
from aws_xray_sdk.core.models.subsegment import Subsegment

log = structlog.get_logger(__name__)

DEFAULT_DAEMON_ADDRESS = "127.0.0.1:2000"
_HEADER = b'{"format":"json","version":1}\n'
_INVALID_KEY_CHARS = re.compile(r"[^A-Za-z0-9_]")
AnnotationValue = str | int | float | bool


def parse_daemon_address(address: str) -> tuple[str, int]:
    """``host:port`` or the daemon's two-part form ``tcp:host:port udp:host:port`` (UDP part used)."""
    udp = next((p[4:] for p in address.split() if p.startswith("udp:")), address.split()[0])
    host, _, port = udp.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"invalid X-Ray daemon address {address!r}: expected host:port")
    return host, int(port)


class _NullSpan:
    """What every context manager yields when tracing is off."""

    def __enter__(self) -> _NullSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def annotate(self, key: str, value: AnnotationValue) -> None:
        return None


_NULL_SPAN = _NullSpan()


class _Span:
    """An open segment or subsegment; ``annotate`` adds an indexed X-Ray annotation."""

    def __init__(self, tracer: Tracer, entity: Segment | Subsegment | None) -> None:
        self._tracer = tracer
        self.entity = entity

    def annotate(self, key: str, value: AnnotationValue) -> None:
        if self.entity is None:
            return
        try:
            self.entity.put_annotation(_INVALID_KEY_CHARS.sub("_", key), value)
        except Exception:  # tracing must never break the run
            log.debug("xray_annotation_failed", key=key)

    def __enter__(self) -> _Span:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._tracer._finish(self, exc)


class Tracer:
    """Sends X-Ray segments for one process; see the module docstring for the threading model."""

    def __init__(
        self, enabled: bool, *, service: str = "ccapi-monitor", daemon_address: str | None = None
    ) -> None:
        self.enabled = enabled
        self.service = service
        self._lock = threading.Lock()
        self._local = threading.local()
        self._segment: Segment | None = None
        self._socket: socket.socket | None = None
        address = daemon_address or os.environ.get("AWS_XRAY_DAEMON_ADDRESS") or DEFAULT_DAEMON_ADDRESS
        self.daemon_address = parse_daemon_address(address)
        if enabled:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socket.setblocking(False)

    @property
    def trace_id(self) -> str | None:
        """The current run's trace id (for log lines), or ``None``."""
        segment = self._segment
        return str(segment.trace_id) if segment is not None else None

    def run(self, run_id: str) -> _Span | _NullSpan:
        """The run's segment; regions and calls on any thread attach to it."""
        if not self.enabled:
            return _NULL_SPAN
        try:
            segment = Segment(self.service)
            segment.put_annotation("run_id", run_id)
        except Exception:
            log.debug("xray_segment_failed")
            return _NULL_SPAN
        with self._lock:
            self._segment = segment
        return _Span(self, segment)

    def region(self, name: str) -> _Span | _NullSpan:
        """A subsegment for one region's work, on the calling (worker) thread."""
        if not self.enabled:
            return _NULL_SPAN
        span = self._open(name, "local", {"region": name})
        if isinstance(span, _Span):
            self._stack().append(span)
        return span

    def call(self, name: str, **annotations: AnnotationValue) -> _Span | _NullSpan:
        """A subsegment for an external call (Earth Engine, Overpass, S3, Step Functions)."""
        if not self.enabled:
            return _NULL_SPAN
        span = self._open(name, "remote", annotations)
        if isinstance(span, _Span):
            self._stack().append(span)
        return span

    def close(self) -> None:
        """Release the UDP socket."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    # -- internals ---------------------------------------------------------------------

    def _stack(self) -> list[_Span]:
        stack: list[_Span] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _open(self, name: str, namespace: str, annotations: dict[str, AnnotationValue]) -> _Span | _NullSpan:
        segment = self._segment
        if segment is None:  # no run open: nothing to attach to
            return _NULL_SPAN
        stack = self._stack()
        parent: Segment | Subsegment = stack[-1].entity if stack and stack[-1].entity else segment
        try:
            sub = Subsegment(name, namespace, segment)
            with self._lock:
                parent.add_subsegment(sub)
            inherited = parent.annotations.get("region") if isinstance(parent, Subsegment) else None
            span = _Span(self, sub)
            if inherited is not None and "region" not in annotations:
                span.annotate("region", inherited)
            for key, value in annotations.items():
                span.annotate(key, value)
        except Exception:
            log.debug("xray_subsegment_failed", name=name)
            return _NULL_SPAN
        return span

    def _finish(self, span: _Span, exc: BaseException | None) -> None:
        entity = span.entity
        if entity is None:
            return
        try:
            if exc is not None:
                remote = isinstance(entity, Subsegment) and entity.namespace == "remote"
                entity.add_exception(exc, [], remote=remote)
                if "status" not in entity.annotations:
                    entity.put_annotation("status", "error")
            entity.close()
            if isinstance(entity, Subsegment):
                stack = self._stack()
                if span in stack:
                    stack.remove(span)
                parent = self._parent_of(entity)
                # Independent subsegment: its own datagram, then drop it from the tree.
                self._send(entity)
                if parent is not None:
                    with self._lock:
                        parent.remove_subsegment(entity)
            else:
                self._send(entity)
                with self._lock:
                    self._segment = None
        except Exception:
            log.debug("xray_close_failed")

    def _parent_of(self, sub: Subsegment) -> Segment | Subsegment | None:
        segment = self._segment
        if segment is None:
            return None
        pending: list[Segment | Subsegment] = [segment]
        with self._lock:
            while pending:
                node = pending.pop()
                if sub in node.subsegments:
                    return node
                pending.extend(node.subsegments)
        return None

    def _send(self, entity: Segment | Subsegment) -> None:
        sock = self._socket
        if sock is None:
            return
        document: dict[str, Any] = entity.to_dict()
        if isinstance(entity, Segment):
            document.setdefault("origin", "AWS::ECS::Container")
        payload = _HEADER + json.dumps(document, default=str, separators=(",", ":")).encode()
        try:
            sock.sendto(payload, self.daemon_address)
        except OSError:  # no daemon, full buffer, or an unreachable address: tracing is best effort
            log.debug("xray_send_failed")


_tracer = Tracer(False)


def get_tracer() -> Tracer:
    """The process-wide tracer (disabled until :func:`set_tracer` installs an enabled one)."""
    return _tracer


def set_tracer(tracer: Tracer) -> None:
    global _tracer
    _tracer = tracer
