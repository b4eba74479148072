"""AAR Lab's forum beside the published study's own server, under the same load, in one run.

The study's harness (its public source: github.com/safety-research/automated-w2s-research, readable
through forks) serves its findings board from a Flask/SQLite app. This bench never copies that
code: pass a checkout of it with `--study-repo` and a Python environment with its server's
packages (flask, flask-sqlalchemy, flask-cors, gunicorn, requests, boto3) with `--study-bin`. The
app is copied into a scratch directory (its database lives beside its module) and served with
`gunicorn -w 2` on loopback, as its authors ran it; AAR Lab's forum runs as
`aar serve forum --http` on loopback with one bearer token and one MCP session per agent.

Both are seeded with the same 10,000 posts of about 500 characters (bench/servers_bench.py's
Zipf-like vocabulary), then measured with `wrk -t1 -c9 --latency` (Debian's `wrk`): a Lua script
per endpoint; for MCP it sends raw JSON-RPC `tools/call` with `mcp-session-id`, rotating over
nine sessions opened right before each measurement. Rounds interleave the two servers
(A, B, A, B). Catching up is the study's full dump (`GET /api/findings/all`) beside the forum's
`feed` of the 100 newest posts, timed from Python.

    .venv/bin/python bench/anchor_bench.py --study-repo /tmp/study --study-bin /tmp/studyvenv/bin
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers_bench import WORDS, seed_forum, words
from bench.wire_bench import PROTOCOL_VERSION, Connection, Session, create_tokens, open_sessions
from tests.support import AAR, free_port, server_env

COMMON_WORD = WORDS[0]
RARE_WORD = WORDS[5_000]
AGENTS = 9

# One Lua script drives every measurement: it rotates over the request lines it is given and
# counts answers that are not a success (HTTP status, or an MCP result with isError).
LUA = r"""
local requests = {}
local next_request = 0
failures = 0  -- global: done() reads it through thread:get
local threads = {}

function setup(thread) table.insert(threads, thread) end

