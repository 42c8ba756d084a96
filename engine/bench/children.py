"""The parent's side of the benchmark's child processes: their environment, the handle on a
serving child, and the peak RSS of a finished one. Torch-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from bvae_tui.engine.train.process import MALLOC_ENV, PLAIN_ENV, worker_env


def child_env(fast: bool) -> dict[str, str]:
    """Environment of a child: the fast side gets the worker's; the baseline the plain allocator
    (the allocator setting is per process, so each side runs in its own)."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    env.pop(PLAIN_ENV, None)
    if fast:
        env.update(worker_env())
    else:
        env[PLAIN_ENV] = "1"
    return env


class Child:
    """The parent's handle on one side's child process (bvae_tui.engine.bench.sides)."""

    def __init__(self, side: str, device: str, dataset: str, data_dir: str | None,
                 baseline_images: int):
        cmd = [sys.executable, "-m", "bvae_tui.engine.bench.sides", side, "--device", device,
               "--dataset", dataset, "--baseline-images", str(baseline_images)]
        if data_dir:
            cmd += ["--data-dir", str(data_dir)]
        self.side = side
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env=child_env(fast=side == "fast"))
        self.n = 0
        self.info: dict[str, Any] = {}

    def wait_ready(self) -> dict[str, Any]:
        """Block until the child has loaded its data (both children start side by side)."""
        self.info = self._read()
        self.n = int(self.info["n"])
        return self.info

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.wait()
            tail = err.strip().splitlines()[-1] if err.strip() else "no output"
            raise RuntimeError(f"benchmark child ({self.side}) failed: {tail}")
        return json.loads(line)

    def request(self, op: str, **kwargs: Any) -> Any:
        """The child's answer to ``op`` (a JSON value)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._read()["value"]

    def ask(self, op: str, **kwargs: Any) -> float:
        """A measurement: the child's answer to ``op`` as a number."""
        return float(self.request(op, **kwargs))

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def wait_rusage(proc: subprocess.Popen, timeout: float) -> tuple[int, int]:
    """Wait for ``proc``; return (exit status, peak RSS in bytes) of that very child."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, int(usage.ru_maxrss) * 1024  # Linux: KiB
        if time.monotonic() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return -9, int(usage.ru_maxrss) * 1024
        time.sleep(0.01)
