"""OpenTelemetry with ``server.num_fronts: 2``: every front exports its own spans, under one resource.

A real OTLP receiver gets the spans of Pings sent on 24 separate connections (so both fronts serve
them, which the answering worker pids prove); every call has its server span, and all spans carry
the same resource attributes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import eventually, no_leftover_workers_fixture
from tests.integration.test_fronts import SPREAD, grpc_pids, rr_serve
from tests.obs_otlp import otlp_receiver

pytestmark = [pytest.mark.php, pytest.mark.slow]
leftover_check = no_leftover_workers_fixture

SERVER = 2  # SPAN_KIND_SERVER in OTLP


async def test_both_fronts_export_their_server_spans_under_one_resource(tmp_path: Path) -> None:
    async with otlp_receiver() as rx:
        otel = f"""
            otel:
              client: grpc
              endpoint: {rx.endpoint}
              insecure: true
              resource: {{service_name: fronts-otel}}
        """
        async with rr_serve(tmp_path, env={"OTEL_BSP_SCHEDULE_DELAY": "100"}, extra=otel) as rr:
            fronts = rr.fronts()
            owned = [rr.workers_of(f) for f in fronts]
            answered = await grpc_pids(rr.grpc)
            assert len(fronts) == 2 and answered & owned[0] and answered & owned[1]  # both fronts served

            def pings() -> list[object]:
                return [s for s in rx.spans if s.kind == SERVER and s.name.endswith("Echo/Ping")]

            spans = await eventually(lambda: len(pings()) >= SPREAD and pings(), timeout=20)
        assert len(spans) == SPREAD  # one server span per call, from whichever front served it
        resources = {tuple(sorted(s.resource.items())) for s in rx.spans}
        assert len(resources) == 1, resources
        assert dict(next(iter(resources)))["service.name"] == "fronts-otel"
