"""The workflow through a real SLURM: profiles/slurm + profiles/slurm-ci on a one-node cluster started here.

As root, this installs Debian's slurmctld, slurmd, slurm-client and munge (apt-get, only when missing), writes a
one-node /etc/slurm/slurm.conf (state, spool and logs in a temp dir; a requeued job waits 5 s, not 120), starts
munged (as user munge), slurmctld and slurmd, runs a small version of the demo through
`snakemake --profile profiles/slurm --profile profiles/slurm-ci` and checks that every non-local job ran as a
SLURM job; then requeues a running fine-tuning job (what preemption does) and checks that it resumes, and lets
another run past its time limit and checks that the job Snakemake submits again resumes. Daemons it
started are stopped and its slurm.conf removed afterwards, also on failure. Not root, no apt-get, or an install
that fails: skipped with the reason. A SLURM that this test did not configure (a slurm.conf it did not write) is
left alone: skipped.
Deselect with `pytest -m "not slurm"`. Takes 7-8 minutes on 2 cores (plus the apt install once): SLURM's
shortest time limit is a minute, and it checks limits every 30 s.
"""
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO, tiny_config, write_config

pytestmark = pytest.mark.slurm

PROFILE = REPO / "profiles" / "slurm"
CI_PROFILE = REPO / "profiles" / "slurm-ci"
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
COMMANDS = ["slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun", "scancel", "munged", "munge", "unmunge"]
SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# Written by xlgen tests/test_slurm.py; removed when the test ends."
PIDS = Path("/run/xlgen-slurm-test")  # pid files of the daemons this test started (a crashed run's are stopped)
PARTITION = "xlgenci"
INSTALL_TIMEOUT, LOCK_TIMEOUT = 240, 420
WORKFLOW_TIMEOUT = int(os.environ.get("XLGEN_SLURM_TEST_TIMEOUT", 330))  # seconds for the snakemake run
VENV_BIN = Path(sys.executable).parent
T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[test_slurm {time.monotonic() - T0:6.1f}s] {message}", flush=True)


def sh(*cmd, timeout=30, **kwargs) -> subprocess.CompletedProcess:
    """A command with a bounded wait; a timeout reads as exit status 124."""
    try:
        return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as err:
        return subprocess.CompletedProcess(err.cmd, 124, err.stdout or "", f"timed out after {timeout} s")


def tail(text, n=2500) -> str:
    text = text.decode(errors="replace") if isinstance(text, bytes) else (text or "")
    return text[-n:]


def installed() -> bool:
    return all(shutil.which(cmd) for cmd in COMMANDS)


def install_or_skip() -> None:
    if installed():
        say("slurm and munge already installed: no apt-get")
        return
    if not shutil.which("apt-get"):
        pytest.skip("slurm/munge are not installed and there is no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confdef",
           "-o", "Dpkg::Options::=--force-confold", *PACKAGES]
    started = time.monotonic()
    result = sh(*cmd, timeout=INSTALL_TIMEOUT, env=env)
    if result.returncode != 0:  # a fresh machine may have no package lists yet
        say("apt-get install failed; apt-get update and retry")
        update = sh("apt-get", "update", "-qq", timeout=120, env=env)
        result = sh(*cmd, timeout=INSTALL_TIMEOUT, env=env) if update.returncode == 0 else update
    if result.returncode != 0 or not installed():
        pytest.skip(f"could not install {' '.join(PACKAGES)} with apt-get (exit {result.returncode}): "
                    f"{tail(result.stdout + result.stderr, 1500)}")
    say(f"apt-get installed {' '.join(PACKAGES)} in {time.monotonic() - started:.1f} s")


def alive(pid: int, names: tuple) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in names
    except OSError:
        return False


def stop_stale_daemons() -> None:
    """Daemons of an earlier run of this test that died before its teardown: stopped by their recorded pid."""
    for pidfile in sorted(PIDS.glob("*.pid")):
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            pid = 0
        if pid and alive(pid, (pidfile.stem,)):
            say(f"stopping {pidfile.stem} (pid {pid}) left by an earlier run")
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not alive(pid, (pidfile.stem,)):
                    break
                time.sleep(0.2)
            else:
                os.kill(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)


def munge_works() -> bool:
    munge = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
    if munge.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=munge.stdout, capture_output=True, timeout=10).returncode == 0


