"""runtime/api: the state tables (legal and illegal moves), the shim's and runtimed's client
halves, and the exit-code <-> error-class mapping. Pure: no root, no processes."""

from __future__ import annotations

import json
import re

import pytest

from runtime import errors
from runtime.api import runtimed, shim, states, topics


# -- state machines -------------------------------------------------------------------------
class Obj:
    def __init__(self, status):
        self.status = status


LEGAL = {
    states.LOWLEVEL: [("creating", "created"), ("created", "running"), ("running", "paused"),
                      ("paused", "running"), ("running", "stopped"), ("created", "deleted"),
                      ("stopped", "deleted")],
    states.SHIM: [("new", "creating"), ("creating", "created"), ("creating", "new"), ("created", "starting"),
                  ("starting", "running"), ("starting", "created"), ("running", "paused"),
                  ("paused", "running"), ("paused", "stopped"), ("created", "stopped"), ("stopped", "deleted")],
    states.RUNTIMED: [("creating", "created"), ("unknown", "running"), ("created", "running"),
                      ("running", "paused"), ("paused", "running"), ("running", "stopped"),
                      ("stopped", "deleting"), ("deleting", "unknown"), ("creating", "unknown")],
    states.DAEMON: [("created", "running"), ("running", "paused"), ("paused", "running"), ("running", "exited"),
                    ("exited", "restarting"), ("restarting", "running"), ("restarting", "exited"),
                    ("exited", "running"), ("exited", "removing"), ("running", "removing")],
}
ILLEGAL = {
    states.LOWLEVEL: [("stopped", "running"), ("running", "deleted"), ("paused", "deleted"),
                      ("deleted", "created"), ("running", "created")],
    states.SHIM: [("new", "running"), ("stopped", "running"), ("deleted", "new"), ("running", "deleted"),
                  ("creating", "running"), ("starting", "stopped")],
    states.RUNTIMED: [("stopped", "running"), ("running", "created"), ("deleting", "running"),
                      ("stopped", "unknown"), ("paused", "created")],
    states.DAEMON: [("removing", "running"), ("created", "paused"), ("exited", "paused"),
                    ("created", "restarting"), ("dead", "running")],
}


@pytest.mark.parametrize("machine,current,wanted",
                         [(m, c, w) for m, moves in LEGAL.items() for c, w in moves])
def test_legal_moves_move(machine, current, wanted):
    obj = Obj(current)
    assert machine.move(obj, wanted) == wanted
    assert obj.status == wanted


@pytest.mark.parametrize("machine,current,wanted",
                         [(m, c, w) for m, moves in ILLEGAL.items() for c, w in moves])
def test_illegal_moves_raise_naming_both_states_and_change_nothing(machine, current, wanted):
    obj = Obj(current)
    with pytest.raises(errors.FailedPrecondition) as e:
        machine.move(obj, wanted, what="thing x1")
    assert obj.status == current
    assert e.value.message == f"thing x1 is {current}: cannot become {wanted}"
    assert e.value.fields["status"] == current and e.value.fields["wanted"] == wanted
    assert e.value.exit_code == 5 and e.value.http_status == 409


@pytest.mark.parametrize("machine", list(LEGAL))
def test_staying_is_always_allowed_and_every_state_has_a_row(machine):
    for state in machine.states:
        assert machine.can(state, state)
    assert machine.initial in machine.states
    assert set(machine.states) >= {w for nexts in machine.table.values() for w in nexts}


def test_sources_narrow_an_operation_and_message_and_attr_are_kept():
    # runc start: only from created, although paused -> running (resume) is in the table
    assert states.LOWLEVEL.can("paused", "running")
    assert not states.LOWLEVEL.can("paused", "running", sources=("created",))
    with pytest.raises(errors.FailedPrecondition, match="^cannot start an already running container$"):
        states.LOWLEVEL.check("paused", "running", sources=("created",),
                              message="cannot start an already running container")

    class C:
        Status = "created"
    states.DAEMON.move(C, "running", attr="Status")
    assert C.Status == "running"


def test_a_table_naming_a_state_without_a_row_is_refused():
    with pytest.raises(ValueError, match="nowhere"):
        states.Machine("t", "a", {"a": ("nowhere",)})


def test_daemon_state_started_clears_the_last_run():
    from runtime.daemon.model import State
    st = State(Status="exited", ExitCode=137, Error="boom", OOMKilled=True, FinishedAt=5)
    new = st.started(42, 7)
    assert (new.Status, new.Pid, new.StartedAt, new.ExitCode, new.Error, new.OOMKilled) == (
        "running", 42, 7, 0, "", False)
    with pytest.raises(errors.FailedPrecondition):
        State(Status="removing").started(1, 1)


# -- exit codes <-> error classes -------------------------------------------------------------
def test_exit_codes_map_both_ways_for_every_class():
    for cls in errors.CLASSES:
        err = cls("m")
        back = errors.error_for_exit_code(errors.exit_code_for(err), "m", id="x")
        assert type(back) is cls and back.message == "m" and back.fields == {"id": "x"}
        assert type(errors.from_dict(err.to_dict())) is cls
    assert type(errors.error_for_exit_code(0, "m")) is errors.CapsizeError
    assert type(errors.error_for_exit_code(137, "m")) is errors.CapsizeError
    assert len({cls.exit_code for cls in errors.CLASSES}) == len(errors.CLASSES)


