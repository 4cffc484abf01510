"""`dialer doctor` against the simulated PBX over real AMI/TCP, configured right and configured wrong."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from typer.testing import CliRunner

from cli import app
from dialer.doctor import checks
from dialer.pbx_sim.server import PbxConfig, PbxUser, SimulatedPbx
from dialer.pbx_sim.scenarios import CustomerBook
from dialer.web.server import ServerThread
from tests.daemon_harness import PbxThread, free_port

pytestmark = pytest.mark.timeout(120)

RIGHT_WRITE = "originate,call,agent,reporting"


def run_doctor(db, pbx_config: PbxConfig, *extra: str, **env: str) -> tuple[int, dict[str, dict]]:
    pbx = SimulatedPbx(pbx_config, CustomerBook())
    with PbxThread(pbx) as thread:
        environment = {"DIALER_DB_URL": db.engine.url.render_as_string(hide_password=False),
                       "DIALER_AMI_PORT": str(thread.port), "DIALER_AMI_SECRET": "dialer-secret",
                       "DIALER_DIAL_NUMBER_FORMAT": "e164", **env}
        result = CliRunner().invoke(app, ["doctor", "--json", *extra], env=environment)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, {f["check"]: f for f in json.loads(result.stdout)}


def user(write: str = RIGHT_WRITE) -> PbxUser:
    return PbxUser.from_conf("dialer", "dialer-secret", read="call,agent", write=write)


def test_given_a_right_setup_when_doctor_runs_then_every_required_check_passes_and_exit_is_0(sqlite_db):
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),)))
    assert code == 0, found
    for name in ("database", "ami login", "ami write classes", "operators' queue", "originate context",
                 "answered destination", "caller id", "clock skew", "ami least privilege"):
        assert found[name]["status"] == "ok", found[name]
    assert "+7" in found["originate context"]["detail"] and "_+X." in found["originate context"]["detail"]
    assert found["crm endpoint"]["status"] == "skip"


def test_given_a_missing_queue_when_doctor_runs_then_it_fails_naming_the_queue(sqlite_db):
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),), queue="support"))
    assert code == 1
    assert found["operators' queue"]["status"] == "fail" and "'operators'" in found["operators' queue"]["detail"]


def test_given_a_queue_without_members_when_doctor_runs_then_it_fails(sqlite_db):
    pbx = SimulatedPbx(PbxConfig(users=(user(),)), CustomerBook(), operators=[])
    with PbxThread(pbx) as thread:
        result = CliRunner().invoke(app, ["doctor", "--json"], env={
            "DIALER_DB_URL": sqlite_db.engine.url.render_as_string(hide_password=False),
            "DIALER_AMI_PORT": str(thread.port), "DIALER_AMI_SECRET": "dialer-secret"})
    found = {f["check"]: f for f in json.loads(result.stdout)}
    assert result.exit_code == 1 and "no members" in found["operators' queue"]["detail"]


def test_given_a_missing_trunk_context_when_doctor_runs_then_it_fails(sqlite_db):
    plan = (("dialer-outbound", (("s", "Queue"),)),)
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),), dialplan=plan))
    assert code == 1
    assert found["originate context"]["status"] == "fail"
    assert "[dialer-trunk]" in found["originate context"]["detail"]
    assert found["answered destination"]["status"] == "ok"


def test_given_a_trunk_without_a_pattern_for_the_number_format_then_it_says_calls_would_be_invalid(sqlite_db):
    plan = (("dialer-trunk", (("_8X.", "Dial"),)), ("dialer-outbound", (("s", "Queue"),)))
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),), dialplan=plan))
    assert code == 1
    assert "invalid number" in found["originate context"]["detail"]
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),), dialplan=plan), DIALER_DIAL_NUMBER_FORMAT="national")
    assert code == 0 and found["originate context"]["status"] == "ok"


def test_given_a_missing_answered_destination_when_doctor_runs_then_it_fails(sqlite_db):
    plan = (("dialer-trunk", (("_+X.", "Dial"),)),)
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),), dialplan=plan))
    assert code == 1 and found["answered destination"]["status"] == "fail"


def test_given_too_few_write_classes_when_doctor_runs_then_it_names_the_missing_actions(sqlite_db):
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user("call,reporting"),)))
    assert code == 1
    detail = found["ami write classes"]["detail"]
    assert "Originate (originate)" in detail and "QueuePause (agent)" in detail and "Hangup" not in detail


def test_given_too_many_write_classes_when_doctor_runs_then_it_warns_but_passes(sqlite_db):
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user("all"),)))
    assert code == 0
    assert found["ami least privilege"]["status"] == "warn"
    assert found["ami least privilege"]["detail"].endswith("command, config, system")


def test_given_a_wrong_secret_when_doctor_runs_then_login_fails(sqlite_db):
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),), auth_failure_delay=0.01),
                             DIALER_AMI_SECRET="wrong")
    assert code == 1 and found["ami login"]["status"] == "fail"
    assert "wrong" not in json.dumps(found), "the secret is never printed"


def test_given_an_unmigrated_database_when_doctor_runs_then_it_fails(tmp_path):
    from kernel.db.engine import Database
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    code, found = run_doctor(db, PbxConfig(users=(user(),)))
    assert code == 1 and "dialer init" in found["database"]["fix"]


def test_given_a_crm_when_doctor_runs_then_reachability_and_the_opt_in_dry_run_are_checked(sqlite_db):
    crm = FastAPI()
    seen = []

    @crm.api_route("/outcomes", methods=["OPTIONS", "POST"])
    async def outcomes(request: Request):
        seen.append((request.method, request.headers.get("x-dialer-dry-run"),
                     (await request.body()).decode() if request.method == "POST" else ""))
        return JSONResponse({}, status_code=204 if request.method == "OPTIONS" else 200)

    with ServerThread(crm) as server:
        env = {"DIALER_CRM_WEBHOOK_URL": f"{server.url}/outcomes"}
        code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),)), **env)
        assert code == 0 and found["crm endpoint"]["status"] == "ok"
        assert [m for m, *_ in seen] == ["OPTIONS"]
        code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),)), "--crm-dry-run", **env)
        assert code == 0 and seen[-1][0] == "POST" and seen[-1][1] == "1" and '"dry_run":true' in seen[-1][2]
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),)),
                             DIALER_CRM_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/x")
    assert code == 1 and found["crm endpoint"]["status"] == "fail"


def test_clock_skew_rule():
    assert checks.judge_clock_skew(0.4).status is checks.Status.OK
    skewed = checks.judge_clock_skew(-7.0)
    assert skewed.status is checks.Status.WARN and "7.0 s behind" in skewed.detail


def test_caller_id_rule():
    assert checks.judge_caller_id('"Магазин" <74950000000>').status is checks.Status.OK
    assert checks.judge_caller_id("").status is checks.Status.FAIL


def test_given_the_text_output_then_dialplan_context_names_in_brackets_are_printed(sqlite_db):
    pbx = SimulatedPbx(PbxConfig(users=(user(),), dialplan=()), CustomerBook())
    with PbxThread(pbx) as thread:
        result = CliRunner().invoke(app, ["doctor"], env={
            "DIALER_DB_URL": sqlite_db.engine.url.render_as_string(hide_password=False),
            "DIALER_AMI_PORT": str(thread.port), "DIALER_AMI_SECRET": "dialer-secret"})
    assert result.exit_code == 1
    assert "FAIL originate context: context [dialer-trunk] of dial.channel does not exist" in result.stdout


def test_the_cdr_file_check_follows_ami_cdr_csv_path(sqlite_db, tmp_path):
    """Empty: a warning (results after a blind spell would be `unknown`), not a failure; a readable
    file: ok; a folder that is not on this host: a failure, so doctor exits 1."""
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),)), DIALER_AMI_CDR_CSV_PATH="")
    assert code == 0 and found["cdr backend"]["status"] == "warn"
    cdr = tmp_path / "cdr-custom" / "dialer.csv"
    cdr.parent.mkdir()
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),)), DIALER_AMI_CDR_CSV_PATH=str(cdr))
    assert code == 0 and found["cdr backend"]["status"] == "warn" and "no CDR written yet" in found["cdr backend"]["detail"]
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),)), DIALER_AMI_CDR_CSV_PATH=str(cdr.parent))
    assert code == 1 and found["cdr backend"]["status"] == "fail" and "is a folder" in found["cdr backend"]["detail"]
    cdr.write_text('"1","dialer-trunk"\n', encoding="utf-8")
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),)), DIALER_AMI_CDR_CSV_PATH=str(cdr))
    assert code == 0 and found["cdr backend"]["status"] == "ok"
    missing = tmp_path / "not-mounted" / "dialer.csv"
    code, found = run_doctor(sqlite_db, PbxConfig(users=(user(),)), DIALER_AMI_CDR_CSV_PATH=str(missing))
    assert code == 1 and found["cdr backend"]["status"] == "fail" and "does not exist" in found["cdr backend"]["detail"]