function init(args)
  for line in io.lines(os.getenv("ANCHOR_REQUESTS")) do
    local headers = {}
    local parts = {}
    for part in string.gmatch(line, "[^\t]+") do table.insert(parts, part) end
    for i = 3, #parts - 1 do
      local name, value = string.match(parts[i], "^([^:]+):%s*(.*)$")
      headers[name] = value
    end
    table.insert(requests, wrk.format(parts[1], parts[2], headers, parts[#parts]))
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"isError":true', 1, true) or string.find(body, '"error":', 1, true) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("failures") end
  io.write(string.format("FAILURES %d\n", total))
end
"""


def request_lines(method: str, path: str, headers: dict[str, str], bodies: list[str]) -> str:
    """The Lua script's input: one tab-separated request per line (method, path, headers, body)."""
    head = "\t".join(f"{name}: {value}" for name, value in headers.items())
    return "".join(f"{method}\t{path}\t{head}\t{body}\n" for body in bodies)


def mcp_lines(sessions: list[Session], tool: str, arguments: list[dict[str, Any]]) -> str:
    """`tools/call` requests, one per argument set, rotating over the agents' sessions."""
    lines = []
    for number, args in enumerate(arguments):
        session = sessions[number % len(sessions)]
        body = json.dumps({"jsonrpc": "2.0", "id": number + 1, "method": "tools/call",
                           "params": {"name": tool, "arguments": args}})  # fmt: skip
        lines.append(request_lines("POST", "/forum/mcp", session.headers(), [body]))
    return "".join(lines)


def wrk(port: int, lines: str, seconds: int, scratch: Path) -> dict[str, float]:
    """Run wrk with nine connections; calls/s, p50 and p99 in ms, and failed answers."""
    script = scratch / "anchor.lua"
    script.write_text(LUA)
    requests_file = scratch / "requests.tsv"
    requests_file.write_text(lines)
    completed = subprocess.run(
        ["wrk", "-t1", f"-c{AGENTS}", f"-d{seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
        env={**os.environ, "ANCHOR_REQUESTS": str(requests_file)},
        capture_output=True, text=True,
    )  # fmt: skip
    out = completed.stdout
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {out[-500:]} {completed.stderr[-500:]}")

    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "failures": int(re.search(r"FAILURES (\d+)", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
    }


def wait_for(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError as error:
            if getattr(error, "code", None):  # an HTTP error status: the server answers
                return
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not answer within 60 s")


def post_json(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST JSON; once again after a reset (a gunicorn worker of the study's app can die at start)."""
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"content-type": "application/json"})
    for attempt in range(2):
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                result: dict[str, Any] = json.loads(answer.read())
                return result
        except ConnectionResetError:
            if attempt:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


class StudyServer:
    """The study's Flask app, copied from `repo` into `scratch` and served by gunicorn with two workers."""

    def __init__(self, repo: Path, bin_dir: Path, scratch: Path) -> None:
        self.root = scratch / "study"
        shutil.copytree(repo / "w2s_research", self.root / "w2s_research", ignore=shutil.ignore_patterns("*.db"))
        for package in ("web_ui", "web_ui/backend"):
            (self.root / "w2s_research" / package / "__init__.py").touch()
        self.bin_dir = bin_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.workspace = scratch / "study-workspace"
        self.workspace.mkdir()
        self.log = scratch / "study.log"

    def start(self) -> StudyServer:
        env = {**os.environ, "WORKSPACE_DIR": str(self.workspace), "PATH": f"{self.bin_dir}:{os.environ['PATH']}"}
        # The app creates its tables when imported; two workers doing it at once can both try, and the
        # loser's failed boot shuts gunicorn down. Importing it once first leaves them nothing to race for.
        create = [str(self.bin_dir / "python"), "-c", "import w2s_research.web_ui.backend.app"]
        subprocess.run(create, cwd=self.root, env=env, check=True, stdout=subprocess.DEVNULL, stderr=self.log.open("w"))
        self.process = subprocess.Popen(
            [str(self.bin_dir / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{self.port}",
             "w2s_research.web_ui.backend.app:app"],
            cwd=self.root, env=env, stdout=subprocess.DEVNULL, stderr=self.log.open("ab"),
        )  # fmt: skip
        wait_for(f"http://127.0.0.1:{self.port}/api/findings/all", self.process, "the study's server")
        return self

    def seed(self, posts: int) -> None:
        """The same posts as the forum's seed, through the study's own share endpoint."""
        for number in range(posts):
            try:
                post_json(self.url("/api/findings/share"), {"title": words(-number, 6), "summary": words(number, 60)})
            except OSError:
                tail = self.log.read_text(errors="replace").splitlines()[-20:]
                print(f"the study's server failed at post {number}; its log ends:", *tail, sep="\n", file=sys.stderr)
                raise

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)


class Forum:
    """`aar serve forum --http` with one token per agent; per-agent write limits lifted for throughput."""

    def __init__(self, scratch: Path) -> None:
        self.data_dir = scratch / "aar"
        self.port = free_port()
        self.tokens: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None

    async def prepare(self, posts: int) -> None:
        await seed_forum(self.data_dir, posts)
        self.tokens = await create_tokens(self.data_dir, AGENTS)

    def start(self) -> Forum:
        limits = {"AAR_FORUM_POSTS_PER_MINUTE": str(10**9), "AAR_FORUM_POST_BYTES_PER_HOUR": str(10**12)}
        self.process = subprocess.Popen(
            [AAR, "serve", "forum", "--http", "--port", str(self.port)],
            env={**server_env(self.data_dir), **limits},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(f"http://127.0.0.1:{self.port}/healthz", self.process, "aar serve forum")
        return self

    def sessions(self) -> list[Session]:
        return asyncio.run(open_sessions(self.port, "forum", self.tokens, AGENTS))

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)


def study_loads(study: StudyServer) -> dict[str, str]:
    json_headers = {"content-type": "application/json"}
    posts = [json.dumps({"title": f"anchor {n}", "summary": "a short finding " * 30}) for n in range(1000)]
    return {
        "post": request_lines("POST", "/api/findings/share", json_headers, posts),
        "search, common word": request_lines(
            "POST", "/api/findings/search", json_headers, [json.dumps({"query": COMMON_WORD, "limit": 20})]
        ),
        "search, rare word": request_lines(
            "POST", "/api/findings/search", json_headers, [json.dumps({"query": RARE_WORD, "limit": 20})]
        ),
    }


def forum_loads(sessions: list[Session]) -> dict[str, str]:
    """Each load has 1,000 requests with their own ids, so no id is reused while it may be in flight:
    with nine lines, one per agent, two connections sent the same session's request id at once
    and the server answered one of them 500 ("Session terminated before the request completed")."""
    posts = [{"title": f"anchor {n}", "body": "a short finding " * 30, "kind": "note"} for n in range(1000)]
    return {
        "post": mcp_lines(sessions, "post", posts),
        "search, common word": mcp_lines(sessions, "search", [{"query": COMMON_WORD, "limit": 20}] * 1000),
        "search, rare word": mcp_lines(sessions, "search", [{"query": RARE_WORD, "limit": 20}] * 1000),
    }


def catch_up(study: StudyServer, forum: Forum) -> dict[str, dict[str, float]]:
    """The study's full dump beside the forum's feed of the 100 newest posts (median of five)."""
    dumps, feeds = [], []
    for _ in range(5):
        start = time.perf_counter()
        with urllib.request.urlopen(study.url("/api/findings/all"), timeout=120) as answer:
            size = len(answer.read())
        dumps.append((time.perf_counter() - start, size))
    session = Session("forum", forum.tokens[0])

    async def feed() -> None:
        connection = Connection(forum.port)
        await session.open(connection)
        with sqlite3.connect(f"file:{forum.data_dir / 'forum.sqlite'}?mode=ro", uri=True) as database:
            last = database.execute("SELECT max(id) FROM posts").fetchone()[0]
        for _ in range(5):
            start = time.perf_counter()
            status, _, payload = await connection.post(
                "/forum/mcp", session.headers(),
                json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                            "params": {"name": "feed", "arguments": {"since": last - 100, "limit": 100}}}).encode(),
            )  # fmt: skip
            assert status == 200, payload[:200]
            feeds.append((time.perf_counter() - start, len(payload)))
        connection.close()

    asyncio.run(feed())
    return {
        "study: full dump": {"ms": 1000 * statistics.median(t for t, _ in dumps), "bytes": dumps[0][1]},
        "forum: feed of 100 new posts": {"ms": 1000 * statistics.median(t for t, _ in feeds), "bytes": feeds[0][1]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study-repo", type=Path, required=True, help="A checkout of the study's harness.")
    parser.add_argument("--study-bin", type=Path, required=True, help="bin/ of a venv with gunicorn and flask.")
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="A, B rounds per endpoint (interleaved).")
    parser.add_argument("--json", type=Path, default=Path("bench/results/anchor.json"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aar-anchor-") as name:
        scratch = Path(name)
        study = StudyServer(args.study_repo, args.study_bin, scratch).start()
        forum = Forum(scratch)
        try:
            print(f"seeding both with {args.posts} posts", file=sys.stderr)
            study.seed(args.posts)
            asyncio.run(forum.prepare(args.posts))
            forum.start()
            study_requests = study_loads(study)
            for label in study_requests:
                for round_number in range(args.rounds):
                    for server in ("study", "aar"):
                        if server == "study":
                            result = wrk(study.port, study_requests[label], args.seconds, scratch)
                        else:
                            result = wrk(forum.port, forum_loads(forum.sessions())[label], args.seconds, scratch)
                        rows.append({"endpoint": label, "server": server, "round": round_number, **result})
                        print(f"{label:22} {server:5} {result['per_second']:8.0f}/s"
                              f"  p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms"
                              f"  failures {result['failures']}", file=sys.stderr)  # fmt: skip
            catching_up = catch_up(study, forum)
            for label, figures in catching_up.items():
                print(f"{label:30} {figures['ms']:8.1f} ms  {figures['bytes'] / 1024:9.0f} KiB", file=sys.stderr)
        finally:
            forum.stop()
            study.stop()
    load = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "catch_up": catching_up, "load": load, "posts": args.posts,
                                     "protocol": PROTOCOL_VERSION}, indent=2))  # fmt: skip
    print(f"load average {load[0]:.1f}; wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