# -- topics ---------------------------------------------------------------------------------
def test_topics_are_containerd_style_and_the_exit_payload_has_one_shape():
    assert len(set(topics.TOPICS)) == len(topics.TOPICS)
    assert all(re.fullmatch(r"/(containers|images|tasks)/[a-z]+(-[a-z]+)?", t) for t in topics.TOPICS)
    assert list(topics.task_exit("c1", 7, 0, "T")) == ["container_id", "id", "pid", "exit_status", "exited_at"]
    assert topics.task_exit("c1", 7, 137, "T", "cleanup-kill")["exit_source"] == "cleanup-kill"
    from runtime.highlevel.events import TOPICS
    assert TOPICS == topics.TOPICS


# -- the shim's protocol --------------------------------------------------------------------
def test_shim_calls_number_requests_and_decode_replies():
    calls = shim.Calls()
    rid, line = calls.request("kill", {"signal": 9})
    rid2, _ = calls.request("state", {})
    assert (rid, rid2) == (1, 2) and line.endswith(b"\n")
    assert json.loads(line) == {"id": 1, "method": "kill", "params": {"signal": 9}}
    assert calls.parse(b"not json") is None and calls.parse(b"[1]") is None
    assert calls.result({"id": 1, "result": {"pid": 3}}) == {"pid": 3}
    assert calls.result({"id": 1, "result": None}) == {}
    with pytest.raises(errors.NotFound, match="gone"):
        calls.result({"id": 1, "error": errors.NotFound("gone").to_dict()})
    assert json.loads(shim.reply_line({"id": None, "result": {}})) == {"id": None, "result": {}}
    assert set(shim.SERIALIZED) <= set(shim.METHODS) and set(shim.QUIET) <= set(shim.METHODS)


def test_the_shim_server_serves_exactly_the_contract_methods():
    from runtime.shim import server
    assert server.METHODS is shim.METHODS and server.MAX_LINE == shim.MAX_LINE


# -- runtimed's routes ----------------------------------------------------------------------
def _route_of(call: runtimed.Call):
    for method, path, name in runtimed.ROUTES:
        pattern = "^" + re.sub(r"\{[a-z]+\}", "[^/]+", path) + "$"
        if method == call.method and re.match(pattern, call.path):
            return name
    return None


def test_every_request_the_clients_build_is_a_route_of_the_server():
    rq = runtimed.Requests("moby")
    built = [rq.version(), rq.namespaces(), rq.gc(), rq.events(), rq.images(), rq.image("busybox:latest"),
             rq.import_image(), rq.export_image("a/b:c"), rq.delete_image("x", sync=True),
             rq.create_container("c", "i"), rq.containers(), rq.container("c"), rq.update_container("c"),
             rq.delete_container("c"), rq.tasks(), rq.task("c"), rq.create_task("c"), rq.start_task("c"),
             rq.kill_task("c"), rq.wait_task("c"), rq.pause_task("c"), rq.resume_task("c"), rq.pids("c"),
             rq.delete_task("c", force=True), rq.exec_process("c", "e", {"args": ["true"]}),
             rq.exec_state("c", "e"), rq.resize("c", 24, 80, "e"), rq.snapshot_mounts("c"),
             rq.commit_image(None, "c", {}), rq.tag_image("a", "b"), rq.snapshot_changes("c"),
             rq.snapshot_export("c"), rq.update_task("c", {"pids": {"limit": 5}}),
             rq.pull_image("127.0.0.1:5000/a:b"), rq.push_image("a:b"), rq.registry_login("127.0.0.1:5000", {})]
    names = [_route_of(c) for c in built]
    assert None not in names, built[names.index(None)]
    assert sorted(set(names)) == sorted(name for _, _, name in runtimed.ROUTES)
    assert rq.export_image("a/b:c").path == "/v1/namespaces/moby/images/a%2Fb%3Ac/export"
    assert rq.delete_task("c", force=True).query == [("force", "1")] and rq.delete_task("c").query == []
    assert rq.import_image("rootfs", "n", {"k": "v"}).query == [("format", "rootfs"), ("name", "n"),
                                                                  ("label", "k=v")]
    assert rq.events(["/tasks/exit"], ["moby"], 0).query == [("topic", "/tasks/exit"), ("namespace", "moby"),
                                                             ("since", "0")]


def test_the_server_registers_every_route_of_the_contract_in_its_order():
    from runtime.highlevel import api

    class Daemon:
        images = containers = tasks = bus = object()
    router = api.build(Daemon())
    assert [(m, "/" + "/".join(segs), h.__name__) for m, segs, h in router.routes] == list(runtimed.ROUTES)


def test_error_replies_become_the_shared_classes():
    err = runtimed.error_from_reply(409, "Conflict", json.dumps(errors.AlreadyExists("dup", id="c").to_dict()).encode())
    assert type(err) is errors.AlreadyExists and err.fields == {"id": "c"}
    plain = runtimed.error_from_reply(502, "Bad Gateway", b"<html>")
    assert type(plain) is errors.CapsizeError and plain.fields == {"status": 502}
    assert plain.message == "capsize-runtimed answered 502 Bad Gateway: <html>"
