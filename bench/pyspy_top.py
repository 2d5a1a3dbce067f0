"""Summarise py-spy collapsed stacks: `python bench/pyspy_top.py FILE [N]` prints the functions
with the most samples (self and inclusive)."""
import collections
import sys


def main(path, n=25):
    self_c, incl = collections.Counter(), collections.Counter()
    total = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            count = int(count)
            frames = stack.split(";")
            total += count
            self_c[frames[-1]] += count
            for f in set(frames):
                incl[f] += count
    print("total samples", total)
    print("-- self")
    for f, c in self_c.most_common(n):
        print("%5.1f%% %s" % (100.0 * c / total, f))
    print("-- inclusive")
    for f, c in incl.most_common(n):
        print("%5.1f%% %s" % (100.0 * c / total, f))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25)
