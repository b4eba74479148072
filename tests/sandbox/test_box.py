"""Each agent's long-lived box: its init cannot be attacked from inside, boxes are apart, and a dead one comes back."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal

import pytest

from servers.sandbox import Sandbox, SandboxConfig
from tests.sandbox.support import processes_with, wait_until_gone, with_limits

pytestmark = pytest.mark.anyio


def _init_pid(sandbox: Sandbox, agent: str) -> int:
    """The host pid of the agent's init: the child of its box's bubblewrap."""
    launcher = sandbox.boxes.host_pid(agent)
    assert launcher is not None, f"{agent} has no box"
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    if int(handle.read().rsplit(b")", 1)[1].split()[1]) == launcher:
                        return int(entry.name)
            except (OSError, ValueError, IndexError):
                continue
    raise AssertionError(f"no init under the box of {agent} (pid {launcher})")


async def test_a_command_cannot_signal_trace_or_talk_to_the_init(sandbox: Sandbox) -> None:
    await sandbox.exec("alice", "true")
    init = _init_pid(sandbox, "alice")
    attack = "\n".join(
        [
            "import ctypes, os, signal, socket",
            "for signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGSTOP, signal.SIGSEGV):",
            "    os.kill(1, signum)",
            "libc = ctypes.CDLL(None, use_errno=True)",
            "print('attach', libc.ptrace(16, 1, 0, 0), 'seize', libc.ptrace(0x4206, 1, 0, 0))",
            "for name in ('environ', 'mem', 'fd/0', 'fd/3'):",
            "    try: open(f'/proc/1/{name}', 'rb').read(1); print('OPENED', name)",
            "    except OSError as error: print('refused', name, error.errno)",
            "for name in os.listdir('/proc/1/fd'):",
            "    try: os.readlink(f'/proc/1/fd/{name}'); print('READ LINK', name)",
            "    except OSError: pass",
            "    try: socket.socket(fileno=os.open(f'/proc/1/fd/{name}', os.O_RDWR)).send(b'x'); print('SENT', name)",
            "    except OSError: pass",
            "fds = [f'/proc/self/fd/{n}' for n in os.listdir('/proc/self/fd')]",
            "mine = [os.readlink(fd) for fd in fds if os.path.exists(fd)]",
            "print('own sockets', [link for link in mine if link.startswith('socket:')])",
        ]
    )
    await sandbox.write_file("alice", "attack.py", attack)
    result = await sandbox.exec("alice", "python attack.py; kill -9 1; kill -TERM -1; echo done")
    assert result.exit_code == 0, result
    assert "attach -1 seize -1" in result.stdout, result.stdout
    assert "OPENED" not in result.stdout and "READ LINK" not in result.stdout and "SENT" not in result.stdout
    assert "own sockets []" in result.stdout
    assert _init_pid(sandbox, "alice") == init  # the same init lives on, and still serves
    assert (await sandbox.exec("alice", "echo alive")).stdout == "alive\n"


async def test_a_command_runs_with_its_limits_whatever_it_sends_the_init(sandbox: Sandbox) -> None:
    """Nothing a command can reach asks the init for a command outside the limits: its rlimits are set
    before it runs, and it holds no descriptor of the control socket."""
    result = await sandbox.exec(
        "alice", "ulimit -t -f -c; sleep 0.2; ulimit -H -t -f -c; ls -l /proc/self/fd | grep -c socket"
    )
    lines = result.stdout.split()
    assert lines[-1] == "0", result
    # CPU seconds: soft from the first instruction; hard once the init has set it, right after the spawn
    assert "3600\n" in result.stdout and "3601\n" in result.stdout, result.stdout
    assert result.stdout.count("16384\n") == 2, result.stdout  # 16 MiB files, in KiB, soft and hard


async def test_a_commands_leftovers_die_with_it_even_while_the_agent_runs_more(sandbox: Sandbox) -> None:
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    busy = asyncio.create_task(sandbox.exec("alice", "sleep 4"))
    await asyncio.sleep(0.5)
    result = await sandbox.exec(
        "alice", f"sleep 3{token} & (setsid sleep 4{token} &); nohup sleep 5{token} >/dev/null 2>&1 & echo started"
    )
    assert result.stdout == "started\n"
    if sandbox.cgroup_version is not None:  # its cgroup is emptied at once; without cgroups, when the agent idles
        assert await wait_until_gone(token, timeout_s=2) == []
    await busy
    assert await wait_until_gone(token) == []


async def test_two_agents_boxes_cannot_see_each_other(sandbox: Sandbox) -> None:
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    job = await sandbox.start_job("alice", "hold", f"sleep 3{token}")
    for _ in range(100):
        if processes_with(token):
            break
        await asyncio.sleep(0.05)
    bob = await sandbox.exec("bob", "ps -eo pid,args; ls /proc | grep -c '^[0-9]'")
    assert token not in bob.stdout
    assert int(bob.stdout.split()[-1]) <= 4  # his init, bash, ps/ls: nothing of alice's
    assert _init_pid(sandbox, "alice") != _init_pid(sandbox, "bob")
    await sandbox.cancel_job("alice", job)


async def test_a_dead_init_is_restarted_for_the_next_command(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    await sandbox.exec("alice", "true")
    running = asyncio.create_task(sandbox.exec("alice", "sleep 20"))
    await asyncio.sleep(0.5)
    old = _init_pid(sandbox, "alice")
    os.kill(old, signal.SIGKILL)  # from the host: nothing inside can do this
    interrupted = await asyncio.wait_for(running, 10)
    assert interrupted.exit_code is None and "the sandbox stopped" in (interrupted.error or ""), interrupted
    assert "restarted for your next command" in (interrupted.error or "")
    with caplog.at_level(logging.WARNING, logger="servers.sandbox.box"):
        after = await sandbox.exec("alice", "echo back")
    assert after.stdout == "back\n"
    logged = [record.message for record in caplog.records]
    assert any("box of alice died" in line and "starting a new one" in line for line in logged), logged
    assert _init_pid(sandbox, "alice") != old


async def test_an_idle_box_is_stopped(config: SandboxConfig) -> None:
    service = await Sandbox.open(with_limits(config, box_idle_s=0.2))
    try:
        await service.exec("alice", "true")
        for _ in range(100):
            if service.boxes.host_pid("alice") is None:
                break
            await asyncio.sleep(0.05)
        assert service.boxes.host_pid("alice") is None
        assert (await service.exec("alice", "echo again")).stdout == "again\n"
    finally:
        await service.close()


async def test_a_removed_workspace_takes_its_box(sandbox: Sandbox) -> None:
    await sandbox.exec("alice", "echo hi > kept.txt")
    assert sandbox.boxes.host_pid("alice") is not None
    await sandbox.remove_workspace("alice")
    assert sandbox.boxes.host_pid("alice") is None
    result = await sandbox.exec("alice", "ls; echo fresh > new.txt; cat new.txt")
    assert result.stdout == "fresh\n", result  # a new box over the new, empty workspace
