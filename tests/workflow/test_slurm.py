"""The SLURM profile as shipped, on a real single-node SLURM cluster started by the test.

The cluster (munged, slurmctld, slurmd) lives in a temporary directory with its own key,
sockets, state, logs and loopback ports, and is stopped by PID at teardown. Its only
partition has a non-default name and is not the default partition, so a study can only
be submitted if the site profile's `slurm_partition` reaches sbatch. The tiny study then
runs through `--workflow-profile workflow/profiles/slurm --profile <site>` without conda,
once without and once with memory enforcement (OverMemoryKill). Needs the Debian packages
`slurm-wlm` and `munge` (`.ci/run` installs them on CI, where this test never skips).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from snakerun import REPO, TINY, smk, with_

PROFILE = REPO / "workflow" / "profiles" / "slurm"
#: the test cluster's partition: neither a common name nor the default partition
PARTITION = "scorerate_test"
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
#: 3 values of n, one seed, small m and steps: 3 simulation jobs, the aggregation, the report
STUDY = with_(TINY, n=[100, 200, 400], seeds=[0], m=40, steps=6)
#: memory enforcement: sample every task's RSS each second, kill a step over its request
ENFORCE = ["JobAcctGatherType=jobacct_gather/linux", "JobAcctGatherParams=OverMemoryKill",
           "JobAcctGatherFrequency=task=1"]


def which(name: str) -> str | None:
    """Path of a binary, looking in the sbin directories too (daemons live there)."""
    return shutil.which(name, path=SBIN)


def _require_slurm() -> None:
    """Skip without the SLURM/munge binaries, except on CI (there, fail: it must run)."""
    missing = [d for d in DAEMONS if which(d) is None]
    if missing and not os.environ.get("CI"):
        pytest.skip(reason=f"no {', '.join(missing)} (apt-get install slurm-wlm munge)")
    assert not missing, f"CI must provide {missing}: .ci/run installs slurm-wlm and munge"


def free_port() -> int:
    """A loopback TCP port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_memory_mb() -> int:
    """Most (80%) of this machine's memory in MB: what the node offers SLURM."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 8 // 10 // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def slurm_conf(root: Path, extra: list[str]) -> str:
    """A minimal single-node slurm.conf with everything under `root`, no accounting DB."""
    return "\n".join([
        "ClusterName=scoreratetest",
        "SlurmctldHost=localhost",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge.socket'}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "ReturnToService=2",
        # finished jobs stay visible to squeue/scontrol for 5 minutes (the status checks)
        "MinJobAge=300",
        *extra,
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} "
        f"RealMemory={node_memory_mb()} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes=localhost Default=NO MaxTime=INFINITE State=UP",
        "",
    ])


class Cluster:
    """munged + slurmctld + slurmd in `root`; `env` points the SLURM clients at them."""

    def __init__(self, root: Path, extra: list[str]):
        self.root = root
        self.extra = extra
        self.procs: list[subprocess.Popen] = []
        self._outs: list = []
        for sub in ("state", "spool"):
            (root / sub).mkdir(mode=0o700)
        self.conf = root / "slurm.conf"
        self.conf.write_text(slurm_conf(root, extra))
        # The executor's job step unsets every SLURM_* variable before its `srun`, so that
        # srun would look for /etc/slurm/slurm.conf, which a real cluster has and this one
        # must not write: a `srun` first on PATH (exported into the jobs) points it here.
        shim = root / "bin"
        shim.mkdir()
        (shim / "srun").write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec '
                                   f'{which("srun")} "$@"\n')
        (shim / "srun").chmod(0o755)
        self.env = {**os.environ, "SLURM_CONF": str(self.conf),
                    "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"}

    def start(self) -> None:
        """Start the three daemons in the foreground of child processes, then wait (up to
        60 s) until the node is idle. munged gets --force: it refuses some temporary-dir
        permissions (group-writable parents) that do not matter for a test of a minute."""
        key = self.root / "munge.key"
        subprocess.run([which("mungekey"), "--create", f"--keyfile={key}"], check=True,
                       capture_output=True)
        key.chmod(0o400)
        self._spawn([which("munged"), "--foreground", "--force",
                     f"--socket={self.root / 'munge.socket'}", f"--key-file={key}",
                     f"--pid-file={self.root / 'munged.pid'}",
                     f"--log-file={self.root / 'munged.log'}",
                     f"--seed-file={self.root / 'munged.seed'}"], "munged")
        self._wait(lambda: (self.root / "munge.socket").exists(), 20, "munged socket")
        self._spawn([which("slurmctld"), "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._spawn([which("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf)],
                    "slurmd")
        self._wait(lambda: self.sh("sinfo", "-h", "-N", "-o", "%T").strip() == "idle", 60,
                   "the node idle in sinfo")

    def _spawn(self, cmd: list, name: str) -> None:
        out = open(self.root / f"{name}.out", "wb")  # closed in stop()
        self._outs.append(out)
        self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=out,
                                           stderr=subprocess.STDOUT))

    def _wait(self, ok, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            assert not dead, f"{dead} exited:\n{self.logs()}"
            if ok():
                return
            time.sleep(0.5)
        raise AssertionError(f"no {what} after {timeout} s:\n{self.logs()}")

    def sh(self, *cmd: str) -> str:
        """Output of a SLURM client command against this cluster ('' if it fails)."""
        res = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)
        return res.stdout if res.returncode == 0 else ""

    def job(self, jobid: str) -> dict[str, str]:
        """`scontrol show job` of a job (finished ones stay for MinJobAge) as key=value."""
        text = self.sh("scontrol", "show", "job", "-o", jobid)
        return dict(kv.split("=", 1) for kv in text.split() if "=" in kv)

    def logs(self) -> str:
        """The tails of the daemons' logs, for failure messages."""
        out = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log", "munged.out",
                     "slurmctld.out", "slurmd.out"):
            p = self.root / name
            if p.exists():
                out.append(f"--- {name}\n" + "\n".join(p.read_text().splitlines()[-15:]))
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel what is left in the queue, then stop the daemons by PID, newest first."""
        if self.procs and len(self.procs) == 3 and self.procs[1].poll() is None:
            subprocess.run(["scancel", "-p", PARTITION], env=self.env, capture_output=True)
            end = time.monotonic() + 20
            while self.sh("squeue", "-h", "-t", "RUNNING,PENDING,COMPLETING").strip() \
                    and time.monotonic() < end:
                time.sleep(0.5)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        for out in self._outs:
            out.close()


@pytest.fixture
def cluster(request, tmp_path_factory):
    """A running single-node cluster; `request.param` holds extra slurm.conf lines."""
    _require_slurm()
    # a short directory: munge and slurm keep socket paths under 108 characters
    root = Path(tmp_path_factory.mktemp("slurm", numbered=True))
    c = Cluster(root, getattr(request, "param", []))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def site_profile(directory: Path, squeue: bool = True) -> Path:
    """A site's profile, as a user would write one: partition, no account, and with
    `squeue` the status command (else left out, as in the README's recipe)."""
    directory.mkdir()
    profile = {
        "default-resources": {"slurm_partition": PARTITION},
        "slurm-no-account": True,
        # poll soon: the test's jobs take seconds
        "slurm-init-seconds-before-status-checks": 2,
    }
    if squeue:  # no accounting database here, so sacct has nothing to say: ask squeue
        profile["slurm-status-command"] = "squeue"
    (directory / "config.v8+.yaml").write_text(yaml.safe_dump(profile))
    return directory


def submitted(output: str) -> dict[str, list[str]]:
    """SLURM job ids per rule, from Snakemake's output: each 'rule X:' block names its
    Snakemake jobid, and 'Job K has been submitted with SLURM jobid N' follows later."""
    rule_of: dict[str, str] = {}
    for block in re.split(r"^\s*(?=(?:local)?rule \w+:)", output, flags=re.M)[1:]:
        head = re.match(r"(local)?rule (\w+):", block)
        if m := re.search(r"^\s*jobid: (\d+)$", block, re.M):
            rule_of[m.group(1)] = ("local " if head.group(1) else "") + head.group(2)
    out: dict[str, list[str]] = {}
    for job, slurm_id in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)",
                                    output):
        out.setdefault(rule_of[job], []).append(slurm_id)
    return out