def slurm_conf(state: Path, host: str) -> str:
    cpus = len(os.sched_getaffinity(0))  # what nproc says
    mem_mb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:"))) // 1024
    return f"""{MARKER}
ClusterName=xlgenci
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
ReturnToService=2
MinJobAge=900
MailProg=/bin/true
InactiveLimit=0
KillWait=5
AuthInfo=cred_expire=5
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={max(mem_mb * 9 // 10, 1000)} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    """The daemons this test starts, and what it must undo."""

    def __init__(self, state: Path):
        self.state = state
        self.procs: dict[str, subprocess.Popen] = {}
        self.wrote_conf = False

    def start(self, name: str, cmd: list, **kwargs) -> None:
        log = open(self.state / f"{name}.out", "wb")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, **kwargs)
        (PIDS / f"{name}.pid").write_text(str(self.procs[name].pid))

    def logs(self) -> str:
        parts = []
        for name in ("munged.out", "slurmctld.log", "slurmctld.out", "slurmd.log", "slurmd.out"):
            path = self.state / name
            if path.exists():
                parts.append(f"--- {name}\n{tail(path.read_text(errors='replace'), 1500)}")
        return "\n".join(parts)

    def stop(self) -> None:
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            sh("scancel", "--partition", PARTITION, timeout=15)
            for _ in range(30):  # let running jobs end before slurmd goes
                if not sh("squeue", "-h", "-t", "PD,R,CG", timeout=10).stdout.strip():
                    break
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            (PIDS / f"{name}.pid").unlink(missing_ok=True)
        if self.wrote_conf and SLURM_CONF.exists() and SLURM_CONF.read_text().startswith(MARKER):
            SLURM_CONF.unlink()  # else every later snakemake call asks the dead controller for its config


def start_munge(cluster: Cluster) -> None:
    if munge_works():
        say("munged already running: using it")
        return
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        if shutil.which("mungekey"):
            subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True, timeout=30)
        else:
            key.write_bytes(os.urandom(1024))
        say("created a munge key")
    for path in (key.parent, Path("/var/lib/munge"), Path("/var/log/munge"), Path("/run/munge")):
        path.mkdir(parents=True, exist_ok=True)
        shutil.chown(path, "munge", "munge")
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    cluster.start("munged", ["munged", "--foreground", "--force"], user="munge", group="munge", extra_groups=[])
    for _ in range(50):
        if munge_works():
            return
        time.sleep(0.2)
    pytest.fail(f"munged did not start within 10 s\n{cluster.logs()}")


def wait_until_ready(cluster: Cluster, host: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        for name, proc in cluster.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}\n{cluster.logs()}")
        state = sh("sinfo", "-h", "-n", host, "-o", "%T", timeout=10).stdout.strip()
        if state == "idle":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"node {host} not idle within {timeout} s (sinfo: {state!r})\n{cluster.logs()}")
    srun = sh("srun", "--time=1", "hostname", timeout=30)
    if srun.returncode != 0 or srun.stdout.strip() != socket.gethostname():
        pytest.fail(f"srun hostname: exit {srun.returncode}: {srun.stdout} {srun.stderr}\n{cluster.logs()}")


def lock_or_skip():
    """One cluster at a time on a machine (ports 6817/6818, /etc/slurm/slurm.conf): an exclusive lock, held by
    the fixture; another run of this test waits for it (bounded). The kernel drops it when its holder dies."""
    PIDS.mkdir(parents=True, exist_ok=True)
    handle = open(PIDS / "lock", "w")
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                pytest.skip(f"another run of this test held {PIDS / 'lock'} for over {LOCK_TIMEOUT} s")
            time.sleep(1)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: to apt-get install slurm/munge and to start munged, slurmctld and slurmd")
    lock = lock_or_skip()
    try:
        yield from _slurm_cluster(tmp_path_factory)
    finally:
        lock.close()


def _slurm_cluster(tmp_path_factory):
    if SLURM_CONF.exists() and not SLURM_CONF.read_text(errors="replace").startswith(MARKER):
        pytest.skip(f"{SLURM_CONF} exists and was not written by this test: not touching a configured SLURM")
    install_or_skip()
    t_start = time.monotonic()
    host = socket.gethostname().split(".")[0]
    state = tmp_path_factory.mktemp("slurm")
    for sub in ("ctld", "spool"):
        (state / sub).mkdir()
    stop_stale_daemons()
    cluster = Cluster(state)
    try:
        start_munge(cluster)
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(slurm_conf(state, host))
        cluster.wrote_conf = True
        cluster.start("slurmctld", ["slurmctld", "-D"])
        cluster.start("slurmd", ["slurmd", "-D"])
        wait_until_ready(cluster, host)
        say(f"one-node SLURM up in {time.monotonic() - t_start:.1f} s (node {host}, "
            f"{len(os.sched_getaffinity(0))} CPUs, state in {state})")
        yield SimpleNamespace(host=host, state=state, cluster=cluster)
    finally:
        cluster.stop()
        say("daemons stopped, slurm.conf removed")


def small_config() -> dict:
    """The tiny demo cut to one task, one run (en), two targets: 19 SLURM jobs."""
    config = tiny_config()
    task = config["tasks"]["title_generation"]
    task["languages"] = ["en", "de"]
    config["tasks"] = {"title_generation": task}
    config["experiments"] = [{"task": "title_generation", "sources": [["en"]], "targets": ["en", "de"]}]
    return config


def start_snakemake(workdir: Path, log: Path, *extra) -> subprocess.Popen:
    """snakemake with both profiles, the venv's bin first on PATH (sbatch --export=ALL passes it to the jobs)."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", REPO / "Snakefile", "--directory", workdir,
           "--configfile", workdir / "config.yaml", "--profile", PROFILE, "--profile", CI_PROFILE, *extra]
    with open(log, "wb") as out:
        return subprocess.Popen([str(c) for c in cmd], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = WORKFLOW_TIMEOUT) -> int:
    """snakemake's exit status (124: timed out); no snakemake outlives the test, timed out or interrupted."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # snakemake cancels its SLURM jobs (scancel) on SIGINT
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def run_snakemake(workdir: Path, log: Path, *extra, timeout: float = WORKFLOW_TIMEOUT) -> int:
    return finish(start_snakemake(workdir, log, *extra), timeout)


def test_small_demo_runs_as_slurm_jobs(slurm_cluster, tmp_path):
    workdir = tmp_path / "study"
    workdir.mkdir()
    write_config(workdir, small_config())
    log = tmp_path / "snakemake.log"
    started = time.monotonic()
    rc = run_snakemake(workdir, log)
    text = log.read_text(errors="replace")
    say(f"snakemake through SLURM: exit {rc} in {time.monotonic() - started:.1f} s")
    slurm_logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    if rc != 0:
        newest = sorted(slurm_logs, key=lambda p: p.stat().st_mtime)[-3:]
        failed = "\n".join(f"--- {p}\n{tail(p.read_text(errors='replace'), 1500)}" for p in newest)
        pytest.fail(f"snakemake exit {rc}{' (timed out)' if rc == 124 else ''}\n{tail(text, 5000)}\n"
                    f"{failed}\n{slurm_cluster.cluster.logs()}")

    # every job that is not a localrule went to SLURM, and SLURM ran it to completion
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", text))
    remote_rules = re.findall(r"^rule (\w+):", text, flags=re.M)
    assert submitted and len(submitted) == len(remote_rules), (submitted, remote_rules)
    assert {"prepare", "build_model", "finetune", "xlrs", "decode", "score", "tables"} <= set(remote_rules)
    assert {"cast", "manifest", "select"} <= set(re.findall(r"^localrule (\w+):", text, flags=re.M))  # no queue
    jobids = set(submitted.values())
    squeue = sh("squeue", "-h", "--states=all", "-o", "%i %T", timeout=15).stdout
    states = dict(line.split() for line in squeue.splitlines() if line.strip())
    assert {jobid: states.get(jobid) for jobid in jobids} == {jobid: "COMPLETED" for jobid in jobids}, squeue
    # the plugin's per-job log (kept by slurm-keep-successful-logs): the job re-ran snakemake inside SLURM
    assert {p.stem for p in slurm_logs} >= jobids
    finetune_log = next(p for p in slurm_logs if p.parts[-3] == "rule_finetune")
    inner = finetune_log.read_text(errors="replace")
    assert "--executor slurm-jobstep" in inner and "Finished jobid: 0 (Rule: finetune)" in inner, tail(inner)

    results = workdir / "results"
    summary = next(results.glob("summary-*/tables/README.md")).parent
    assert all((summary / name).stat().st_size > 0 for name in ("scores.csv", "selection.csv", "spearman.csv"))
    run_dir = next(results.glob("runs/title_generation-en-s1-*"))
    assert (run_dir / "run.json").exists()
    assert {p.name.split("-")[0] for p in (run_dir / "decode" / "test").glob("*.jsonl")} == {"en", "de"}
    say(f"{len(jobids)} SLURM jobs (ids {min(jobids, key=int)}-{max(jobids, key=int)}) COMPLETED; "
        f"per-job logs in {workdir / '.snakemake' / 'slurm_logs'}")

    # a second call finds nothing to do and submits nothing
    rc = run_snakemake(workdir, tmp_path / "again.log", timeout=60)
    again = (tmp_path / "again.log").read_text(errors="replace")
    assert rc == 0 and "has been submitted with SLURM jobid" not in again, tail(again)
    say(f"test done; total wall time of this module so far {time.monotonic() - T0:.1f} s")


def running_job(comment_part: str, timeout: float = 10) -> str:
    """The SLURM id of the running job whose comment (the plugin writes the rule's name there) has comment_part."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in sh("squeue", "-h", "-t", "R", "-o", "%i %k", timeout=10).stdout.splitlines():
            jobid, _, comment = line.partition(" ")
            if comment_part in comment:
                return jobid
        time.sleep(0.2)
    queue = sh("squeue", "-h", "-o", "%i %T %k", timeout=10).stdout
    pytest.fail(f"no running SLURM job with {comment_part!r} in its comment: {queue}")


RESUMED = re.compile(r"resumed from \S+state.pt at step (\d+)")  # finetune's log line when it resumes
ATTEMPT = re.compile(r"finetune started on .*, SLURM job (\d+)")  # the first line of the tool's log


def test_a_requeued_finetune_job_resumes_under_the_same_job_id(slurm_cluster, tmp_path):
    """What preemption or a node failure does to a job submitted with --requeue: SLURM kills it mid-training and
    starts its batch script again under the same id; Snakemake keeps waiting, and finetune continues from the
    resume state instead of step 0."""
    workdir = tmp_path / "requeue"
    workdir.mkdir()
    config = small_config()
    config["train"].update(epochs=200, checkpoints=10)  # 800 steps: 10-25 s, a first resume state at 10%
    write_config(workdir, config)
    log = tmp_path / "requeue.log"
    proc = start_snakemake(workdir, log, "--until", "finetune")
    try:
        deadline = time.monotonic() + WORKFLOW_TIMEOUT
        while not list(workdir.glob("results/runs/*/resume/state.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, tail(log.read_text(errors="replace"))
            time.sleep(0.2)
        jobid = running_job("finetune")
        requeue = sh("scontrol", "requeue", jobid, timeout=15)
        assert requeue.returncode == 0, requeue.stderr
        say(f"requeued finetune job {jobid}")
    finally:
        rc = finish(proc)
    text = log.read_text(errors="replace")
    assert rc == 0, f"snakemake exit {rc}\n{tail(text, 5000)}\n{slurm_cluster.cluster.logs()}"
    submitted = re.findall(r"^rule (\w+):.*?has been submitted with SLURM jobid (\d+)", text, flags=re.M | re.S)
    assert [(rule, j) for rule, j in submitted if rule == "finetune"] == [("finetune", jobid)], submitted
    job = sh("scontrol", "show", "job", jobid, timeout=15).stdout
    assert "JobState=COMPLETED" in job and "Restarts=1" in job, job

    run_dir = next(workdir.glob("results/runs/title_generation-en-s1-*"))
    tool_log = next(workdir.glob("results/logs/finetune/*.log")).read_text(errors="replace")
    resumed = RESUMED.search(tool_log)
    assert resumed and int(resumed.group(1)) >= 80, tail(tool_log)
    assert ATTEMPT.findall(tool_log) == [jobid], tail(tool_log)  # Snakemake starts each attempt's log afresh
    steps = [int(line.split("\t")[0]) for line in (run_dir / "train_log.tsv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 801))
    assert (run_dir / "run.json").exists() and not (run_dir / "resume").exists()
    say(f"finetune job {jobid} requeued at step >= {resumed.group(1)}, resumed from there and completed")


def test_a_finetune_job_past_its_time_limit_is_resubmitted_and_resumes(slurm_cluster, tmp_path):
    """What a `runtime` set too short does: at the time limit SLURM sends SIGTERM and ends the job as TIMEOUT;
    finetune saves its state on the signal; Snakemake (`retries`) submits the job again as a new SLURM job, which
    continues from that state. The run is too long to finish here and never reaches a checkpoint, so the state
    it resumes from can only be the one saved on SIGTERM; the test stops the workflow once it has resumed."""
    workdir = tmp_path / "timeout"
    workdir.mkdir()
    config = small_config()
    config["train"].update(epochs=100_000, checkpoints=1)  # 400,000 steps: hours
    write_config(workdir, config)
    log = tmp_path / "timeout.log"
    proc = start_snakemake(workdir, log, "--until", "finetune", "--retries", "1")
    try:
        deadline = time.monotonic() + WORKFLOW_TIMEOUT
        while not (tool_log := next(workdir.glob("results/logs/finetune/*.log"), None)) or \
                "/400000" not in tool_log.read_text(errors="replace"):  # tqdm's progress: training has begun
            assert proc.poll() is None and time.monotonic() < deadline, tail(log.read_text(errors="replace"))
            time.sleep(0.5)
        first = running_job("finetune")
        # The shortest limit SLURM has, one minute (it checks limits every 30 s): elapsed time counts from the start.
        update = sh("scontrol", "update", f"JobId={first}", "TimeLimit=1", timeout=15)
        assert update.returncode == 0, update.stderr
        say(f"finetune job {first}: time limit set to 1 minute")
        # up to 90 s to the TIMEOUT, then Snakemake's next status check, the new job's start and its resume
        deadline, resumed = time.monotonic() + 240, None
        while not resumed:
            assert proc.poll() is None and time.monotonic() < deadline, tail(log.read_text(errors="replace"), 5000)
            time.sleep(1)
            resumed = RESUMED.search(tool_log.read_text(errors="replace"))
        second = running_job("finetune")
    finally:
        finish(proc, timeout=0)  # SIGINT: snakemake cancels the resumed job
    text = log.read_text(errors="replace")
    submitted = re.findall(r"^rule (\w+):.*?has been submitted with SLURM jobid (\d+)", text, flags=re.M | re.S)
    assert [j for rule, j in submitted if rule == "finetune"] == [first, second], submitted
    assert "JobState=TIMEOUT" in sh("scontrol", "show", "job", first, timeout=15).stdout
    assert 0 < int(resumed.group(1)) < 400_000
    # The tool's log is the second attempt's; the timed-out one's, ending with the step it saved, is in
    # Snakemake's own log (show-failed-logs).
    tool_text = tool_log.read_text(errors="replace")
    assert ATTEMPT.findall(tool_text) == [second], tail(tool_text)
    assert ATTEMPT.findall(text) == [first], tail(text, 5000)
    stopped = re.search(r"stopped by signal 15 at step (\d+)", text)
    assert stopped and stopped.group(1) == resumed.group(1), tail(text, 5000)
    say(f"finetune job {first} timed out at step {resumed.group(1)}; job {second} resumed from there")


def dry_run_resources(workdir: Path, *profiles: Path) -> dict:
    """The resources Snakemake's own dry run gives each rule under the given profiles."""
    write_config(workdir, small_config())
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", REPO / "Snakefile", "--directory", workdir,
           "--configfile", workdir / "config.yaml", "-n"]
    for profile in profiles:
        cmd += ["--profile", profile]
    result = sh(*cmd, timeout=120, cwd=workdir)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    found = {}
    for rule, block in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?:\n\n|\Z)", result.stdout, flags=re.M | re.S):
        match = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        if match:
            pairs = (item.split("=", 1) for item in match.group(1).split(", "))
            found[rule] = {key: int(value) if value.isdigit() else value for key, value in pairs}
    return found


class _Resources(dict):
    __getattr__ = dict.get


def sbatch_flags(resources: dict, threads: int = 1) -> str:
    """What the installed plugin puts on the sbatch line for a job with these resources."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=_Resources(resources), threads=threads, name="job", is_group=lambda: False)
    params = {"run_uuid": "uuid", "slurm_logfile": "log", "comment_str": "c", "account": "", "partition": "",
              "workdir": "/w"}
    return get_submit_command(job, params) + set_gres_string(job)


def test_profiles_ask_gpus_on_the_cluster_and_none_in_ci(tmp_path):
    """No SLURM needed: the profiles' resources, as Snakemake resolves them, and the sbatch flags they give."""
    cluster = dry_run_resources(tmp_path, PROFILE)
    ci = dry_run_resources(tmp_path, PROFILE, CI_PROFILE)
    for rule in ("finetune", "xlrs", "decode"):
        assert cluster[rule]["gpu"] == 1 and cluster[rule]["cpus_per_gpu"] >= 1, cluster[rule]
        flags = sbatch_flags(cluster[rule], threads=2)
        assert "--gpus=1" in flags and "--cpus-per-gpu=" in flags and "--cpus-per-task" not in flags, flags
        assert ci[rule]["gpu"] == 0, ci[rule]
        flags = sbatch_flags(ci[rule], threads=2)
        assert "--gpus" not in flags and "--cpus-per-task=1" in flags and "--mem 500" in flags, flags
    flags = sbatch_flags(cluster["score"], threads=1)
    assert "--gpus" not in flags and "--cpus-per-task=1" in flags and "--mem 8000" in flags, flags
    assert cluster["prepare"]["runtime"] == 120 and ci["prepare"]["runtime"] == 10
    assert "slurm_partition" not in cluster["prepare"] and "slurm_account" not in cluster["prepare"]
