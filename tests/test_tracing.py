"""X-Ray: segments reach a UDP listener standing in for the daemon, parented across threads."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from structlog.testing import capture_logs

from ccapi_monitor.tracing import Tracer, get_tracer, parse_daemon_address, set_tracer


class DaemonStub:
    """A UDP socket on 127.0.0.1 that collects X-Ray documents."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def receive(self, expected: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        documents: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(documents) < expected and time.monotonic() < deadline:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            header, _, body = data.partition(b"\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            documents.append(json.loads(body))
        return documents


@pytest.fixture
def daemon() -> Iterator[DaemonStub]:
    stub = DaemonStub()
    yield stub
    stub.sock.close()


def test_run_region_and_call_subsegments_arrive_with_annotations(daemon: DaemonStub) -> None:
    tracer = Tracer(True, daemon_address=daemon.address)
    regions = ["Bekasi", "Karawang", "Semarang", "Surabaya"]

    def work(name: str) -> None:
        with tracer.region(name) as region:
            with tracer.call("EarthEngine", operation="computePixels"):
                pass
            region.annotate("status", "failed" if name == "Semarang" else "ok")

    with tracer.run("run-42"):
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(work, regions))
        with tracer.call("S3", operation="PutObject"):
            pass

    documents = daemon.receive(expected=1 + 2 * len(regions) + 1)
    segments = [d for d in documents if d.get("type") != "subsegment"]
    assert len(segments) == 1
    segment = segments[0]
    assert segment["name"] == "ccapi-monitor"
    assert segment["annotations"] == {"run_id": "run-42"}

    subs = {d["id"]: d for d in documents if d.get("type") == "subsegment"}
    region_subs = {d["annotations"]["region"]: d for d in subs.values() if d["name"] in regions}
    assert set(region_subs) == set(regions)
    for name, sub in region_subs.items():
        assert sub["parent_id"] == segment["id"]
        assert sub["trace_id"] == segment["trace_id"]
        assert sub["annotations"]["status"] == ("failed" if name == "Semarang" else "ok")
    ee_calls = [d for d in subs.values() if d["name"] == "EarthEngine"]
    assert len(ee_calls) == len(regions)
    for call in ee_calls:  # each call hangs under its own thread's region
        parent = subs[call["parent_id"]]
        assert parent["annotations"]["region"] == call["annotations"]["region"]
        assert call["namespace"] == "remote"
    s3 = next(d for d in subs.values() if d["name"] == "S3")
    assert s3["parent_id"] == segment["id"]  # no region open on the main thread
    assert all(d["end_time"] >= d["start_time"] for d in documents)


def test_exceptions_mark_the_subsegment_as_a_fault(daemon: DaemonStub) -> None:
    tracer = Tracer(True, daemon_address=daemon.address)
    with tracer.run("r"), pytest.raises(RuntimeError), tracer.region("Bekasi"):
        raise RuntimeError("imagery backend down")
    documents = daemon.receive(expected=2)
    region = next(d for d in documents if d.get("type") == "subsegment")
    assert region["fault"] is True
    assert region["annotations"]["status"] == "error"


def test_disabled_tracer_is_a_shared_no_op(daemon: DaemonStub) -> None:
    tracer = Tracer(False, daemon_address=daemon.address)
    with tracer.run("r") as run, tracer.region("Bekasi") as region, tracer.call("S3") as call:
        region.annotate("status", "ok")
    assert run is region is call
    assert daemon.receive(expected=1, timeout=0.5) == []


def test_no_daemon_listening_is_not_an_error() -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens on this port any more
    tracer = Tracer(True, daemon_address=address)
    finished = 0
    with capture_logs() as logs:
        for _ in range(3):  # ICMP port-unreachable surfaces on later sends on some systems
            with tracer.run("r"), tracer.region("Bekasi"), tracer.call("S3"):
                pass
            finished += 1
        tracer.close()
    assert finished == 3
    assert [e for e in logs if e.get("log_level") in ("error", "critical")] == []


def test_calls_outside_a_run_are_ignored(daemon: DaemonStub) -> None:
    tracer = Tracer(True, daemon_address=daemon.address)
    with tracer.call("S3") as span:
        span.annotate("k", "v")
    assert daemon.receive(expected=1, timeout=0.5) == []


def test_daemon_address_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", "tcp:10.0.0.1:2000 udp:127.0.0.2:2001")
    assert Tracer(False).daemon_address == ("127.0.0.2", 2001)
    monkeypatch.delenv("AWS_XRAY_DAEMON_ADDRESS")
    assert Tracer(False).daemon_address == ("127.0.0.1", 2000)
    with pytest.raises(ValueError, match="invalid X-Ray daemon address"):
        parse_daemon_address("nonsense")


def test_set_tracer_replaces_the_process_tracer() -> None:
    original = get_tracer()
    assert not original.enabled
    replacement = Tracer(True)
    set_tracer(replacement)
    try:
        assert get_tracer() is replacement
    finally:
        set_tracer(original)
        replacement.close()
