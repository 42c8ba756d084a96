"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd (and, for
accounting, MariaDB and slurmdbd) from Debian's packages, started under a temp dir.

Not a test module. :class:`SlurmCluster` writes a minimal ``slurm.conf`` for one node on
localhost (this machine's CPUs and memory, ``proctrack/linuxproc``, ``task/none``: no cgroups),
picks free ports, starts every daemon in the foreground (so that its pid is the one we hold)
and waits until ``sinfo`` shows the node idle; :meth:`SlurmCluster.stop` cancels the jobs left,
stops the daemons by pid and then kills, by pid, every process that carries the cluster's
marker in its environment (the job steps, which Slurm detaches from slurmd). A cluster of a
previous session that died without stopping is found by its marker file and stopped first, so
a leftover never holds a port or a pid file the next session needs.

Slurm runs as root here (SlurmUser=root): the packages and the tests need root anyway, and the
jobs then run as the user who submits them, like on a cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
ACCOUNTING_DAEMONS = ("mariadbd", "mariadb-install-db", "slurmdbd")
CLIENTS = ("sbatch", "srun", "scancel", "scontrol", "squeue", "sinfo", "sacct")
PACKAGES = "slurm-wlm slurmdbd munge mariadb-server"
MARKER_ENV = "BVAE_TEST_SLURM_CLUSTER"  # every daemon and job of a cluster carries it
PREFIX = "bvae-slurm-"
START_WAIT_S = 60.0
CRED_EXPIRE_S = 10  # slurm.conf AuthInfo cred_expire: how long Slurm holds a requeued job


def missing_programs(accounting: bool = True) -> list[str]:
    """The Slurm, munge and MariaDB programs this machine lacks (empty: a cluster can start)."""
    wanted = (*DAEMONS, *CLIENTS, *(ACCOUNTING_DAEMONS if accounting else ()))
    return [p for p in wanted if _which(p) is None]


def _which(program: str) -> str | None:
    # The daemons live in /usr/sbin, which a non-root PATH may leave out.
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _marked(pid: int, marker: str) -> bool:
    """Whether process ``pid`` carries ``MARKER_ENV=marker`` in its environment."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER_ENV}={marker}".encode() in environ.split(b"\0")


def marked_pids(marker: str) -> list[int]:
    """Every live process of the cluster ``marker`` (its root dir), this process excluded."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _marked(int(entry.name),
                                                                                marker):
            out.append(int(entry.name))
    return out


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_leftovers() -> None:
    """Stop the clusters that earlier sessions left behind (their processes, by pid, found by
    marker) and remove their dirs."""
    for root in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        if not (root / "cluster.marker").exists():
            continue
        with contextlib.suppress(FileNotFoundError):
            owner = int((root / "owner.pid").read_text())
            if owner != os.getpid() and Path(f"/proc/{owner}").exists():
                continue  # another live session's cluster
        _kill(marked_pids(str(root)), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


class SlurmCluster:
    """One node on localhost. ``env`` is what a client (a test, `bvae`) needs to reach it."""

    def __init__(self, accounting: bool = True, root: Path | None = None):
        self.accounting = accounting
        self.root = Path(root or tempfile.mkdtemp(prefix=PREFIX))
        self.name = "bvae"
        self.node = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports = {"slurmctld": free_port(), "slurmd": free_port(), "slurmdbd": free_port(),
                      "mariadb": free_port()}
        self.conf = self.root / "etc" / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), MARKER_ENV: str(self.root),
                    "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}

    # -- configuration -------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def munge_socket(self) -> Path:
        return self._dir("munge") / "munge.sock"

    def write_config(self) -> None:
        etc, log, run = self._dir("etc"), self._dir("log"), self._dir("run")
        cpus = os.cpu_count() or 1
        mem_mb = _mem_total_mb() * 8 // 10
        accounting = (f"AccountingStorageType=accounting_storage/slurmdbd\n"
                      f"AccountingStorageHost=127.0.0.1\n"
                      f"AccountingStoragePort={self.ports['slurmdbd']}\n"
                      # slurmctld's munge socket for slurmdbd (AuthInfo does not apply there)
                      f"AccountingStoragePass={self.munge_socket}\n"
                      if self.accounting else "AccountingStorageType=accounting_storage/none\n")
        self.conf.write_text(
            f"ClusterName={self.name}\n"
            f"SlurmctldHost={self.node}(127.0.0.1)\n"
            "SlurmUser=root\nSlurmdUser=root\n"
            f"SlurmctldPort={self.ports['slurmctld']}\nSlurmdPort={self.ports['slurmd']}\n"
            "AuthType=auth/munge\nCredType=cred/munge\n"
            # A requeued job waits the credential lifetime before it may start again (the node
            # refuses its id until the revoked credential expires): 10 s, not 120, for tests.
            f"AuthInfo=socket={self.munge_socket},cred_expire={CRED_EXPIRE_S}\n"
            f"StateSaveLocation={self._dir('state')}\nSlurmdSpoolDir={self._dir('spool')}\n"
            f"SlurmctldPidFile={run / 'slurmctld.pid'}\nSlurmdPidFile={run / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={log / 'slurmctld.log'}\nSlurmdLogFile={log / 'slurmd.log'}\n"
            "SlurmctldDebug=info\nSlurmdDebug=info\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
            "JobAcctGatherType=jobacct_gather/none\nMpiDefault=none\nSwitchType=switch/none\n"
            "SchedulerType=sched/backfill\nSelectType=select/cons_tres\n"
            "SelectTypeParameters=CR_CPU\n"
            # A node that comes back is usable again; a silent one is noticed within seconds.
            "ReturnToService=2\nSlurmdTimeout=10\nMessageTimeout=5\nKillWait=15\n"
            "MinJobAge=300\nJobRequeue=1\nInactiveLimit=0\n"
            "SchedulerParameters=sched_interval=2\n"
            + accounting
            + f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} "
              "State=UNKNOWN\n"
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n")
        if self.accounting:
            dbd = etc / "slurmdbd.conf"
            dbd.write_text(
                "AuthType=auth/munge\n"
                f"AuthInfo=socket={self.munge_socket}\n"
                f"DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={self.ports['slurmdbd']}\n"
                "SlurmUser=root\n"
                f"LogFile={log / 'slurmdbd.log'}\nPidFile={run / 'slurmdbd.pid'}\n"
                "StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
                f"StoragePort={self.ports['mariadb']}\nStorageUser=root\n"
                "StorageLoc=slurm_acct_db\n")
            dbd.chmod(0o600)  # slurmdbd refuses a config others can read

    # -- start and stop ------------------------------------------------------------------------
    def start(self) -> SlurmCluster:
        stop_leftovers()
        self.root.chmod(0o755)  # munged wants its socket's folders searchable by all
        (self.root / "owner.pid").write_text(str(os.getpid()))
        (self.root / "cluster.marker").write_text("a test Slurm cluster (tests/slurm_cluster.py)\n")
        try:
            self.write_config()
            self._start_munge()
            if self.accounting:
                self._start_database()
                # slurmdbd reads slurmdbd.conf from SLURM_CONF's folder; it has no -f.
                self._spawn("slurmdbd", ["slurmdbd", "-D"])
                self._wait_port("slurmdbd", self.ports["slurmdbd"])
            self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
            self._wait_port("slurmctld", self.ports["slurmctld"])
            self.start_slurmd()
            self.wait_node("idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self._dir("log") / f"{name}.out", "ab")  # noqa: SIM115 (kept by the Popen)
        proc = subprocess.Popen([_which(argv[0]) or argv[0], *argv[1:]], env=self.env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def _start_munge(self) -> None:
        key = self._dir("munge") / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._dir("munge").chmod(0o755)  # clients need to reach the socket
        self._spawn("munged", ["munged", "-F", "--force", f"--key-file={key}",
                               f"--socket={self.munge_socket}",
                               f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}"])
        self._wait(lambda: self.munge_socket.exists(), "munged's socket")

    def _start_database(self) -> None:
        data = self._dir("mysql")
        subprocess.run([_which("mariadb-install-db"), f"--datadir={data}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       env=self.env, check=True, capture_output=True, timeout=120)
        self._spawn("mariadbd", ["mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
                                 f"--socket={data / 'mysqld.sock'}",
                                 f"--pid-file={data / 'mysqld.pid'}", "--bind-address=127.0.0.1",
                                 f"--port={self.ports['mariadb']}", "--skip-grant-tables",
                                 "--innodb-buffer-pool-size=16M", "--skip-log-bin"])
        self._wait_port("mariadbd", self.ports["mariadb"])

    def set_accounting(self, on: bool) -> None:
        """Restart slurmctld and slurmd with accounting on (slurmdbd) or off (no slurmdbd:
        sacct fails, as on many clusters); jobs and state are kept."""
        if on == self.accounting:
            return
        if on and "slurmdbd" not in self.procs:
            raise RuntimeError("this cluster was started without slurmdbd")
        for name in ("slurmd", "slurmctld"):
            proc = self.procs.pop(name)
            proc.terminate()
            proc.wait(30)
        self.accounting = on
        self.write_config()
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._wait_port("slurmctld", self.ports["slurmctld"])
        self.start_slurmd()
        self.wait_node("idle")

    def start_slurmd(self) -> None:
        self._spawn("slurmd", ["slurmd", "-D", "-N", self.node, "-f", str(self.conf)])

    def kill_slurmd(self) -> int:
        """SIGKILL slurmd (a node failure, with its job steps left running); its pid."""
        proc = self.procs.pop("slurmd")
        proc.kill()
        proc.wait(10)
        return proc.pid

    def stop(self) -> None:
        """Cancel what is left, stop every daemon by pid, then every marked process."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            with contextlib.suppress(Exception):
                subprocess.run(["scancel", "--full", "--user", str(os.getuid())], env=self.env,
                               capture_output=True, timeout=15)
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        _kill(marked_pids(str(self.root)), signal.SIGKILL)  # job steps and their workers
        shutil.rmtree(self.root, ignore_errors=True)

    # -- waiting and asking --------------------------------------------------------------------
    def _wait(self, condition, what: str, timeout: float = START_WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"test Slurm cluster: no {what} "
                                   f"({'; '.join(dead) + ' exited' if dead else 'timed out'}); "
                                   f"logs: {self.log_tail()}")
            time.sleep(0.2)

    def _wait_port(self, name: str, port: int) -> None:
        def listening() -> bool:
            with socket.socket() as sock:
                sock.settimeout(0.5)
                return sock.connect_ex(("127.0.0.1", port)) == 0
        self._wait(listening, f"{name} on port {port}")

    def node_state(self) -> str:
        out = self.run("sinfo", "-h", "-N", "-o", "%t", check=False).stdout.strip()
        return out.splitlines()[0] if out else ""

    def wait_node(self, state: str, timeout: float = START_WAIT_S) -> None:
        self._wait(lambda: self.node_state().rstrip("*~#") == state, f"node {state}",
                   timeout)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True,
                              timeout=30, check=check)

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")):
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


if __name__ == "__main__":  # start a cluster by hand: python -m tests.slurm_cluster
    import sys

    # A background job ignores SIGINT: stop on SIGTERM too, through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cluster = SlurmCluster(accounting="--no-accounting" not in sys.argv).start()
    print(f"export SLURM_CONF={cluster.conf} {MARKER_ENV}={cluster.root}")
    print(cluster.run("sinfo").stdout)
    try:
        signal.pause()
    finally:
        cluster.stop()
