"""`bvae bench`: this project's training path against the textbook PyTorch loop, on one device.

Every figure is measured twice in the same invocation: once through the project's path (the
trainer's data path and fast paths, engine/fastpath.py) and once through the *textbook loop*: a
``DataLoader`` over a float32 ``TensorDataset`` of the same images, NCHW, the default allocator,
``.item()`` for log values. The two sides run in two long-lived child processes (the allocator
setting is per process) that the parent drives in turns - baseline, fast, baseline, fast - so
load from other processes on a shared machine hits both alike. Each figure is the median over
the rounds and ``gain`` the median of the per-round ratios (the two measurements of a round run
back to back, in alternating order), which cancels most of a shared machine's drifting load.

Figures (``figures`` in the JSON record; each has the keys below):

- ``train.<arch>.b<batch>``: training throughput, img/s (higher is better).
- ``draw.b<batch>``: data draw rate, img/s of batches ready on the device.
- ``eval.b<batch>``: encoder throughput, img/s (``engine.analysis.encode.encode_table``
  against a ``no_grad`` loop over a DataLoader).
- ``first_step``: seconds from launching ``bvae train`` on the prepared dataset to its first
  optimiser step (the first metrics row, with ``--log-every 1``); baseline: a textbook script
  that loads the dataset as a float32 tensor and takes a step.
- ``peak_rss``: peak resident memory (bytes, ``ru_maxrss`` of the finished child) of those two
  training processes.

Record keys: ``schema`` (1), ``device`` ("cpu" / "cuda:N"), ``device_name`` (CPU model or GPU
name), ``host``, ``torch``, ``threads``, ``cpus``, ``quick``, ``dataset``, ``dataset_source``,
``baseline_images`` (images in the textbook loop's TensorDataset), ``seconds`` (total),
``load`` (the 1-minute load average at the start and at the end: other work on the machine),
``figures`` (list of {``key``, ``what``, ``unit``, ``higher_is_better``, ``fast``, ``baseline``,
``gain`` (how many times better the fast path is: fast/baseline, or baseline/fast where lower is
better; for throughputs the median of the per-round ratios), ``note``}), ``targets`` (list of
{``what``, ``key``, ``target``, ``value``, ``ok``}).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA = 1
FIGURE_KEYS = ("key", "what", "unit", "higher_is_better", "fast", "baseline", "gain", "note")
RECORD_KEYS = ("schema", "device", "device_name", "host", "torch", "threads", "cpus", "quick",
               "dataset", "dataset_source", "baseline_images", "seconds", "load", "figures",
               "targets")
FIRST_STEP_MARK = "BVAE_BENCH_FIRST_STEP"
Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Plans: what to measure


def plan(device: str, quick: bool) -> dict[str, Any]:
    """Sizes of a full or a quick (test-sized) benchmark on ``device``."""
    cuda = device.startswith("cuda")
    if quick:
        return {"dataset": "dsprites-mini", "archs": ("H", "B"), "batches": (8,),
                "seconds": 0.15, "rounds": 1, "warmup": 1, "draw_batch": 8, "eval_batch": 64,
                "eval_images": 128, "baseline_images": 256, "e2e_iterations": 2,
                "e2e_repeats": 1, "log_every": 5}
    return {"dataset": "dsprites", "archs": ("H", "B"),
            "batches": (64, 256, 1024, 4096) if cuda else (32, 64, 256),
            "seconds": 1.0, "rounds": 7, "warmup": 3, "draw_batch": 64, "eval_batch": 512,
            "eval_images": 131072 if cuda else 4096, "baseline_images": 20000,
            "e2e_iterations": 20, "e2e_repeats": 3, "log_every": 100}


# --------------------------------------------------------------------------------------------
# The two sides, run inside a child process (python -m bvae_tui.engine.bench.suite --serve SIDE ...)


class _Side:
    """One side of the comparison: holds the data and measures on request."""

    def __init__(self, fast: bool, device: str, dataset: str, data_dir: str | None,
                 baseline_images: int, seed: int = 0):
        import numpy as np
        import torch

        from bvae_tui.datasets.prepare import open_dataset
        from bvae_tui.engine.config import TrainConfig
        from bvae_tui.engine.train import fastpath

        self.fast, self.device, self.torch = fast, device, torch
        if fast:
            fastpath.configure_process(device)
        self.cfg = TrainConfig(dataset=dataset, device=device)
        self.ds = open_dataset(dataset, data_dir, prepare_missing=False)
        if fast:
            from bvae_tui.datasets.tensors import DeviceImages

            self.images = DeviceImages(self.ds, device)  # the trainer's data path, whole dataset
            self.n = self.images.n
        else:
            # The textbook loop: a float32 NCHW tensor of the images in a TensorDataset.
            n = min(baseline_images, self.ds.n)
            idx = np.sort(np.random.RandomState(seed).choice(self.ds.n, n, replace=False))
            floats = torch.from_numpy(np.ascontiguousarray(self.ds.float_images_at(idx)))
            self.tensors = torch.utils.data.TensorDataset(floats)
            self.n = n

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize(self.device)

    def _loader(self, batch: int, shuffle: bool = True, drop_last: bool = True):
        """Endless batches from a DataLoader (a new epoch when one ends), as the textbook does."""
        from torch.utils.data import DataLoader

        loader = DataLoader(self.tensors, batch_size=batch, shuffle=shuffle, drop_last=drop_last)
        while True:
            yield from loader

    def _timed(self, step: Callable[[], None], batch: int, seconds: float,
               warmup: int) -> float:
        """img/s of ``step`` over at least ``seconds`` (after ``warmup`` untimed steps)."""
        for _ in range(warmup):
            step()
        self._sync()
        steps, start = 0, time.perf_counter()
        while True:
            step()
            steps += 1
            # No sync inside the loop: a GPU keeps its queue of steps; the clock is read on the
            # host and the queue drained once at the end, so the time is the device's time.
            if time.perf_counter() - start >= seconds:
                self._sync()
                return steps * batch / (time.perf_counter() - start)

    def train(self, arch: str, batch: int, seconds: float, warmup: int, log_every: int) -> float:
        import torch

        from bvae_tui.engine.train import fastpath
        from bvae_tui.engine.train.models import build_model
        from bvae_tui.engine.train.objectives import compute_loss

        torch.manual_seed(0)
        cfg, device = self.cfg.replace(batch_size=batch, arch=arch), self.device
        model = build_model(arch, self.ds.channels, cfg.z_dim).to(device)
        model.train()
        dist = self.ds.spec.recon
        state = {"it": 0}
        if self.fast:
            # The trainer's step (engine/trainer.py): device-side batches and statistics.
            net = fastpath.prepare_model(model, cfg, device)
            opt = fastpath.make_optimizer(model.parameters(), cfg, device)
            gen = torch.Generator().manual_seed(0)
            perm = torch.randperm(self.n, generator=gen).to(device)
            stats = torch.zeros(log_every, 3, device=device)

            def step() -> None:
                it = state["it"]
                pos = (it * batch) % max(1, self.n - batch)
                x = fastpath.to_memory_format(self.images.batch(perm[pos:pos + batch]),
                                              cfg, device)
                with fastpath.autocast(cfg, device):
                    logits, mu, logvar = net(x)
                out = compute_loss(cfg, logits, x, mu, logvar, it + 1, dist)
                opt.zero_grad(set_to_none=True)
                out["loss"].backward()
                opt.step()
                with torch.no_grad():
                    stats[it % log_every] = torch.stack((out["loss"], out["recon"], out["kl"]))
                if (it + 1) % log_every == 0:
                    stats.mean(0).tolist()  # one transfer per log interval
                state["it"] = it + 1
        else:
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            batches = self._loader(batch)
            sums = [0.0, 0.0, 0.0]

            def step() -> None:
                it = state["it"]
                (x,) = next(batches)
                x = x.to(device)
                logits, mu, logvar = model(x)
                out = compute_loss(cfg, logits, x, mu, logvar, it + 1, dist)
                opt.zero_grad()
                out["loss"].backward()
                opt.step()
                if (it + 1) % log_every == 0:
                    for i, k in enumerate(("loss", "recon", "kl")):
                        sums[i] += out[k].item()
                state["it"] = it + 1

        return self._timed(step, batch, seconds, warmup)

    def draw(self, batch: int, seconds: float, warmup: int) -> float:
        import torch

        from bvae_tui.engine.train import fastpath

        if self.fast:
            gen = torch.Generator().manual_seed(0)
            perm = torch.randperm(self.n, generator=gen).to(self.device)
            state = {"pos": 0}

            def step() -> None:
                pos = state["pos"]
                fastpath.to_memory_format(self.images.batch(perm[pos:pos + batch]), self.cfg,
                                          self.device)
                state["pos"] = (pos + batch) % max(1, self.n - batch)
        else:
            batches = self._loader(batch)

            def step() -> None:
                next(batches)[0].to(self.device)

        return self._timed(step, batch, seconds, warmup)

    def eval(self, batch: int, images: int, rounds: int = 1) -> float:
        import numpy as np
        import torch

        from bvae_tui.engine.train.models import build_model

        torch.manual_seed(0)
        model = build_model("H", self.ds.channels, 10).to(self.device).eval()
        best = 0.0
        for _ in range(rounds):
            if self.fast:
                from bvae_tui.engine.analysis.encode import encode_table

                # What `bvae eval` runs: sorted indices spread over the dataset.
                idx = np.unique(np.linspace(0, self.ds.n - 1, images).astype(np.int64))
                start = time.perf_counter()
                encode_table(model, self.ds, idx, self.device, batch_size=batch)
                count = len(idx)
            else:
                from torch.utils.data import DataLoader, Subset

                count = min(images, self.n)
                loader = DataLoader(Subset(self.tensors, range(count)), batch_size=batch)
                start = time.perf_counter()
                with torch.no_grad():
                    for (x,) in loader:
                        model.encode(x.to(self.device))[0].cpu()
            self._sync()
            best = max(best, count / (time.perf_counter() - start))
        return best


def _serve(side: str, device: str, dataset: str, data_dir: str | None,
           baseline_images: int) -> int:
    """Child process: answer one JSON request per stdin line with one JSON line on stdout."""
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the answer channel
    bench = _Side(side == "fast", device, dataset, data_dir, baseline_images)
    import torch

    from bvae_tui.engine.train import fastpath

    out.write(json.dumps({"ready": True, "n": bench.n, "threads": torch.get_num_threads(),
                          "threads_default": fastpath.cpu_threads(), "torch": torch.__version__,
                          "device_name": device_name(device)}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        op = req.pop("op")
        if op == "quit":
            break
        value = getattr(bench, op)(**req)
        out.write(json.dumps({"value": value}) + "\n")
        out.flush()
    return 0


class _Child:
    """The parent's handle on one side's child process."""

    def __init__(self, side: str, device: str, dataset: str, data_dir: str | None,
                 baseline_images: int):
        env = _child_env(fast=side == "fast", device=device)
        cmd = [sys.executable, "-m", "bvae_tui.engine.bench.suite", "--serve", side,
               "--device", device, "--dataset", dataset, "--baseline-images", str(baseline_images)]
        if data_dir:
            cmd += ["--data-dir", str(data_dir)]
        self.side = side
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.n = 0

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

    def ask(self, op: str, **kwargs: Any) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return float(self._read()["value"])

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


def _child_env(fast: bool, device: str) -> dict[str, str]:
    """Environment of a child: the fast side gets worker_env; the baseline the plain allocator."""
    from bvae_tui.engine.train import fastpath

    env = {k: v for k, v in os.environ.items() if k not in fastpath.MALLOC_ENV}
    env.pop(fastpath.PLAIN_ENV, None)
    if fast:
        env.update(fastpath.worker_env(device))
    else:
        env[fastpath.PLAIN_ENV] = "1"
    return env


# --------------------------------------------------------------------------------------------
# End to end: time to the first step and peak RSS of a training process


def _wait_rusage(proc: subprocess.Popen, timeout: float) -> tuple[int, int]:
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


def bvae_command() -> list[str]:
    script = Path(sys.executable).with_name("bvae")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bvae_tui.cli.main"]


def first_step_fast(device: str, dataset: str, data_dir: str | None,
                    iterations: int) -> tuple[float, int]:
    """Launch the real ``bvae train`` (foreground); seconds to its first metrics row, peak RSS."""
    with tempfile.TemporaryDirectory(prefix="bvae-bench-") as tmp:
        runs = Path(tmp) / "runs"
        cmd = [*bvae_command(), "train", "--dataset", dataset, "--device", device,
               "--iterations", str(iterations), "--log-every", "1", "--preview-every", "0",
               "--checkpoint-every", str(max(iterations, 1)), "--name", "bench",
               "--runs-dir", str(runs)]
        if data_dir:
            cmd += ["--data-dir", str(data_dir)]
        env = {k: v for k, v in os.environ.items() if k != "BVAE_RUNS_DIR"}
        launched = time.time()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env)
        code, rss = _wait_rusage(proc, timeout=600)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        rows = sorted(runs.glob("*/metrics.jsonl"))
        first = None
        if rows:
            with open(rows[0]) as fh:
                line = fh.readline()
            first = json.loads(line)["time"] if line.strip() else None
        if code != 0 or first is None:
            tail = err.strip().splitlines()[-1] if err.strip() else f"exit code {code}"
            raise RuntimeError(f"'bvae train' failed in the benchmark: {tail}")
        return first - launched, rss


def first_step_baseline(device: str, dataset: str, data_dir: str | None, iterations: int,
                        images: int | None) -> tuple[float, int]:
    """The textbook script: float32 TensorDataset + DataLoader + model; seconds, peak RSS."""
    cmd = [sys.executable, "-m", "bvae_tui.engine.bench.suite", "--textbook-train",
           "--device", device, "--dataset", dataset, "--iterations", str(iterations)]
    if images:
        cmd += ["--baseline-images", str(images)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    launched = time.time()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_child_env(False, device))
    code, rss = _wait_rusage(proc, timeout=900)
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    marks = [ln.split()[1] for ln in out.splitlines() if ln.startswith(FIRST_STEP_MARK)]
    if code != 0 or not marks:
        tail = err.strip().splitlines()[-1] if err.strip() else f"exit code {code}"
        raise RuntimeError(f"the textbook baseline failed: {tail}")
    return float(marks[0]) - launched, rss


def _textbook_train(device: str, dataset: str, data_dir: str | None, iterations: int,
                    images: int | None) -> int:
    """What the common public implementation does: every image as float32 in memory."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from bvae_tui.datasets.prepare import open_dataset
    from bvae_tui.engine.config import TrainConfig
    from bvae_tui.engine.train.models import build_model
    from bvae_tui.engine.train.objectives import compute_loss

    ds = open_dataset(dataset, data_dir, prepare_missing=False)
    n = ds.n if not images else min(images, ds.n)
    floats = torch.empty((n, ds.channels, 64, 64), dtype=torch.float32)
    chunk = 16384
    for start in range(0, n, chunk):  # all of it, as float32, before training starts
        stop = min(n, start + chunk)
        floats[start:stop] = torch.from_numpy(ds.float_images_at(np.arange(start, stop)))
    loader = DataLoader(TensorDataset(floats), batch_size=64, shuffle=True, drop_last=True)
    cfg = TrainConfig(dataset=dataset, device=device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.architecture, ds.channels, cfg.z_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for it, (x,) in enumerate(loader):
        if it == iterations:
            break
        x = x.to(device)
        logits, mu, logvar = model(x)
        out = compute_loss(cfg, logits, x, mu, logvar, it + 1, ds.spec.recon)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        out["loss"].item()
        if it == 0:
            print(f"{FIRST_STEP_MARK} {time.time():.6f}", flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# The parent


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _figure(key: str, what: str, unit: str, fast: float, baseline: float | None,
            higher_is_better: bool = True, note: str = "",
            gain: float | None = None) -> dict[str, Any]:
    if gain is None and baseline and fast:
        gain = fast / baseline if higher_is_better else baseline / fast
    return {"key": key, "what": what, "unit": unit, "higher_is_better": higher_is_better,
            "fast": fast, "baseline": baseline, "gain": gain, "note": note}


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_bench(device: str = "cpu", quick: bool = False, data_dir: str | None = None,
              progress: Progress | None = None, end_to_end: bool = True) -> dict[str, Any]:
    """Measure everything; return the JSON record described in the module docstring."""
    from bvae_tui.datasets.loader import dataset_status
    from bvae_tui.datasets.prepare import open_dataset

    say = progress or (lambda message: None)
    p = plan(device, quick)
    t_start = time.perf_counter()
    name = p["dataset"]
    if not dataset_status(name, data_dir)["prepared"]:
        say(f"preparing {name} (once)")
    ds = open_dataset(name, data_dir)  # prepares it when missing (procedural dSprites)
    record: dict[str, Any] = {
        "schema": SCHEMA, "device": device, "device_name": None, "host": platform.node(),
        "torch": None, "threads": None, "cpus": os.cpu_count(), "quick": quick,
        "dataset": name, "dataset_source": ds.source,
        "baseline_images": min(p["baseline_images"], ds.n), "load": [_load()],
        "figures": [], "targets": [],
    }
    figures: list[dict[str, Any]] = record["figures"]
    del ds

    say("starting the baseline and fast-path processes")
    base = _Child("baseline", device, name, data_dir, p["baseline_images"])
    fast = _Child("fast", device, name, data_dir, p["baseline_images"])
    try:
        base.wait_ready()
        info = fast.wait_ready()
        record.update(device_name=info["device_name"], torch=info["torch"],
                      threads=info["threads"])
        def interleaved(op: str, **kw: Any) -> tuple[float, float, float]:
            """Paired rounds, the order alternating (ABBA): medians and the median ratio."""
            fs, bs = [], []
            for i in range(p["rounds"]):
                if i % 2 == 0:
                    bs.append(base.ask(op, **kw))
                    fs.append(fast.ask(op, **kw))
                else:
                    fs.append(fast.ask(op, **kw))
                    bs.append(base.ask(op, **kw))
            return (statistics.median(fs), statistics.median(bs),
                    statistics.median(f / b for f, b in zip(fs, bs, strict=True)))

        for batch in p["batches"]:
            for arch in p["archs"]:
                say(f"training throughput: arch {arch}, batch {batch}")
                f, b, g = interleaved("train", arch=arch, batch=batch, seconds=p["seconds"],
                                      warmup=p["warmup"], log_every=p["log_every"])
                figures.append(_figure(f"train.{arch}.b{batch}",
                                       f"training, arch {arch}, batch {batch}", "img/s", f, b,
                                       gain=g))
        say("data draw rate")
        f, b, g = interleaved("draw", batch=p["draw_batch"], seconds=p["seconds"] / 2,
                              warmup=p["warmup"])
        figures.append(_figure(f"draw.b{p['draw_batch']}",
                               f"data draw, batch {p['draw_batch']}", "img/s", f, b, gain=g))
        say("eval throughput")
        f, b, g = interleaved("eval", batch=p["eval_batch"], images=p["eval_images"])
        figures.append(_figure(f"eval.b{p['eval_batch']}",
                               f"encoder (eval), batch {p['eval_batch']}", "img/s", f, b,
                               gain=g))
    finally:
        base.close()
        fast.close()

    if end_to_end:
        say(f"time to first step: bvae train on {name}")
        runs = [first_step_fast(device, name, data_dir, p["e2e_iterations"])
                for _ in range(p["e2e_repeats"])]
        t_fast = statistics.median(t for t, _ in runs)
        rss_fast = max(r for _, r in runs)
        times = ", ".join(f"{t:.2f}" for t, _ in runs)
        n_all = open_dataset(name, data_dir).n
        need = n_all * 64 * 64 * 4 * 1.15  # float32 copy of every image, plus the process
        avail = _available_memory()
        images, note = None, ""
        if avail is not None and need > 0.8 * avail:
            images = int(n_all * 0.8 * avail / need)
            note = (f"baseline on {images:,} of {n_all:,} images (all of them as float32 would "
                    f"need {need / 2**30:.1f} GB, {avail / 2**30:.1f} GB free)")
        say("time to first step: textbook script" + (f" ({note})" if note else ""))
        t_base, rss_base = first_step_baseline(device, name, data_dir, p["e2e_iterations"],
                                               images)
        figures.append(_figure("first_step", f"bvae train -> first step ({name})", "s",
                               t_fast, t_base, higher_is_better=False,
                               note="; ".join(x for x in (f"bvae: median of {times} s", note)
                                              if x)))
        figures.append(_figure("peak_rss", f"peak RSS of training ({name})", "bytes",
                               float(rss_fast), float(rss_base), higher_is_better=False,
                               note=note))

    record["load"].append(_load())
    record["targets"] = _targets(record, device)
    record["seconds"] = time.perf_counter() - t_start
    return record


def _targets(record: dict[str, Any], device: str) -> list[dict[str, Any]]:
    """The acceptance targets of issue 7 (CPU figures), checked against this record."""
    by_key = {f["key"]: f for f in record["figures"]}
    out = []

    def check(what: str, key: str, field: str, target: str, ok: Callable[[float], bool]) -> None:
        fig = by_key.get(key)
        if fig is None or fig.get(field) is None:
            return
        value = fig[field]
        out.append({"what": what, "key": key, "target": target, "value": value,
                    "ok": bool(ok(value))})

    if not device.startswith("cuda"):
        for arch in ("H", "B"):
            check(f"training speed-up, arch {arch}, batch 64", f"train.{arch}.b64", "gain",
                  ">= 1.5x", lambda v: v >= 1.5)
    if record["dataset"] == "dsprites":
        check("time to first step on dSprites", "first_step", "fast", "< 3 s",
              lambda v: v < 3.0)
        check("peak RSS of dSprites training", "peak_rss", "fast", "< 1 GB",
              lambda v: v < 1e9)
    return out


# --------------------------------------------------------------------------------------------
# Formatting (plain text; the CLI renders the same rows with rich)


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{value / 2**20:,.0f} MB"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.0f} {unit}"


def format_gain(gain: float | None) -> str:
    return "-" if gain is None else f"{gain:.2f}x"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bvae_tui.engine.bench.suite",
                                     description="benchmark children (use `bvae bench`)")
    parser.add_argument("--serve", choices=("baseline", "fast"))
    parser.add_argument("--textbook-train", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="dsprites")
    parser.add_argument("--data-dir")
    parser.add_argument("--baseline-images", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args.serve, args.device, args.dataset, args.data_dir,
                      args.baseline_images)
    if args.textbook_train:
        return _textbook_train(args.device, args.dataset, args.data_dir, args.iterations,
                               args.baseline_images or None)
    record = run_bench(args.device, quick=args.quick,
                       progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
