#!/usr/bin/env python3
"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that appends every
POST it gets (path, headers, body) as a JSON line to --log. Paths starting with
/flaky-N/ answer 500 to their first N requests, then 204; /down/ always answers 503;
everything else answers 204. Prints "ready PORT" once it listens.

usage: webhook-receiver.py --log FILE
"""
import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from helperlib import exit_with_parent

LOCK = threading.Lock()
SEEN = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        status = 204
        with LOCK:
            SEEN[self.path] = SEEN.get(self.path, 0) + 1
            count = SEEN[self.path]
            if self.path.startswith("/flaky-"):
                failures = int(self.path.split("/")[1].split("-")[1])
                status = 500 if count <= failures else 204
            elif self.path.startswith("/down/"):
                status = 503
            with open(ARGS.log, "a") as log:
                log.write(json.dumps({
                    "path": self.path, "status": status, "body": body,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    ARGS = parser.parse_args()
    exit_with_parent()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()
