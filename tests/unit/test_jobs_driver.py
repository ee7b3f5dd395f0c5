"""The driver contract: pipeline accessors coerce jobs.Declare strings; unknown drivers fail in one line."""

from __future__ import annotations

import pytest

from rrgrpc.errors import ConfigError
from rrgrpc.jobs.driver import DEFAULT_PRIORITY, Pipeline, driver_factory


def test_pipeline_accessors_coerce_declare_strings() -> None:
    pipe = Pipeline("p", "memory", {"priority": "3", "prefetch": "0", "durable": "true", "queue": 5})
    assert (pipe.priority, pipe.prefetch, pipe.get_bool("durable"), pipe.get_str("queue")) == (3, 1, True, "5")
    assert Pipeline("q", "memory").priority == DEFAULT_PRIORITY


def test_bad_integer_names_the_key_and_file() -> None:
    pipe = Pipeline("p", "memory", {"priority": "high"}, source="/app/.rr.yaml")
    with pytest.raises(ConfigError) as err:
        _ = pipe.priority
    assert str(err.value) == "/app/.rr.yaml: jobs.pipelines.p.config.priority: expected an integer, got 'high'"


@pytest.mark.parametrize(("driver", "why"), [("sqs", " (a RoadRunner driver rrgrpc does not implement)"), ("memroy", "")])
def test_unsupported_driver_is_one_line_naming_pipeline_and_file(driver: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        driver_factory(Pipeline("emails", driver, source="/app/.rr.yaml"))
    assert str(err.value).startswith(
        f"/app/.rr.yaml: jobs.pipelines.emails.driver: driver {driver!r} is not supported{why}; supported: memory"
    )
