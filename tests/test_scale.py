"""sage_dspy/scale without a cluster: the pipeline imports no Ray, the split of calls in flight, `--ray`'s optional
address, which seeds a dead worker takes with it, an actor's work (index shipped, program built, a seed run) in
this process, and one cluster held across the runs of a session. The cluster itself: tests/test_ray.py."""

import contextlib
import json
import subprocess
import sys

import pytest

from sage_dspy.cli.options import with_optional_values
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.scheduler import run_seed
from sage_dspy.runs.seeds import draw_seeds
from sage_dspy.scale import worker as worker_module
from sage_dspy.scale.casualties import ALONE_DEATHS, SUSPECT_DEATHS, Casualties
from sage_dspy.scale.ray_seeds import shares
from sage_dspy.search.index import SearchIndex, is_index_of, pack_index, unpack_index
from sage_dspy.search.passages import corpus_fingerprint


def test_the_pipeline_without_ray_imports_nothing_from_ray():
    code = ("import sys; import sage_dspy; from sage_dspy.cli.app import app; from typer.testing import CliRunner; "
            "result = CliRunner().invoke(app, ['generate', '--help']); assert result.exit_code == 0, result.output; "
            "assert '--ray' in result.output; "
            "import sage_dspy.runs.generate, sage_dspy.scale.ray_seeds; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("total, actors, expected", [
    (512, 2, [256, 256]), (7, 2, [4, 3]), (1, 4, [1]), (1024, 3, [342, 341, 341]), (3, 3, [1, 1, 1])])
def test_calls_in_flight_are_split_across_actors(total, actors, expected):
    assert shares(total, actors) == expected
    assert sum(shares(total, actors)) == total


@pytest.mark.parametrize("typed, parsed", [
    (["generate", "--ray"], ["generate", "--ray", "local"]),
    (["generate", "--ray", "--seeds", "3"], ["generate", "--ray", "local", "--seeds", "3"]),
    (["generate", "--ray", "auto", "--seeds", "3"], ["generate", "--ray", "auto", "--seeds", "3"]),
    (["generate", "--ray", "ray://10.0.0.5:10001"], ["generate", "--ray", "ray://10.0.0.5:10001"]),
    (["generate", "--seeds", "3"], ["generate", "--seeds", "3"]),
])
def test_a_bare_ray_option_means_a_local_cluster(typed, parsed):
    assert with_optional_values(typed) == parsed


def test_a_seed_lost_once_runs_again_with_the_others_and_a_seed_that_keeps_killing_its_worker_fails():
    casualties = Casualties()
    # a node lost: every seed on it runs again, among the others
    assert casualties.died("innocent", ran_alone=False) is False
    assert not casualties.must_run_alone("innocent")
    # in flight at a second death: it runs alone from now on, and is failed only for deaths while alone
    for _ in range(SUSPECT_DEATHS):
        assert casualties.died("culprit", ran_alone=False) is False
    assert casualties.must_run_alone("culprit")
    assert [casualties.died("culprit", ran_alone=True) for _ in range(ALONE_DEATHS)] == [False] * (
        ALONE_DEATHS - 1) + [True]
    reason = casualties.reason("culprit", "ActorDiedError: the worker was killed (SIGKILL)")
    assert f"died {SUSPECT_DEATHS + ALONE_DEATHS} times" in reason and f"{ALONE_DEATHS} of them running it alone" in reason
    assert "SIGKILL" in reason
    # an innocent that shared the culprit's worker twice runs alone once, and passes
    casualties.died("innocent", ran_alone=False)
    assert casualties.must_run_alone("innocent")


def test_an_index_is_shipped_as_files_and_unpacked_once(tmp_path, tiny_passages):
    fingerprint = corpus_fingerprint(tiny_passages)
    built = tmp_path / "driver" / fingerprint
    SearchIndex.build(tiny_passages).save(built)
    files = pack_index(built)
    folder = unpack_index(files, tmp_path / "node", fingerprint)
    assert folder == tmp_path / "node" / fingerprint and is_index_of(folder, fingerprint)
    stamp = folder.stat().st_mtime_ns
    assert unpack_index(files, tmp_path / "node", fingerprint) == folder  # found complete: not written again
    assert folder.stat().st_mtime_ns == stamp
    assert not list((tmp_path / "node").glob(".*"))  # no staging folder left behind
    assert SearchIndex.load(folder).search("Harbor Bridge designer")[0].passage.id == "p-bridge"


