"""A fake Asterisk for benchmark 5 (run as its own process): `python agi_client.py PORT FILE
THREADS` opens one FastAGI session per line `<attempt_id> <token>` of FILE (`result` script,
the hangup handler's arguments), answers every command with `200 result=1`, and prints the
seconds the whole batch took."""
import queue
import socket
import sys
import threading
import time


def session(port, attempt_id, token):
    env = ("agi_network: yes\nagi_network_script: result\nagi_request: agi://127.0.0.1/result\n"
           "agi_channel: Local/%s@agi-campaign-dialout-0001;2\nagi_uniqueid: 1.%s\n"
           "agi_arg_1: %s\nagi_arg_2: %s\nagi_arg_3: ANSWER\nagi_arg_4: 16\nagi_arg_5: 1\n"
           "agi_arg_6: 1\n\n" % (attempt_id, attempt_id, attempt_id, token))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(env.encode())
        buf = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                _, buf = buf.split(b"\n", 1)
                sock.sendall(b"200 result=1\n")


def main(port, path, threads):
    work = queue.Queue()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            work.put(line.split())

    def worker():
        while True:
            try:
                attempt_id, token = work.get_nowait()
            except queue.Empty:
                return
            session(port, attempt_id, token)

    began = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print("%.6f" % (time.monotonic() - began))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
