"""rrgrpc against the real RoadRunner binary: the same ``.rr.yaml`` and PHP worker under both.

Every test here needs the reference ``rr`` (``$RR_REFERENCE_BIN`` or ``bash
scripts/install-roadrunner.sh``) and is skipped with that reason without it. Run them with::

    bash scripts/install-roadrunner.sh && .venv/bin/python -m pytest -m differential

The comparison machinery itself is proven in the normal suite by ``test_harness.py``.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from tests.differential.harness import NO_REFERENCE, OURS, collect, diff, reference_binary, rpc, serve
from tests.helpers import run_in_terminal

REFERENCE = reference_binary()
pytestmark = [
    pytest.mark.differential,
    pytest.mark.php,
    pytest.mark.timeout(180),
    pytest.mark.skipif(REFERENCE is None, reason=NO_REFERENCE),
]

#: Differences we mean (README "Differences from RoadRunner"): case → why. Anything else fails.
KNOWN_DIFFERENCES: dict[str, str] = {
    'rpc 2 informer.Workers "nosuch"': "rrgrpc answers {\"workers\": []} where RoadRunner answers null",
    "grpc unknown method": "the kit answers NOT_FOUND where roadrunner-grpc answers UNKNOWN (PROTOCOL.md)",
}


async def test_same_answers_for_the_same_config_and_worker(tmp_path: Path) -> None:
    assert REFERENCE is not None
    async with serve(REFERENCE, tmp_path / "reference") as ref:
        reference = await collect(ref)
    async with serve(OURS, tmp_path / "ours") as ours:
        answers = await collect(ours)
    unexpected = [line for line in diff(answers, reference) if line.split(":", 1)[0] not in KNOWN_DIFFERENCES]
    assert unexpected == []


async def _run(*argv: str, cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_reference_cli_drives_our_server(tmp_path: Path) -> None:
    # RoadRunner's `rr workers` and `rr reset` speak GOB over our RPC endpoint
    assert REFERENCE is not None
    async with serve(OURS, tmp_path) as ours:
        cfg = str(tmp_path / ".rr.yaml")
        code, out = await _run(*REFERENCE, "workers", "-c", cfg, "http", cwd=tmp_path)
        assert code == 0 and "http" in out, out
        async with rpc(ours) as client:
            before = {w["pid"] for w in (await client.call("informer.Workers", "http"))["workers"]}
        code, out = await _run(*REFERENCE, "reset", "-c", cfg, "http", cwd=tmp_path)
        assert code == 0, out
        async with rpc(ours) as client:
            after = {w["pid"] for w in (await client.call("informer.Workers", "http"))["workers"]}
        assert after and not after & before
        # the live view of RoadRunner's CLI on our server: it draws our worker, Ctrl-C quits it
        pid = str(next(iter(after))).encode()
        code = await run_in_terminal([*REFERENCE, "workers", "-i", "-c", cfg, "http"], tmp_path, until=pid, keys=b"\x03")
        assert code in (0, 1, 130, -signal.SIGINT)  # it quit; the status is the CLI's own
        # and an unknown plugin: both CLIs fail the same way
        theirs = await _run(*REFERENCE, "reset", "-c", cfg, "nosuch", cwd=tmp_path)
        mine = await _run(*OURS, "reset", "-c", cfg, "nosuch", cwd=tmp_path)
        assert (theirs[0] != 0) == (mine[0] != 0), (theirs, mine)


#: configs each binary must accept (True) or refuse (False) alike
CONFIGS: dict[str, str] = {
    "minimal rpc": 'version: "3"\nrpc:\n  listen: tcp://127.0.0.1:{port}\n',
    "no version": "rpc:\n  listen: tcp://127.0.0.1:{port}\n",
    "bad rpc listen": 'version: "3"\nrpc:\n  listen: nonsense\n',
}


async def _accepts(binary: tuple[str, ...], workdir: Path, text: str) -> bool:
    from tests.helpers import free_port

    workdir.mkdir(parents=True)
    (workdir / ".rr.yaml").write_text(text.format(port=free_port()))
    proc = await asyncio.create_subprocess_exec(
        *binary, "serve", "-c", str(workdir / ".rr.yaml"), cwd=workdir,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(proc.wait(), 5)  # a refused config exits at once
        return False
    except TimeoutError:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        return True


async def test_the_same_configs_are_accepted_and_refused(tmp_path: Path) -> None:
    assert REFERENCE is not None
    verdicts = {
        name: (await _accepts(REFERENCE, tmp_path / f"ref-{i}", text), await _accepts(OURS, tmp_path / f"ours-{i}", text))
        for i, (name, text) in enumerate(CONFIGS.items())
    }
    assert {n: v for n, v in verdicts.items() if v[0] != v[1]} == {}, json.dumps(verdicts)
