#!/usr/bin/env python3
"""POSTs a JSON body and reads the server-sent event stream that answers, line by line as the
bytes arrive (the Python standard library, no client buffering); prints a JSON list of the
seconds, from the answer's head, at which each event named EVENT arrived.

usage: sse-times.py URL API_KEY JSON_BODY EVENT
"""
import http.client
import json
import sys
import time
from urllib.parse import urlsplit

url, key, body, name = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
parts = urlsplit(url)
connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
connection.request("POST", parts.path, body=body.encode(), headers={"X-API-Key": key, "Content-Type": "application/json"})
response = connection.getresponse()
if response.status != 200:
    sys.exit("status %d: %s" % (response.status, response.read()[:500]))
started = time.monotonic()
times = []
while True:
    line = response.readline()
    if not line:
        break
    if line.rstrip(b"\r\n") == ("event: " + name).encode():
        times.append(time.monotonic() - started)
print(json.dumps(times))
