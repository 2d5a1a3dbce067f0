"""The main job (`make demo` -> `agi-campaign demo`) completes on the sandbox Asterisk."""
import io

from agi_campaign.testing import demo


def test_demo_runs_a_campaign_to_completion(tmp_path):
    out = io.StringIO()
    assert demo.run(numbers=16, workdir=str(tmp_path), out=out, timeout_s=120) == 0
    text = out.getvalue()
    assert "imported: numbers.csv: 16 rows: 16 imported" in text
    assert "final state: COMPLETED" in text
    assert "attempts by outcome:" in text and "answered" in text
    assert "dnc 1" in text.split("numbers by status:")[1]