def run_study(cluster: Cluster, work: Path,
              squeue: bool = True) -> tuple[subprocess.CompletedProcess, dict]:
    """The tiny study through the shipped workflow profile and a site profile (`squeue`:
    whether it names squeue as the status command)."""
    site = site_profile(work / "site", squeue)
    saved = dict(os.environ)
    os.environ.update(cluster.env)
    # the jobs run in `work`: a relative PYTHONPATH (PYTHONPATH=src) must not change meaning
    if os.environ.get("PYTHONPATH"):
        os.environ["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p)
    try:
        res = smk(work, STUDY, "--workflow-profile", str(PROFILE), "--profile", str(site),
                  "--slurm-keep-successful-logs")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    logs = "".join(f"--- {p}\n{p.read_text()}" for p in work.rglob("*.log")
                   if p.stat().st_size < 50_000)
    assert res.returncode == 0, res.stdout[-8000:] + logs[-8000:] + cluster.logs()
    return res, submitted(res.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [[], ENFORCE], ids=["plain", "memory_enforced"],
                         indirect=True)
def test_tiny_study_through_slurm(cluster, tmp_path):
    """Every heavy job goes through sbatch into the site's partition with the rule's own
    (attempt 1) memory, the trivial rules stay local, and the report is written."""
    # the partition is not the default one: a job that does not name it is refused
    assert subprocess.run(["sbatch", "--wrap", "true"], env=cluster.env,
                          capture_output=True).returncode != 0
    # the memory limits are on exactly where the parametrization says so
    assert ("OverMemoryKill" in cluster.sh("scontrol", "show", "config")) == bool(cluster.extra)
    work = tmp_path / "wf"
    work.mkdir()
    res, jobs = run_study(cluster, work)
    report = work / "results" / "report"
    for name in ("index.html", "rates.csv", "summary.md"):
        assert (report / name).stat().st_size > 0
    n_runs = len(STUDY["n"]) * len(STUDY["seeds"])
    assert {r: len(ids) for r, ids in jobs.items()} == {"run_job": n_runs, "aggregate": 1,
                                                        "report": 1}, res.stdout
    for rule in ("study_config", "check_stores", "all"):
        assert re.search(rf"^\s*localrule {rule}:", res.stdout, re.M), res.stdout
    # what SLURM itself recorded for each job (kept for MinJobAge after the end)
    mems = {}
    for rule, ids in jobs.items():
        for jobid in ids:
            info = cluster.job(jobid)
            assert info.get("JobState") == "COMPLETED", (rule, info)
            assert info["Partition"] == PARTITION
            mems.setdefault(rule, set()).add(info["MinMemoryNode"])
    # run_mem_mb(attempt=1): scorerate.config.sizing's request for each job of the study (the
    # repository's config.yaml under the test's config, as Snakemake merges them);
    # aggregate and report ask for 2000 MB (their rules' resources)
    from scorerate.config.sizing import resource_request, study_job_estimate

    cfg = {**yaml.safe_load((REPO / "config.yaml").read_text()), **STUDY}
    want = {f"{resource_request(study_job_estimate(cfg, n, d))[0]}M"
            for n in STUDY["n"] for d in STUDY["d"]}
    assert mems == {"run_job": want, "aggregate": {"2000M"}, "report": {"2000M"}}, mems
    # nothing of the cluster run landed in the checkout
    assert not (REPO / ".snakemake" / "slurm_logs").exists()


@pytest.mark.slow
def test_without_accounting_the_readme_recipe_runs_as_printed(cluster, tmp_path):
    """The README's site profile leaves `slurm-status-command: squeue` commented out. Here
    sacct exists but cannot answer (no accounting database), which the executor does not
    notice: it waited for finished jobs forever. The workflow asks squeue instead, says
    so, and the study finishes (smk's subprocess timeout guards the suite against the old
    hang; it asserts no duration)."""
    sacct = subprocess.run(["sacct", "-X", "-n", "-j", "1"], env=cluster.env,
                           capture_output=True, text=True, timeout=60)
    assert sacct.returncode != 0, sacct  # the precondition: sacct cannot answer here
    work = tmp_path / "wf"
    work.mkdir()
    res, jobs = run_study(cluster, work, squeue=False)
    assert "job states come from squeue" in res.stdout, res.stdout
    assert len(jobs["run_job"]) == len(STUDY["n"]) * len(STUDY["seeds"]), res.stdout
    for name in ("index.html", "rates.csv", "summary.md"):
        assert (work / "results" / "report" / name).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [ENFORCE], ids=["memory_enforced"], indirect=True)
