"""The local Prometheus endpoint: a collector that reads the agent's own numbers at scrape time.

Nothing is counted per event for it: each scrape asks the event loop for the same figures the
§8 status message carries (plus the link, publisher, outbox and supervisor counters) and turns
them into metric families. prometheus-client's own HTTP server serves it from its thread; the
collector hands the reading over to the event loop, so no agent state is touched off-loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.config.telemetry import MetricsConfig
from agent.errors import EXPECTED_ERRORS

log = logging.getLogger(__name__)

Sample = Mapping[str, Any]
READ_TIMEOUT_S = 5.0
SCRAPE_ERRORS: tuple[type[Exception], ...] = (
    TimeoutError,
    concurrent.futures.CancelledError,
    *EXPECTED_ERRORS,
)


class AgentCollector(Collector):
    """Turns one reading of the agent (`read()`, run on `loop`) into metric families."""

    def __init__(
        self, read: Callable[[], Awaitable[Sample]], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._read = read
        self._loop = loop

    def collect(self) -> Iterator[Metric]:
        """Called by prometheus-client in its own thread for every scrape."""
        fut = asyncio.run_coroutine_threadsafe(_call(self._read), self._loop)
        try:
            s = fut.result(READ_TIMEOUT_S)
        except SCRAPE_ERRORS as exc:
            # A scrape answers even when the agent cannot (busy loop, store error): up = 0.
            fut.cancel()
            log.warning("metrics scrape could not read the agent: %s", exc)
            up = GaugeMetricFamily("edge_agent_up", "1 when the agent answered this scrape")
            up.add_metric([], 0)
            yield up
            return
        yield from families(s)


async def _call(read: Callable[[], Awaitable[Sample]]) -> Sample:
    return await read()


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc)
    if value is not None:
        g.add_metric([], float(value))
    return g


def families(s: Sample) -> Iterator[Metric]:
    """The metric families of one agent reading (pure: tests feed it dicts)."""
    st = s["status"]
    yield _gauge("edge_agent_up", "1 when the agent answered this scrape", 1)
    info = GaugeMetricFamily(
        "edge_agent_info", "device, role, mode", labels=["dev", "role", "mode"]
    )
    info.add_metric([s["dev"], s["role"], st["mode"]], 1)
    yield info
    yield _gauge("edge_uptime_seconds", "seconds since the agent started", st["uptime_s"])
    box = st["outbox"]
    yield _gauge("edge_outbox_depth", "messages waiting in the outbox", box["depth"])
    yield _gauge("edge_outbox_bytes", "bytes waiting in the outbox", box["bytes"])
    oldest = box.get("oldest_ms")
    age = max(0.0, (s["now_ms"] - oldest) / 1000) if oldest is not None else 0.0
    yield _gauge("edge_outbox_oldest_age_seconds", "age of the oldest waiting message", age)
    for name, doc, per in (
        ("edge_delivered", "messages acknowledged by the broker, per priority", s["delivered"]),
        ("edge_evicted", "messages evicted from a full outbox, per priority", s["evicted"]),
    ):
        c = CounterMetricFamily(name, doc, labels=["priority"])
        for prio in sorted(per):
            c.add_metric([str(prio)], per[prio])
        yield c
    yield _gauge("edge_link_up", "1 while a broker session is up", 1 if s["link_up"] else 0)
    c = CounterMetricFamily("edge_link_connects", "broker sessions established")
    c.add_metric([], s["connects"])
    yield c
    gps = st.get("gps") or {}
    fix = gps.get("fix")
    yield _gauge("edge_gps_fix", "1 with a usable GPS fix", 1 if fix not in (None, "none") else 0)
    yield _gauge("edge_gps_satellites", "satellites in the newest fix", gps.get("sats"))
    patrol = st.get("patrol")
    if patrol is not None:
        c = CounterMetricFamily("edge_checkins", "check-ins recorded")
        c.add_metric([], patrol.get("checkins", 0))
        yield c
    if "detections" in st:
        c = CounterMetricFamily("edge_detections", "detections begun, per rule", labels=["rule"])
        for rule, n in sorted(st["detections"].items()):
            c.add_metric([rule], n)
        yield c
    cams = st.get("cameras") or {}
    fps = GaugeMetricFamily("edge_camera_fps", "analysed frames per second", labels=["camera"])
    up = GaugeMetricFamily("edge_camera_running", "1 while the camera streams", labels=["camera"])
    for cam_id, cam in sorted(cams.items()):
        fps.add_metric([cam_id], cam.get("fps", 0.0))
        up.add_metric([cam_id], 1 if cam.get("state") == "running" else 0)
    yield fps
    yield up
    loops = st.get("loops") or {}
    c = CounterMetricFamily("edge_task_restarts", "supervised loop restarts since start")
    c.add_metric([], loops.get("restarts", 0))
    yield c
    deg = GaugeMetricFamily("edge_degraded", "1 per optional part not running", labels=["part"])
    for part in sorted(st.get("degraded") or {}):
        deg.add_metric([part], 1)
    yield deg


class MetricsEndpoint:
    """`async with` serves the collector on cfg.host:cfg.port until the agent stops."""

    def __init__(self, cfg: MetricsConfig, read: Callable[[], Awaitable[Sample]]) -> None:
        self._cfg = cfg
        self._read = read
        self._server: Any = None
        self.port: int | None = None

    async def __aenter__(self) -> MetricsEndpoint:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(AgentCollector(self._read, asyncio.get_running_loop()))
        server, thread = start_http_server(self._cfg.port, self._cfg.host, registry=registry)
        self._server, self._thread = server, thread
        self.port = int(server.server_port)
        log.info("metrics on http://%s:%d/metrics", self._cfg.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            # shutdown() waits for the serve loop; a scrape in flight waits for the event loop.
            await asyncio.to_thread(self._server.shutdown)
            self._server.server_close()
            self._server = None


async def read_agent(agent: Any) -> Sample:
    """One reading of a running agent (`agent.runtime.agent.Agent`) for the collector."""
    status = await agent.status_body()
    return {
        "dev": agent.cfg.device.id,
        "role": agent.cfg.device.role,
        "now_ms": agent.clock.stamp().ts,
        "status": status,
        "delivered": dict(agent.publisher.acked_by_priority),
        "evicted": dict(agent.outbox.evicted_by_priority),
        "link_up": agent.link.session is not None,
        "connects": agent.link.connects,
    }
