"""Entry point of the scheduler service, for running from a checkout without installing:
`python scheduler/run.py --config config.yaml run` is the same as `agi-campaign ... run`.
All logic lives in agi_campaign; this file only wires the command line.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agi_campaign.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["run"]))