def test_memory_enforcement_is_live(cluster):
    """The enforced cluster really kills a job over its request (else the study finishing
    under it would prove nothing): 300 MB written into a 50 MB job."""
    code = "import time; b = b'x' * (300 << 20); time.sleep(30)"
    out = cluster.sh("sbatch", "--parsable", "-p", PARTITION, "--mem=50", "-o", "/dev/null",
                     "--wrap", f"python3 -c \"{code}\"")
    jobid = out.strip().split(";")[0]
    assert jobid, cluster.logs()
    end = time.monotonic() + 60
    while (state := cluster.job(jobid).get("JobState")) in ("PENDING", "RUNNING", None,
                                                            "COMPLETING"):
        assert time.monotonic() < end, cluster.job(jobid)
        time.sleep(1)
    # SLURM 22.05 reports the SIGKILLed batch step as FAILED, later ones as OUT_OF_MEMORY
    assert state in ("FAILED", "OUT_OF_MEMORY"), cluster.job(jobid)
    assert f"StepId={jobid}.batch exceeded memory limit" in (
        cluster.root / "slurmd.log").read_text(), cluster.logs()


def test_profile_leaves_site_choices_alone():
    """Nothing in the workflow profile that would override a site profile or the command
    line: no partition/account, no default-resources (they would replace the site's), no
    fixed set-resources (they would freeze run_job's per-attempt memory), no forced conda."""
    prof = yaml.safe_load((PROFILE / "config.v8+.yaml").read_text())
    assert prof["executor"] == "slurm"
    for key in ("default-resources", "set-resources", "set-threads",
                "software-deployment-method", "sdm", "use-conda"):
        assert key not in prof, key
    text = (PROFILE / "config.v8+.yaml").read_text()
    assert not re.search(r"^\s*slurm_(partition|account)\s*:", text, re.M)
    assert prof["retries"] >= 1


@pytest.mark.slow
def test_conda_is_opt_in(tmp_path, monkeypatch):
    """The shipped profile plans the study without conda; `--sdm conda` turns it on. A
    `conda` first on PATH that only records its calls tells which run asked for it."""
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "conda.calls"
    (fake / "conda").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 3\n')
    (fake / "conda").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "wf"
    work.mkdir()
    res = smk(work, TINY, "-n", "--workflow-profile", str(PROFILE))
    assert res.returncode == 0 and "run_job" in res.stdout, res.stdout
    assert not calls.exists(), calls.read_text()
    res = smk(work, TINY, "-n", "--workflow-profile", str(PROFILE), "--sdm", "conda")
    assert res.returncode != 0 and calls.read_text().strip(), res.stdout
