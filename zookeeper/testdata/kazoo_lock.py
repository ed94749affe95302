"""Drives kazoo's Lock recipe for the Go interop test (kazoo_test.go).

usage: kazoo_lock.py HOSTS LOCK_PATH

Reads one command per line on stdin and answers each with one JSON line on
stdout:

  acquire IDENTIFIER TIMEOUT  take the lock; TIMEOUT 0 means non-blocking
                              -> {"acquired": bool}
  release                     release the lock taken last -> {"released": true}
  contenders                  -> {"contenders": [identifier, ...]} in lock order
  quit                        stop

The first line printed is {"ready": true} once the client is connected.
"""
import json
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout
from kazoo.recipe.lock import Lock


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    hosts, path = sys.argv[1], sys.argv[2]
    client = KazooClient(hosts=hosts, timeout=10.0)
    client.start(timeout=30)
    held = None
    say({"ready": True})
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        op = cmd[0]
        if op == "acquire":
            lock = Lock(client, path, cmd[1])
            timeout = float(cmd[2])
            try:
                if timeout == 0:
                    ok = lock.acquire(blocking=False)
                else:
                    ok = lock.acquire(blocking=True, timeout=timeout)
            except LockTimeout:
                ok = False
            if ok:
                held = lock
            say({"acquired": ok})
        elif op == "release":
            held.release()
            held = None
            say({"released": True})
        elif op == "contenders":
            say({"contenders": Lock(client, path).contenders()})
        elif op == "quit":
            break
        else:
            say({"error": "unknown command " + op})
    client.stop()
    client.close()


if __name__ == "__main__":
    main()
