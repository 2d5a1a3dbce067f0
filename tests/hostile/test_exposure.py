"""What must never leak: the AMI secret and the database password (logs at DEBUG, exception
messages, repr, check-config) and full phone numbers in log records at INFO and above."""
import datetime as dt
import json
import logging
import time
import urllib.parse

import peewee
import pytest

from agi_campaign import cli, dnc, importer
from agi_campaign import db as db_mod
from agi_campaign import models as models_mod
from agi_campaign.ami import AmiClient
from agi_campaign.claim import claim_due
from agi_campaign.config import load_config
from agi_campaign.dburl import mask_url
from agi_campaign.errors import AmiAuthError, ConfigError, StartupError
from agi_campaign.models import Number
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder
from agi_campaign.routes import Router

from tests.hostile.support import AMI_SECRET, NOW, make_campaign, write_config
from tests.unit.fakeami import FakeAmiServer
from tests.unit.support import close_database

pytestmark = pytest.mark.timeout(60)


def _client(port, secret):
    return AmiClient("main", "127.0.0.1", port, "agi-campaign", secret, connect_timeout_s=1,
                     action_timeout_s=1, ping_interval_s=0.3, backoff_min_s=0.05,
                     backoff_max_s=0.1)


def test_exposure_ami_secret_not_in_logs_errors_or_repr(caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "WRONG-" + AMI_SECRET
    with FakeAmiServer(secret=AMI_SECRET) as fake:
        good = _client(fake.port, AMI_SECRET)
        good.start()
        try:
            assert good.wait_connected(5)
            good.request({"Action": "Ping"}, timeout=2)
            fake.drop_all()                           # a reconnect logs in again
            assert good.wait_connected(5)
            texts = [repr(good)]
        finally:
            good.stop()
        bad = _client(fake.port, wrong)
        bad.start()
        try:
            deadline = dt.datetime.now() + dt.timedelta(seconds=5)
            while not isinstance(bad.last_error, AmiAuthError) and dt.datetime.now() < deadline:
                time.sleep(0.01)
            assert isinstance(bad.last_error, AmiAuthError)
            texts += [repr(bad), str(bad.last_error), repr(bad.last_error)]
        finally:
            bad.stop()
        assert fake.actions_named("Login")[0]["Secret"] == AMI_SECRET   # it was sent...
    everything = caplog.text + "".join(texts) + "".join(
        str(r.args) + r.getMessage() for r in caplog.records)
    assert "refused the login of user 'agi-campaign'" in everything
    for secret in (AMI_SECRET, wrong):                  # ...and shown nowhere else
        assert secret not in everything


def test_exposure_secret_not_in_check_config_repr_or_config_errors(work, capsys, monkeypatch):
    cfg_path = write_config(work)
    assert cli.main(["--config", cfg_path, "check-config"]) == 0
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert shown["servers"]["main"]["ami"]["secret"] == "***"
    cfg = load_config(cfg_path)
    for text in (out, err, repr(cfg), str(cfg), repr(cfg.servers["main"])):
        assert AMI_SECRET not in text
    monkeypatch.setenv("ACAMP_EXPOSURE_SECRET", AMI_SECRET)
    text = open(cfg_path).read().replace('secret: "%s"' % AMI_SECRET,
                                         "secret_env: ACAMP_EXPOSURE_SECRET")
    (work / "env.yaml").write_text(text)
    assert cli.main(["--config", str(work / "env.yaml"), "--debug", "check-config"]) == 0
    assert AMI_SECRET not in "".join(capsys.readouterr())
    (work / "both.yaml").write_text(text.replace("secret_env: ACAMP_EXPOSURE_SECRET",
                                                 'secret: "%s", secret_env: X' % AMI_SECRET))
    with pytest.raises(ConfigError) as exc:
        load_config(str(work / "both.yaml"))
    assert AMI_SECRET not in str(exc.value)
    assert cli.main(["--config", str(work / "both.yaml"), "--debug", "check-config"]) == 2
    assert AMI_SECRET not in "".join(capsys.readouterr())


def test_exposure_database_password_masked(work, capsys):
    cfg_path = write_config(work)
    text = open(cfg_path).read().replace("sqlite:///acamp.db",
                                         "postgresql://acamp:pg-Pa55word@127.0.0.1:1/acamp")
    open(cfg_path, "w").write(text)
    assert cli.main(["--config", cfg_path, "check-config"]) == 0
    out = capsys.readouterr().out
    assert "pg-Pa55word" not in out and "acamp:***@127.0.0.1" in out
    assert "pg-Pa55word" not in repr(load_config(cfg_path))



def _pieces(password):
    """The password as written and decoded, and every 3-character piece of either."""
    forms = {password, urllib.parse.unquote(password)}
    return forms | {form[i:i + 3] for form in forms for i in range(len(form) - 2)}


def assert_hidden(text, password):
    leaked = sorted(piece for piece in _pieces(password) if piece in text)
    assert not leaked, (leaked, text)


def _with_database_url(work, url, extra=""):
    cfg_path = write_config(work)
    text = open(cfg_path).read().replace("url: sqlite:///acamp.db",
                                         "url: '%s'%s" % (url.replace("'", "''"), extra))
    open(cfg_path, "w").write(text)
    return cfg_path


# Unencoded reserved characters (and % or a space) in the password: refused at config load.
HOSTILE_PASSWORDS = ["Kq7/zX9", "Kq7#zX9", "Kq7?zX9", "Kq7@zX9", "Kq7%zX9", "Kq7 zX9",
                     "a/b#c?d@e:f%g h", "Wv/4t:Yp"]


@pytest.mark.parametrize("password", HOSTILE_PASSWORDS)
def test_exposure_database_password_with_reserved_characters(work, capsys, caplog, password):
    caplog.set_level(logging.DEBUG)
    cfg_path = _with_database_url(work, "postgresql://acamp:%s@127.0.0.1:5432/acamp" % password)
    for argv in (["check-config"], ["--debug", "check-config"], ["status"],
                 ["--debug", "status"]):
        assert cli.main(["--config", cfg_path] + argv) == 2
        out, err = capsys.readouterr()
        assert "database.url" in err and "percent-encode" in err
        assert_hidden(out + err + caplog.text, password)
    with pytest.raises(ConfigError) as exc:
        load_config(cfg_path)
    assert_hidden(str(exc.value) + repr(exc.value), password)


def test_exposure_encoded_database_password_masked_in_check_config(work, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    url = "postgresql://acamp:Kq7%2FzX9:Wv%25%23%3F%40%20@127.0.0.1:5432/acamp"
    cfg_path = _with_database_url(work, url)
    assert cli.main(["--config", cfg_path, "--debug", "check-config"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["database"] == {"url": "postgresql://acamp:***@127.0.0.1:5432/acamp"}
    assert_hidden(out + err + caplog.text + repr(load_config(cfg_path)),
                  "Kq7%2FzX9:Wv%25%23%3F%40%20")


def test_exposure_database_password_env_not_shown(work, capsys, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    password = "Kq7/zX9#?@:Wv %Yp"
    monkeypatch.setenv("ACAMP_EXPOSURE_DB_PASSWORD", password)
    cfg_path = _with_database_url(work, "postgresql://acamp@127.0.0.1:1/acamp",
                                  "\n  password_env: ACAMP_EXPOSURE_DB_PASSWORD")
    assert cli.main(["--config", cfg_path, "--debug", "check-config"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["database"] == {"url": "postgresql://acamp:***@127.0.0.1:1/acamp",
                                           "password_env": "ACAMP_EXPOSURE_DB_PASSWORD"}
    assert cli.main(["--config", cfg_path, "--debug", "status"]) == 1     # port 1: refused
    out2, err2 = capsys.readouterr()
    assert "postgresql://acamp:***@127.0.0.1:1/acamp" in err2 and "refused" in err2
    assert_hidden(out + err + out2 + err2 + caplog.text, password)


@pytest.mark.parametrize("url,password", [
    ("mysql://root:Kq7zX9@db/x", "Kq7zX9"),
    ("postgresql://app:Kq7/zX9@db/prod", "Kq7/zX9"),
    ("postgresql://app:Kq7#zX9@db/prod", "Kq7#zX9"),
    ("postgres://app:Kq7@zX9@db/prod", "Kq7@zX9"),
    ("postgresql://app:Kq7zX9/prod", "Kq7zX9"),
])
def test_exposure_make_database_errors_hide_the_password(url, password):
    with pytest.raises(ConfigError) as exc:
        db_mod.make_database(url)
    assert "database.url" in str(exc.value)
    assert_hidden(str(exc.value), password)


def test_exposure_driver_error_text_is_scrubbed(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    password = "Kq7/zX9"
    encoded = urllib.parse.quote(password, safe="")

    def refuse():
        raise peewee.OperationalError('FATAL: password "%s" (%s) refused' % (password, encoded))

    monkeypatch.setattr(models_mod, "create_tables", refuse)
    with pytest.raises(StartupError) as exc:
        models_mod.open_database("postgresql://app:%s@127.0.0.1:5432/prod" % encoded)
    text = str(exc.value)
    assert text.startswith("database postgresql://app:***@127.0.0.1:5432/prod cannot be opened")
    assert 'FATAL: password "***" (***) refused' in text
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    assert_hidden(text + caplog.text, encoded)


@pytest.mark.postgres
@pytest.mark.parametrize("url,password", [
    ("postgresql://root:p%2Fw@127.0.0.1:5432/test", "p/w"),
    ("postgres://root:Kq7:zX9%25%23%3F%40%20@127.0.0.1/test?application_name=acamp%20x",
     "Kq7:zX9%#?@ "),
])
def test_exposure_percent_encoded_password_connects(url, password):
    database = db_mod.make_database(url)
    assert database.connect_params["password"] == password
    try:
        assert database.execute_sql("SELECT current_user, current_setting('application_name')"
                                    ).fetchone() in (("root", ""), ("root", "acamp x"))
    finally:
        close_database(database)
    assert mask_url(url) == url.split(":", 2)[0] + "://root:***@" + url.rsplit("@", 1)[1]


@pytest.mark.postgres
def test_exposure_unreachable_postgres_message_hides_password(caplog):
    caplog.set_level(logging.DEBUG)
    url = "postgresql://acamp:Kq7%2FzX9@127.0.0.1:1/acamp"
    with pytest.raises(StartupError) as exc:
        models_mod.open_database(url)
    text = str(exc.value)
    assert "database postgresql://acamp:***@127.0.0.1:1/acamp cannot be opened" in text
    assert "Connection refused" in text
    assert_hidden(text + caplog.text, "Kq7%2FzX9")


class _FakeChannel:
    def __init__(self, script, args):
        self.script, self.args = script, args
        self.uniqueid, self.peer, self.hung_up = "1700000000.1", "127.0.0.1", False

    def stream_file(self, sound, escape_digits=""):
        return ""  # no key pressed (fastagi.Channel.stream_file's contract)

    def command(self, *args):
        return "1"


def _full_forms(e164):
    digits = e164[1:]
    return {e164, digits, digits[1:]} if e164.startswith("+1") else {e164, digits}


def test_exposure_phone_numbers_masked_at_info_and_above(db, work, caplog):
    caplog.set_level(logging.DEBUG)
    campaign = make_campaign()
    numbers = ["+1202555%04d" % (200 + i) for i in range(6)] + ["+442079460123"]
    dnc.add("global", [numbers[5]], "US", NOW, source="t", known_lists=["global"])
    (work / "n.csv").write_text("phone,name\n" + "".join("%s,x\n" % n for n in numbers)
                                + "%s,dup\n202555020,short\n" % numbers[0])
    report = importer.import_csv(campaign.id, str(work / "n.csv"), "US", ["global"], NOW)
    assert (report.imported, report.dnc, report.duplicates, report.invalid) == (6, 1, 1, 1)
    (work / "d.csv").write_text("\n".join(numbers[:2]) + "\nnope\n")
    dnc.import_file("global", str(work / "d.csv"), "US", NOW, known_lists=["global"])
    claimed = claim_due(campaign.id, 10, NOW, "main", ["global"], 3)
    recorder = Recorder(lambda name: RetryPolicy(3, 60))
    router = Router(lambda name: type("OC", (), {"type": "message", "sounds": ("hi",),
                                                 "repeat": 1, "opt_out": None,
                                                 "collect": None})(), recorder,
                    type("Clock", (), {"now": staticmethod(lambda: NOW)})(), "ab12")
    for i, c in enumerate(claimed):
        if i % 2:
            router(_FakeChannel("connect", (str(c.attempt_id), c.token)))
            router(_FakeChannel("result", (str(c.attempt_id), c.token, "ANSWER", "16", "5",
                                           "9")))
        else:
            recorder.record_result(c.attempt_id, c.token, "BUSY", "17", "", "3", NOW)
    router(_FakeChannel("result", ("999", "deadbeefdeadbeef", "BUSY")))
    assert Number.select().where(Number.status == "in_flight").count() == 0
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert loud, "the paths above log at INFO"
    forms = set().union(*map(_full_forms, numbers))
    for record in loud:
        text = record.getMessage() + (record.exc_text or "")
        leaked = [f for f in forms if f in text]
        assert not leaked, (record.name, record.levelname, text)