def test_an_actor_without_the_index_folder_gets_it_shipped_and_runs_a_seed_as_a_local_run(tmp_path, monkeypatch,
                                                                                          tiny_passages):
    """The actor's class in this process: the driver's folder unreadable, the index comes as files; the record
    is the one run_seed gives over the driver's program."""
    monkeypatch.setattr(worker_module, "NODE_INDEXES", tmp_path / "node")
    config = GenerateConfig(k=2, rounds=1, index_root=tmp_path / "driver")
    fingerprint = corpus_fingerprint(tiny_passages)
    index = SearchIndex.open(tiny_passages, root=tmp_path / "driver")
    unseen = str(tmp_path / "elsewhere" / fingerprint)
    with pytest.raises(FileNotFoundError, match="cannot read the index folder"):
        worker_module.SeedWorker(config, 2, None, False, unseen, fingerprint, shipped=[])
    actor = worker_module.SeedWorker(config, 2, None, False, unseen, fingerprint,
                                     shipped=[pack_index(tmp_path / "driver" / fingerprint)])
    assert is_index_of(tmp_path / "node" / fingerprint, fingerprint)
    [task] = draw_seeds(list(tiny_passages), 1, (2, 3), random_seed=0)
    record = actor.run(0, task, actor.lms.ids())

    from sage_dspy.runs.program import build_program

    local = run_seed(build_program(config, index, actor.lms), task, actor.lms.ids())
    assert json.dumps({**record, "seconds": 0}) == json.dumps({**local, "seconds": 0})
    assert record["lm_calls"] > 0


# generate's and evaluate's --ray: what each command is typed with before it, and what it would create.
RAY_COMMANDS = {"generate": (["generate", "--seeds", 2, "--no-track", "--out", "run"], "run"),
                "evaluate": (["evaluate", "--seeds", 2, "--no-track"], "artifacts")}


@pytest.mark.parametrize("command", RAY_COMMANDS)
def test_ray_asked_for_but_not_installed_is_one_line_before_anything_runs(workdir, monkeypatch, command):
    from cli_helpers import assert_one_line_error, invoke
    from sage_dspy.scale import ray_seeds

    real = ray_seeds.importlib.util.find_spec
    monkeypatch.setattr(ray_seeds.importlib.util, "find_spec", lambda name: None if name == "ray" else real(name))
    typed, created = RAY_COMMANDS[command]
    assert_one_line_error(invoke(*typed, "--ray"), "pip install 'sage-dspy[ray]'")
    assert not (workdir / created).exists()


class _ActorDied(Exception):
    pass


class _Cluster:
    """A deterministic stand-in for the few Ray calls scale.ray_seeds' loop makes (`wait`, `get`,
    `exceptions.RayActorError`): seeds finish oldest first, and a seed named "poison" kills its actor as it
    runs, taking every seed in flight there with it (a native crash, an OOM: what no test can stage for real)."""

    class exceptions:
        RayActorError = _ActorDied

    def __init__(self):
        self.order, self.lost, self.ran = [], set(), []

    def actor(self, name: str):
        cluster = self

        def method(*task):
            def remote(*args):
                ref = (name, args[0] if args else None, args[1] if args else "pid", len(cluster.order))
                cluster.order.append(ref)
                return ref
            return type("Method", (), {"remote": staticmethod(remote)})

        return type("Actor", (), {"run": method(), "pid": method()})()

    def wait(self, refs, num_returns=1):
        ref = min(refs, key=lambda r: r[3])
        if ref[2] == "poison" and ref not in self.lost:  # its actor dies with all it was running (not its restart)
            self.lost |= {other for other in refs if other[0] == ref[0]}
        return [ref], []

    def get(self, ref):
        if ref in self.lost:
            raise _ActorDied(f"ActorDiedError: the actor {ref[0]} died (SIGKILL)")
        if ref[2] == "pid":
            return 1
        self.ran.append(ref[2])
        return {"seed_id": ref[2], "lm_calls": 1}


