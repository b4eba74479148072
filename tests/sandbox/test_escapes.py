"""A hostile agent attacks the sandbox; every attempt must be contained, with a clear error where one applies."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from pathlib import Path

import pytest

from servers.sandbox import Limit, Sandbox, SandboxConfig
from servers.sandbox.errors import PathError
from tests.sandbox.support import HIDDEN_LABELS, processes_with, wait_until_gone

pytestmark = pytest.mark.anyio


async def test_cannot_see_another_agents_workspace(sandbox: Sandbox, config: SandboxConfig) -> None:
    await sandbox.write_file("bob", "secret.txt", "bob-private-9d1e")
    bob_dir = config.root / "workspaces" / "bob"
    result = await sandbox.exec("alice", f"cat {bob_dir}/secret.txt; ls -a /workspace/..; ls {config.root}; true")
    assert "bob-private-9d1e" not in result.stdout  # the whole-filesystem grep below looks for it too
    assert "No such file or directory" in result.stderr
    for path in ("../bob/secret.txt", f"{bob_dir}/secret.txt"):
        with pytest.raises(PathError):
            await sandbox.read_file("alice", path)


async def test_cannot_read_data_dir_or_task_labels(sandbox: Sandbox, config: SandboxConfig, project: Path) -> None:
    targets = [
        config.data_dir / "pgr" / "labels.csv",
        project / "servers/pgr/tasks/demo/labels.jsonl",
        config.root / "jobs.sqlite",
    ]
    result = await sandbox.exec(
        "alice", "; ".join(f"cat {target}" for target in targets) + f"; ls {config.data_dir} {project}"
    )
    assert result.stdout == ""
    assert result.stderr.count("No such file or directory") == len(targets) + 2


async def test_no_label_source_anywhere_on_the_visible_filesystem(sandbox: Sandbox) -> None:
    """grep the whole visible tree (text files; labels are text) for the planted labels and another agent's
    file, and look for label files and WordNet by name. A background job: the scan reads every file the
    box can see (the virtual environment, Chromium), 140 s alone and over exec's 240 s in a busy suite."""
    await sandbox.write_file("bob", "secret.txt", "bob-private-9d1e")
    patterns = " ".join(f"-e {label}" for label in (*HIDDEN_LABELS, "bob-private-9d1e"))
    job = await sandbox.start_job(
        "alice",
        "scan",
        f"grep -rIlsF {patterns} / --exclude-dir=proc; echo grep-done; "
        "find / -path /proc -prune -o \\( -name labels.jsonl -o -name labels.csv -o -name data.noun "
        "-o -name index.sense -o -name words \\) -print 2>/dev/null; "
        "ls -d /usr/share/wordnet /usr/share/dict /usr/local /usr/src /work/main/servers 2>&1",
    )
    info = await sandbox.wait_job("alice", job, timeout=1800)
    assert info.state.value in ("succeeded", "failed") and info.error is None, info  # ls fails: nothing to list
    log = await sandbox.job_logs("alice", job, offset=0, limit=1_048_576)
    assert log.complete, log
    lines = log.text.splitlines()
    assert lines[0] == "grep-done", f"planted labels visible in: {lines[: lines.index('grep-done')]}"
    found = [line for line in lines[1:] if line.startswith("/")]
    assert found == [], f"label-like files visible: {found}"
    assert log.text.count("No such file or directory") == 5


async def test_no_network_not_even_loopback_servers(sandbox: Sandbox) -> None:
    served: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", 0)  # noqa: S104 a box must reach none of the host's addresses
    port = server.sockets[0].getsockname()[1]
    host_ips = {"127.0.0.1"} | _host_ipv4s()
    script = "\n".join(
        [
            "import socket",
            f"for ip in {sorted(host_ips)!r}:",
            "    s = socket.socket(); s.settimeout(3)",
            f"    try: s.connect((ip, {port})); s.sendall(b'leak'); print('CONNECTED', ip)",
            "    except OSError as e: print('blocked', ip, e)",
            "try: socket.getaddrinfo('pypi.org', 443); print('DNS-RESOLVED')",
            "except OSError as e: print('no dns', e)",
            "print(sorted(line.split(':')[0].strip() for line in open('/proc/net/dev').readlines()[2:]))",
        ]
    )
    async with server:
        await sandbox.write_file("alice", "net.py", script)
        result = await sandbox.exec("alice", "python net.py")
    assert result.exit_code == 0, result
    assert "CONNECTED" not in result.stdout and "DNS-RESOLVED" not in result.stdout, result.stdout
    assert result.stdout.count("blocked") == len(host_ips)
    assert "['lo']" in result.stdout  # no interface but the sandbox's own loopback
    assert served == []


