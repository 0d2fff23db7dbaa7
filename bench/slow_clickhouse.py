"""A pass-through proxy in front of ClickHouse's HTTP interface for bench/faults: it forwards
every statement as it is, or, while the file named by its third argument says `slow N`, after
N seconds. When ClickHouse cannot be reached it closes the client's connection without an answer,
as a stopped server's port would.
Usage: python3 slow_clickhouse.py LISTEN_PORT CLICKHOUSE_PORT MODE_FILE"""
import http.client
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, UPSTREAM, MODE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


def delay_s():
    try:
        words = open(MODE).read().split()
    except OSError:
        return 0.0
    return float(words[1]) if len(words) == 2 and words[0] == "slow" else 0.0


class Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(delay_s())
        try:
            up = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=None)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            up.request(self.command, self.path, body=body, headers=headers)
            resp = up.getresponse()
            data = resp.read()
        except OSError:
            self.close_connection = True  # no answer at all: a refused connection, to the Worker
            return
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", LISTEN), Forward).serve_forever()
