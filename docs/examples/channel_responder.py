"""A ContainerLease channel responder: answers each JSON message with a JSON reply.

Run it in a lease of an image with ``channel = true``; then, on the host,
``containerlease send LEASE '{"command": "ping"}'`` prints ``{"ok":true,"reply":"pong"}``.
The protocol: one connection per message; the client sends one line of JSON and closes its
side; the program answers with one line of JSON. The suite runs this very file.
"""

import contextlib
import json
import os
import socket

PATH = os.environ.get("CONTAINERLEASE_CHANNEL", "/run/containerlease/channel.sock")


def answer(message: object) -> object:
    if isinstance(message, dict) and message.get("command") == "ping":
        return {"ok": True, "reply": "pong"}
    return {"ok": True, "echo": message}


def main() -> None:
    if os.path.exists(PATH):
        os.unlink(PATH)  # left by an earlier run of the container
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(PATH)
    os.chmod(PATH, 0o666)  # the host side connects as the lease's owner, not as root
    server.listen()
    while True:
        conn, _ = server.accept()
        with conn:
            line = conn.makefile("rb").readline(1 << 20)
            if not line.strip():
                continue  # a connection that only looked (`containerlease status`)
            try:
                reply = answer(json.loads(line))
            except ValueError:
                reply = {"ok": False, "error": "not JSON"}
            with contextlib.suppress(OSError):  # the client gave up waiting
                conn.sendall(json.dumps(reply).encode() + b"\n")


if __name__ == "__main__":
    main()
