"""The command line: options, start-up, the port file, signals, shutdown.

main() opens the engine on --path (a second process on the same directory
fails here, as chDB allows one), listens (--port 0 picks a free port, written
to --port-file once listening: that file is how start.sh and the Python
tests learn the port), prints one "ready" line to stderr and serves until
SIGTERM/SIGINT, then closes the session cleanly ("stopped"). Exit status 1 if
the engine or the socket cannot be opened, 2 for a bad TLS certificate/key.
Started by chserver.py (the launcher next to the package) or
`python -m chserver`.
"""

import argparse
import os
import signal
import socket
import ssl
import sys
import threading
import time

from .engine import Engine
from .params import SETTING_NAME_RE
from .server import Handler, Server


def parse_setting(kv):
    if "=" not in kv:
        raise argparse.ArgumentTypeError("expected NAME=VALUE, got %r" % kv)
    k, v = kv.split("=", 1)
    k = k.strip()
    if not SETTING_NAME_RE.match(k):
        raise argparse.ArgumentTypeError("bad setting name %r" % k)
    return k, v


def main(argv=None, prog=None):
    ap = argparse.ArgumentParser(
        prog=prog,
        description="ClickHouse HTTP interface in front of chDB (the embedded ClickHouse engine).")
    ap.add_argument("--path", default="./chdata",
                    help="chDB data directory, kept across restarts; one process per directory")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8123, help="0 = any free port")
    ap.add_argument("--port-file", help="write the bound port to this file once listening")
    ap.add_argument("--setting", action="append", default=[], type=parse_setting, metavar="NAME=VALUE",
                    help="server-wide default setting (repeatable), e.g. async_insert=0")
    ap.add_argument("--user", help="require this user (and --password) on every query")
    ap.add_argument("--password", help="the password of --user (default: empty)")
    ap.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate (chain)")
    ap.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    ap.add_argument("--verbose", action="store_true", help="log one line per request to stderr")
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")

    def say(msg):
        sys.stderr.write("chserver: %s\n" % msg)
        sys.stderr.flush()

    stop = threading.Event()
    srv_box = []

    def on_signal(*_):
        stop.set()
        if srv_box:
            threading.Thread(target=srv_box[0].shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            tls.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as e:
            say("cannot load TLS certificate/key: %s" % e)
            return 2

    t0 = time.monotonic()
    path = os.path.abspath(args.path)
    os.makedirs(path, exist_ok=True)
    try:
        engine = Engine(path, dict(args.setting))
    except Exception as e:
        say("cannot open chDB at %s: %s" % (path, str(e).strip()))
        return 1
    Handler.engine = engine
    Handler.verbose = args.verbose
    if args.user is not None or args.password is not None:
        Handler.auth = (args.user or "default", args.password or "")

    Server.address_family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        srv = Server((args.host, args.port), Handler)
    except OSError as e:
        say("cannot listen on %s:%d: %s" % (args.host, args.port, e))
        engine.close()
        return 1
    srv.tls_context = tls
    srv_box.append(srv)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    say("ClickHouse %s (chDB) on %s://%s:%d path=%s%s ready in %.2fs" % (
        engine.version, "https" if tls else "http", args.host, port, path,
        " auth=on" if Handler.auth else "", time.monotonic() - t0))
    try:
        if not stop.is_set():
            srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
        engine.close()
        say("stopped")
    return 0