def test_a_seed_that_keeps_killing_its_actor_is_failed_alone_and_every_other_seed_is_recorded(monkeypatch):
    from sage_dspy.runs.budget import CallBudget
    from sage_dspy.scale import ray_seeds

    monkeypatch.setattr(ray_seeds, "key_of", str)
    monkeypatch.setattr(ray_seeds, "record_for", lambda task, prediction, lm_ids, **failed: {"seed_id": task,
                                                                                              **failed})
    cluster = _Cluster()
    slots = [ray_seeds.Slot(cluster.actor("a"), 3), ray_seeds.Slot(cluster.actor("b"), 3)]
    pool = ray_seeds._Pool(cluster, slots, {})
    seeds = ["s0", "s1", "poison", "s3", "s4", "s5", "s6", "s7"]
    records = list(pool.run(seeds[0], iter(seeds[1:]), CallBudget(None)))
    assert sorted(record["seed_id"] for record in records) == sorted(seeds)  # each seed once, none lost
    [failed] = [record for record in records if record.get("error")]
    assert failed["seed_id"] == "poison" and failed["error_kind"] == "WorkerDied"
    assert "running it alone" in failed["error"] and "SIGKILL" in failed["error"]
    assert all(not record.get("error") for record in records if record["seed_id"] != "poison")
    assert pool.reruns >= 2 and "poison" not in cluster.ran


def test_no_new_seed_starts_once_the_budget_is_spent_and_those_started_finish():
    from sage_dspy.runs.budget import CallBudget
    from sage_dspy.scale import ray_seeds

    cluster = _Cluster()
    pool = ray_seeds._Pool(cluster, [ray_seeds.Slot(cluster.actor("a"), 2)], {})
    records = list(pool.run("s0", iter(["s1", "s2", "s3"]), CallBudget(1)))
    assert [record["seed_id"] for record in records] == ["s0", "s1"]  # both had started before it was spent


@pytest.mark.parametrize("command", RAY_COMMANDS)
@pytest.mark.parametrize("address", ["nonsense", "ray://", "http://head:8265", "head"])
def test_a_ray_address_of_no_known_form_is_one_line_before_anything_runs(workdir, address, command):
    from cli_helpers import assert_one_line_error, invoke

    typed, created = RAY_COMMANDS[command]
    assert_one_line_error(invoke(*typed, "--ray", address), "is no Ray address")
    assert not (workdir / created).exists()


@pytest.mark.parametrize("address, expected", [("local", ""), ("auto", "auto"), ("10.0.0.5:6379", "10.0.0.5:6379"),
                                               ("ray://head.example:10001", "ray://head.example:10001")])
def test_ray_addresses_of_the_known_forms_are_taken(address, expected):
    from sage_dspy.cli.options import ray_engine

    assert ray_engine(address).address == expected


class _StartedCluster(_Cluster):
    """`_Cluster` plus what starting a run's actors and stopping the cluster need; `events` says what happened
    to the cluster, in order."""

    class exceptions(_Cluster.exceptions):
        RayError = _ActorDied

    def __init__(self):
        super().__init__()
        self.events, self.actors = [], 0

    def cluster_resources(self):
        return {"CPU": 2}

    def remote(self, **options):
        cluster = self

        class Remote:
            def __init__(self, worker_class):
                pass

            def options(self, **options):
                return self

            def remote(self, *arguments):
                cluster.actors += 1
                return cluster.actor(f"actor{cluster.actors}")
        return Remote

    def get(self, ref):
        return [_Cluster.get(self, one) for one in ref] if isinstance(ref, list) else _Cluster.get(self, ref)

    def kill(self, actor, no_restart):
        self.events.append("kill")

    def shutdown(self):
        self.events.append("shutdown")


@pytest.mark.parametrize("in_session, expected", [
    (False, ["start", "kill", "kill", "shutdown", "start", "kill", "kill", "shutdown"]),
    (True, ["start", "kill", "kill", "kill", "kill", "shutdown"]),
])
def test_a_session_starts_one_cluster_for_all_its_runs_and_stops_it_at_its_end(monkeypatch, in_session, expected):
    from sage_dspy.runs.budget import CallBudget
    from sage_dspy.scale.ray_seeds import RayEngine

    cluster = _StartedCluster()
    monkeypatch.setattr(RayEngine, "connect", lambda engine: (cluster.events.append("start"), (cluster, True))[1])
    config = GenerateConfig(retriever="http://127.0.0.1:9/retrieve")  # no index to hand the actors
    engine = RayEngine()
    with engine.session() if in_session else contextlib.nullcontext():
        for _ in range(2):  # two runs, as evaluate's recipes: each with actors of its own
            with engine.seed_runner(config, [], None, False) as run_seeds:
                done = list(run_seeds(None, ["s0", "s1", "s2"], {}, 2, CallBudget(None)))
                assert [record["seed_id"] for record in done] == ["s0", "s1", "s2"]
    assert cluster.events == expected
