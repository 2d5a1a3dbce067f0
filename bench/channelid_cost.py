"""Diagnosis (not in `make bench`): what naming the originated channel (`ChannelId`, which
every call of ours does, dialplan/README.md) costs Asterisk, by how many calls are up.

Raw loop A of benchmark 1 (bench_dial.raw_loop) with and without a ChannelId, at several
in-flight caps, alternating, on one sandbox: calls/s and Asterisk CPU per call (user + system
time of its process over the loop, /proc). Each call holds 2 channels in the sandbox (its
callee is a Local pair).

`python bench/channelid_cost.py [CALLS [ROUNDS]]` (defaults 4,000 calls, 2 rounds) prints a
line per loop. Figures and what they mean: bench/GAPS.md, "Issue 15, third round".
"""
import sys

import bench_dial
import sandbox_env

IN_FLIGHT_CAPS = (25, 200, 600)


def main(n=4000, rounds=2):
    box = sandbox_env.start_sandbox()
    try:
        for _ in range(rounds):
            for in_flight in IN_FLIGHT_CAPS:
                for channel_ids in (False, True):
                    rate, failed, cost = bench_dial.raw_loop(
                        box, n, "A", in_flight=in_flight, channel_ids=channel_ids)
                    print("in flight %3d  ChannelId %-3s  %4.0f calls/s  Asterisk %.2f ms a "
                          "call  (%d failed originates)" % (
                              in_flight, "yes" if channel_ids else "no", rate,
                              cost.per_call(n)[0], failed), flush=True)
    finally:
        box.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
