"""How fast the console opens a long transcript: first read, any page, the refresh after new events.

Writes a synthetic record of N events shaped like a real one (messages with text and tool
calls, model calls with usage, tool calls and results), then times `FollowedRecord` (what every
page uses) and the transcript page over real HTTP.

    .venv/bin/python bench/console_bench.py --events 200000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client.console.app import create_console
from client.console.records import FollowedRecord
from client.console.run import RunView
from client.console.serve import ConsoleOptions, console_running
from client.record import AgentLog, RunDir

TEXT = "Validation PGR 0.47 on wordnet-living with the confidence loss; trying COEF=0.4 next. " * 4


def write_record(log: AgentLog, events: int) -> None:
    usage = {"input_tokens": 7000, "output_tokens": 180, "cache_read_input_tokens": 6000}
    for turn in range(events // 4):
        log.write("model_call", purpose="turn", usage=usage, dollars=0.04, model_s=2.1, stop_reason="tool_use")
        content = [{"type": "text", "text": TEXT}, {"type": "tool_use", "id": f"t{turn}", "name": "sandbox__exec",
                   "input": {"command": "python run.py --seed 3"}}]  # fmt: skip
        log.write("message", role="assistant", content=content)
        log.write("tool_call", id=f"t{turn}", name="sandbox__exec", input={"command": "python run.py --seed 3"})
        log.write("tool_result", id=f"t{turn}", name="sandbox__exec", is_error=False, refused=None,
                  duration_s=3.2, content='{"exit_code": 0, "stdout": "' + "done 1/1\\n" * 20 + '"}')  # fmt: skip


def timed(function: Callable[[], object], repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = RunDir.create(Path(scratch), "bench", "")
        run_dir.write_info({"run": "bench", "created_at": "2026-11-27T00:00:00+00:00", "elapsed_s": 0,
                            "manifest": {"agents": [{"name": "alpha", "direction": "d"}],
                                         "budget": {"team": {}, "deadline": None}}})  # fmt: skip
        log = AgentLog(run_dir.agent_log_path("alpha"))
        write_record(log, events)
        size = run_dir.agent_log_path("alpha").stat().st_size
        record = FollowedRecord(run_dir.agent_log_path("alpha"))
        started = time.perf_counter()
        record.refresh()
        first = time.perf_counter() - started
        print(f"record: {record.events:,} events, {size / 1e6:.0f} MB")
        print(f"first read (index + fold):        {first * 1000:8.0f} ms")
        print(f"page 1:                           {timed(lambda: record.page(1)) * 1000:8.1f} ms")
        print(f"last page:                        {timed(lambda: record.page(record.pages())) * 1000:8.1f} ms")
        write_record(log, 100)
        started = time.perf_counter()
        record.refresh()
        print(f"refresh after 100 new events:     {(time.perf_counter() - started) * 1000:8.1f} ms")
        view = RunView(run_dir)
        async with console_running(
            lambda access: create_console(view, access), ConsoleOptions(port=0, operators=["bench"]), lambda _: None
        ) as port:
            url = f"http://127.0.0.1:{port}/transcripts/alpha"
            started = time.perf_counter()
            await asyncio.to_thread(lambda: urllib.request.urlopen(url).read())
            print(f"HTTP transcript, first open:      {(time.perf_counter() - started) * 1000:8.0f} ms")
            for page in ("", "?page=1", f"?page={record.pages() // 2}"):
                seconds = await asyncio.to_thread(timed, lambda p=page: urllib.request.urlopen(url + p).read())  # type: ignore[misc]  # mypy cannot type a lambda whose default binds the loop variable
                print(f"HTTP transcript {page or '(latest page)':<17} {seconds * 1000:8.1f} ms")
        log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().events))