def _host_ipv4s() -> set[str]:
    """The host's own non-loopback IPv4 addresses (also servers the sandbox must not reach)."""
    addresses = set()
    with open("/proc/net/fib_trie") as handle:
        lines = handle.read().splitlines()
    for previous, line in itertools.pairwise(lines):
        if "/32 host LOCAL" in line:
            address = previous.split()[-1]
            if not address.startswith("127."):
                addresses.add(address)
    return addresses


async def test_server_environment_never_enters(config: SandboxConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-ant-fake-" + secrets.token_hex(8)
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("AAR_TOKEN_SECRET", key)
    service = await Sandbox.open(config)
    try:
        result = await service.exec(
            "alice", "env; cat /proc/*/environ /proc/*/cmdline; echo; cat /proc/self/status | grep -i cap"
        )
    finally:
        await service.close()
    assert key not in result.stdout and "ANTHROPIC" not in result.stdout
    assert str(config.data_dir) not in result.stdout  # bwrap's arguments (host paths) are not in /proc/1/cmdline
    assert "CapEff:\t0000000000000000" in result.stdout


async def test_writes_cannot_leave_the_workspace(sandbox: Sandbox, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("original")
    for path in ("../escape.txt", "a/../../escape.txt", "/etc/escape.txt", str(outside / "victim.txt")):
        with pytest.raises(PathError):
            await sandbox.write_file("alice", path, "pwned")
    # An earlier command plants links pointing out of the workspace; the file tools must not follow them.
    planted = await sandbox.exec(
        "alice",
        f"ln -s {outside} out && ln -s / root && ln -s {outside}/victim.txt victim && ln -s .. up "
        "&& mkfifo fifo && echo ok",
    )
    assert planted.stdout.strip() == "ok", planted
    for path in ("out/victim.txt", "out/new.txt", "root/etc/passwd", "up/escape.txt", "up/alice/x"):
        with pytest.raises(PathError, match="symbolic link"):
            await sandbox.write_file("alice", path, "pwned")
        with pytest.raises((PathError, FileNotFoundError)):
            await sandbox.read_file("alice", path)
    with pytest.raises(PathError, match="symbolic link"):
        await sandbox.read_file("alice", "victim")
    with pytest.raises(PathError, match="not a regular file"):
        await asyncio.wait_for(sandbox.read_file("alice", "fifo"), 5)  # must not block on a planted FIFO
    with pytest.raises(PathError, match="symbolic link"):
        await sandbox.list_files("alice", "out")
    with pytest.raises(PathError, match="symbolic link"):
        await sandbox.export_files("alice", ["out"])
    await sandbox.write_file("alice", "victim", "replaced")  # replaces the link itself, never writes through it
    assert (outside / "victim.txt").read_text() == "original"
    assert sorted(os.listdir(outside)) == ["victim.txt"]
    # Inside, everything but /workspace and /tmp is read-only.
    result = await sandbox.exec(
        "alice",
        "for p in /escape /usr/escape /etc/passwd /root/escape /opt/aar/api/x; do echo x > $p; done; "
        "ln /usr/bin/bash hard",
    )
    assert result.stderr.count("Read-only file system") + result.stderr.count("Permission denied") >= 5, result.stderr
    assert "hard" not in [entry.path for entry in (await sandbox.list_files("alice")).entries]


async def test_fork_bomb_is_stopped(sandbox: Sandbox) -> None:
    if sandbox.cgroup_version is None:
        pytest.skip("no writable cgroups here: the process limit relies on pids.max")
    token = f"bomb{secrets.token_hex(4)}"
    result = await sandbox.exec("alice", f"{token}() {{ {token} | {token} & }}; {token}; sleep 30", timeout=20)
    assert result.limit_hit is Limit.PROCESSES, result
    assert "process limit 64" in (result.error or "")
    assert result.duration_s < 10
    assert await wait_until_gone(token) == []
    assert (await sandbox.exec("alice", "echo alive")).stdout == "alive\n"


async def test_memory_bomb_is_stopped(sandbox: Sandbox) -> None:
    result = await sandbox.exec("alice", "python -c 'x = bytearray(1024 * 1024 * 1024); print(len(x))'")
    assert result.exit_code != 0 and "1073741824" not in result.stdout
    if sandbox.cgroup_version is None:
        assert "MemoryError" in result.stderr  # RLIMIT_AS fallback: the allocation fails
    else:
        assert result.limit_hit is Limit.MEMORY, result
        assert result.error == "killed: memory limit 256 MiB exceeded"


async def test_filling_the_disk_is_stopped(sandbox: Sandbox, config: SandboxConfig) -> None:
    one_file = await sandbox.exec("alice", "head -c 20M /dev/zero > big.bin")
    assert one_file.limit_hit is Limit.FILE_SIZE, one_file
    assert one_file.error == "killed: file size limit 16 MiB per file exceeded"
    await sandbox.exec("alice", "rm -f big.bin")
    many = await sandbox.exec("alice", "for i in $(seq 100); do head -c 10M /dev/zero > part$i.bin; done; sleep 5")
    assert many.limit_hit is Limit.WORKSPACE_SIZE, many
    assert "disk quota 48 MiB exceeded" in (many.error or "")
    with pytest.raises(Exception, match="disk quota of 48 MiB"):
        await sandbox.write_file("alice", "more.txt", "x" * 1024)
    await sandbox.exec("alice", "rm -f part*.bin")
    await sandbox.write_file("alice", "more.txt", "fits again")
    files = await sandbox.exec("alice", "mkdir d && cd d && for i in $(seq 3000); do : > f$i; done; sleep 5")
    assert files.limit_hit is Limit.WORKSPACE_FILES, files
    await sandbox.exec("alice", "rm -rf d")
    tmp = await sandbox.exec("alice", "for i in 1 2 3 4; do head -c 6M /dev/zero > /tmp/fill$i; done; echo status=$?")
    assert "No space left on device" in tmp.stderr and "status=1" in tmp.stdout, tmp
    assert tmp.limit_hit is None


async def test_output_flood_is_capped(sandbox: Sandbox) -> None:
    finite = await sandbox.exec("alice", "head -c 50M /dev/zero | tr '\\0' x; echo done >&2")
    assert finite.exit_code == 0 and finite.stdout_truncated and not finite.stderr_truncated
    assert finite.stderr == "done\n" and len(finite.stdout) < 64 * 1024 + 400
    endless = await sandbox.exec("alice", "yes flood", timeout=2)
    assert endless.limit_hit is Limit.TIMEOUT and (endless.error or "").startswith("killed: wall-clock limit 2 s")
    assert endless.stdout_truncated and len(endless.stdout) < 64 * 1024 + 400
    job = await sandbox.start_job("alice", "flood", "yes flood | head -c 5M")
    info = await sandbox.wait_job("alice", job, timeout=30)
    assert info.state.value == "succeeded", info
    assert Path(info.log_path).stat().st_size < 256 * 1024 + 200
    logs = await sandbox.job_logs("alice", job)
    assert logs.text.endswith("further output discarded]\n")


async def test_job_ignoring_sigterm_and_its_daemons_are_killed(sandbox: Sandbox) -> None:
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    command = (
        f"trap '' TERM; (setsid nohup sleep 1{token} >/dev/null 2>&1 &); "
        "python -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f'print("up", flush=True); time.sleep(2{token})\''
    )
    job = await sandbox.start_job("alice", "stubborn", command)
    for _ in range(200):  # bounded wait for the job to come up
        if "up" in (await sandbox.job_logs("alice", job)).text:
            break
        await asyncio.sleep(0.05)
    assert len(processes_with(token)) >= 2
    info = await sandbox.cancel_job("alice", job)
    assert info.state.value == "cancelled" and info.error == "cancelled"
    assert await wait_until_gone(token) == []


async def test_processes_do_not_outlive_their_command(sandbox: Sandbox) -> None:
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    result = await sandbox.exec(
        "alice", f"sleep 3{token} & (setsid sleep 4{token} &); nohup sleep 5{token} >/dev/null 2>&1 & echo started"
    )
    assert result.stdout == "started\n" and result.duration_s < 5
    assert await wait_until_gone(token) == []


async def test_experiment_with_torch_and_the_method_api(tmp_path: Path) -> None:
    """A real experiment runs; the real method API imports; the real project (task packs) stays invisible."""
    from servers.sandbox.config import PROJECT_ROOT

    service = await Sandbox.open(SandboxConfig(data_dir=tmp_path / "data"))
    script = f"""
import importlib, os, torch
torch.manual_seed(0)
x = torch.randn(256, 4); y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
model = torch.nn.Linear(4, 1); opt = torch.optim.SGD(model.parameters(), lr=0.1)
first = None
for _ in range(100):
    loss = torch.nn.functional.mse_loss(model(x).squeeze(-1), y); opt.zero_grad(); loss.backward(); opt.step()
    first = first or loss.item()
print("trained", first > 10 * loss.item())
print("api", importlib.util.find_spec("servers.w2s.api") is not None)
if os.path.exists("/opt/aar/api/servers/w2s/api.py"):
    import servers.w2s.api, servers.w2s.lora  # lora imports peft and what peft imports
    print("api imported")
for name in ("servers.pgr", "servers.kit", "servers.sandbox", "servers.w2s.tasks", "servers.w2s.testbed"):
    try:
        importlib.import_module(name); print("IMPORTED", name)
    except ImportError:
        print("blocked", name)
print("project", sorted(os.listdir("{PROJECT_ROOT}")))
print("tasks", os.path.exists("{PROJECT_ROOT}/servers/pgr/tasks"))
"""
    try:
        await service.write_file("alice", "exp.py", script)
        result = await service.exec("alice", "python exp.py", timeout=120)
    finally:
        await service.close()
    assert result.exit_code == 0, result
    assert "trained True" in result.stdout
    if (PROJECT_ROOT / "servers/w2s/api.py").exists():
        assert "api imported" in result.stdout
    assert "IMPORTED" not in result.stdout and result.stdout.count("blocked") == 5
    assert "project ['.venv']" in result.stdout or "project []" in result.stdout
    assert "tasks False" in result.stdout


async def test_fake_project_api_is_importable_but_nothing_else(sandbox: Sandbox) -> None:
    result = await sandbox.exec(
        "alice",
        "python -c 'from servers.w2s.methods.mine import NAME, VERSION; print(NAME, VERSION)'; "
        "python -c 'import servers.pgr' 2>&1 | tail -1; ls /opt/aar/api/servers/w2s",
    )
    assert "method-ok api-ok" in result.stdout
    assert "No module named 'servers.pgr'" in result.stdout
    assert result.stdout.splitlines()[-2:] == ["api.py", "methods"]


async def test_a_workspace_over_its_limit_still_lets_a_slow_cleanup_run(sandbox: Sandbox) -> None:
    filled = await sandbox.exec("alice", "for i in $(seq 100); do head -c 10M /dev/zero > part$i.bin; done; sleep 5")
    assert filled.limit_hit is Limit.WORKSPACE_SIZE, filled
    cleanup = await sandbox.exec("alice", "sleep 2.5; rm -f part*.bin; echo cleaned")
    assert cleanup.limit_hit is None and cleanup.stdout == "cleaned\n", cleanup
    await sandbox.write_file("alice", "after.txt", "fits again")
