"""`agi-campaign run` start-up errors: one clear line, non-zero exit, no traceback."""
import os
import socket
import stat
import subprocess
import sys

import yaml

from agi_campaign.testing import harness
from agi_campaign.testing.process import ServiceProcess
from agi_campaign.testing.sandbox import free_port

from tests.integration.support import campaign


def run_service(path, timeout=30):
    proc = subprocess.run([sys.executable, "-m", "agi_campaign.cli", "--config", str(path), "run"],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout + proc.stderr


def config(tmp_path, asterisk, port=None, **changes):
    path = harness.write_config(tmp_path / "config.yaml", {"main": asterisk},
                                port or free_port(), {"c": campaign()})
    data = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = data
        keys = dotted.split(".")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(data))
    return path


def error_line(output):
    lines = [ln for ln in output.splitlines() if ln.startswith("agi-campaign: error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_startup_fastagi_port_taken(tmp_path, asterisk):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, out = run_service(config(tmp_path, asterisk, port=port))
    assert code == 1
    assert "FastAGI cannot listen on 127.0.0.1:%d: address already in use" % port \
        in error_line(out)


def test_startup_ami_refused(tmp_path, asterisk):
    dead = free_port()
    code, out = run_service(config(tmp_path, asterisk, **{"servers.main.ami.port": dead}))
    line = error_line(out)
    assert code == 1 and "no Asterisk server accepted our AMI login" in line
    assert "127.0.0.1:%d" % dead in line


def test_startup_bad_credentials(tmp_path, asterisk):
    code, out = run_service(config(tmp_path, asterisk, **{"servers.main.ami.secret": "wrong-pw"}))
    line = error_line(out)
    assert code == 1 and "no Asterisk server accepted our AMI login" in line
    assert "wrong-pw" not in out


def test_startup_database_unwritable(tmp_path, asterisk):
    locked = tmp_path / "ro"
    locked.mkdir()
    os.chmod(locked, stat.S_IRUSR | stat.S_IXUSR)
    db = locked / "x.db"
    db.write_text("")  # root ignores directory modes: make the file itself unusable instead
    db.write_bytes(b"this is not a database" * 100)
    code, out = run_service(config(tmp_path, asterisk, **{"database.url": "sqlite:///" + str(db)}))
    line = error_line(out)
    assert code == 1 and "database sqlite:///" in line and "cannot be opened" in line


def test_startup_database_folder_missing(tmp_path, asterisk):
    code, out = run_service(config(tmp_path, asterisk, **{
        "database.url": "sqlite:///" + str(tmp_path / "missing" / "x.db")}))
    assert code == 1 and "does not exist" in error_line(out)


def test_startup_second_service_on_the_same_database_is_refused(tmp_path, asterisk):
    """A second node on one SQLite database refuses to start, naming the first (host, pid,
    since) and PostgreSQL as the way to run several."""
    port = free_port()
    path = config(tmp_path, asterisk, port=port)
    first = ServiceProcess(path, tmp_path / "first.log", port)
    first.start()
    try:
        other = config(tmp_path / "..", asterisk)  # same database file, another FastAGI port
        other_data = yaml.safe_load(other.read_text())
        other_data["database"]["url"] = "sqlite:///" + str(tmp_path / "agi-campaign.db")
        other.write_text(yaml.safe_dump(other_data))
        code, out = run_service(other)
        line = error_line(out)
        assert code == 1 and "another agi-campaign service runs on this SQLite database" in line
        assert "to run several nodes on one database, move to PostgreSQL" in line
        assert "pid %d" % first.proc.pid in line and socket.gethostname() in line
        first.kill()  # SIGKILL: the lock dies with the process
        first.start()  # ... so it starts again and listens (start() waits for its port)
    finally:
        first.stop()
