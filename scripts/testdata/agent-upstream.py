#!/usr/bin/env python3
"""A stand-in for a paid model behind a coding agent, for the tests: the Anthropic
Messages protocol (SSE) and the OpenAI Responses protocol (SSE) over a real socket on
127.0.0.1, playing one scripted agent turn. Only the Python standard library.

The turn, in either protocol:
  1. the agent's first request (no tool result yet): ask it to run one shell command
     (Claude Code's `Bash` tool; Codex's `shell`/`exec_command` function) that writes a file,
     /tmp/from-claude or /tmp/from-codex, and prints a marker;
  2. the request that carries the command's result: check that it answers that call and
     holds the marker, then end the turn with "The file is written." (or, if the check
     failed, with a text that says what came back).
Requests without tools (an agent's side requests, e.g. a title) get a one-word answer.
Every answer reports usage: 100 input and 20 output tokens.
The proxy must present --key (x-api-key for Messages, Authorization: Bearer for Responses).
Requests are appended as JSON lines to --log, with what was checked ("checked": ...).
Prints "ready PORT" once it listens.

usage: agent-upstream.py --key KEY [--port N] [--log FILE]
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from helperlib import exit_with_parent

ARGS = None
LOCK = threading.Lock()
USAGE_IN, USAGE_OUT = 100, 20
FINAL_TEXT = "The file is written."
MARKER = "omnirun-tool-ran"
COMMANDS = {"messages": "echo hi > /tmp/from-claude && echo " + MARKER,
            "responses": "echo hi > /tmp/from-codex && echo " + MARKER}


def final_text(ok, result):
    return FINAL_TEXT if ok else "The tool result was not what I asked for: " + json.dumps(result)[:300]


def log(entry):
    if ARGS.log:
        with LOCK, open(ARGS.log, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def events(self, pairs):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, data in pairs:
            self.wfile.write(("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode())
            self.wfile.flush()
        self.close_connection = True

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        path = self.path.split("?")[0]
        key = self.headers.get("x-api-key") if "/messages" in path else (self.headers.get("Authorization") or "")[7:]
        if key != ARGS.key:
            return self.json(401, {"error": {"type": "authentication_error", "message": "wrong upstream key"}})
        if path.endswith("/messages/count_tokens"):
            return self.json(200, {"input_tokens": USAGE_IN})
        if path.endswith("/messages"):
            return self.messages_api(body)
        if path.endswith("/responses"):
            return self.responses_api(body)
        self.json(404, {"error": {"message": "no route " + path}})

    def json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # --- Anthropic Messages -------------------------------------------------------------
    def messages_api(self, body):
        results = [block for message in body.get("messages", []) if isinstance(message.get("content"), list)
                   for block in message["content"] if block.get("type") == "tool_result"]
        entry = {"protocol": "messages", "model": body.get("model"), "stream": body.get("stream", False),
                 "tools": [t.get("name") for t in body.get("tools", [])], "anthropic-version": self.headers.get("anthropic-version")}
        if not body.get("tools"):
            blocks = [("text", "ok")]
        elif not results:
            blocks = [("tool_use", {"id": "toolu_omnirun_1", "name": "Bash",
                                    "input": {"command": COMMANDS["messages"], "description": "Write a file"}})]
        else:
            result = results[-1]
            content = result.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            ok = result.get("tool_use_id") == "toolu_omnirun_1" and not result.get("is_error") and MARKER in text
            entry["checked"] = {"ok": ok, "tool_use_id": result.get("tool_use_id"), "content": content}
            blocks = [("text", final_text(ok, result))]
        log(entry)
        stop = "tool_use" if blocks[0][0] == "tool_use" else "end_turn"
        message = {"id": "msg_omnirun", "type": "message", "role": "assistant", "model": body.get("model"),
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": USAGE_IN, "output_tokens": 1}}
        if not body.get("stream"):
            message["content"] = [{"type": "text", "text": b[1]} if b[0] == "text" else dict(type="tool_use", **b[1]) for b in blocks]
            message["stop_reason"] = stop
            message["usage"]["output_tokens"] = USAGE_OUT
            return self.json(200, message)
        events = [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]
        for index, (kind, value) in enumerate(blocks):
            if kind == "text":
                events += [("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                           ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": value}})]
            else:
                start = dict(type="tool_use", id=value["id"], name=value["name"], input={})
                events += [("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}),
                           ("content_block_delta", {"type": "content_block_delta", "index": index,
                                                    "delta": {"type": "input_json_delta", "partial_json": json.dumps(value["input"])}})]
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": {"output_tokens": USAGE_OUT}}),
                   ("message_stop", {"type": "message_stop"})]
        self.events(events)

    # --- OpenAI Responses ---------------------------------------------------------------
    def responses_api(self, body):
        items = body.get("input", []) if isinstance(body.get("input"), list) else []
        outputs = [item for item in items if item.get("type") in ("function_call_output", "custom_tool_call_output")]
        tools = [t.get("name") or t.get("type") for t in body.get("tools", [])]
        entry = {"protocol": "responses", "model": body.get("model"), "stream": body.get("stream", False), "tools": tools}
        if not body.get("tools"):
            item = message_item("ok")
        elif not outputs:
            name = "shell" if "shell" in tools else "exec_command" if "exec_command" in tools else tools[0]
            command = COMMANDS["responses"]
            arguments = {"command": ["bash", "-lc", command]} if name == "shell" else {"cmd": command}
            item = {"type": "function_call", "id": "fc_omnirun_1", "call_id": "call_omnirun_1", "name": name,
                    "arguments": json.dumps(arguments), "status": "completed"}
        else:
            output = outputs[-1].get("output")
            ok = outputs[-1].get("call_id") == "call_omnirun_1" and MARKER in json.dumps(output)
            entry["checked"] = {"ok": ok, "call_id": outputs[-1].get("call_id"), "output": output}
            item = message_item(final_text(ok, outputs[-1]))
        log(entry)
        response = {"id": "resp_omnirun", "object": "response", "created_at": 0, "status": "in_progress",
                    "model": body.get("model"), "output": [], "usage": None}
        done = dict(response, status="completed", output=[item],
                    usage={"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT, "total_tokens": USAGE_IN + USAGE_OUT,
                           "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}})
        if not body.get("stream"):
            return self.json(200, done)
        events = [("response.created", {"type": "response.created", "sequence_number": 0, "response": response})]
        added = dict(item, status="in_progress") if item["type"] == "function_call" else dict(item, content=[], status="in_progress")
        events.append(("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": added}))
        if item["type"] == "message":
            events.append(("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 2, "item_id": item["id"],
                                                          "output_index": 0, "content_index": 0, "delta": item["content"][0]["text"]}))
        events += [("response.output_item.done", {"type": "response.output_item.done", "sequence_number": 3, "output_index": 0, "item": item}),
                   ("response.completed", {"type": "response.completed", "sequence_number": 4, "response": done})]
        self.events(events)


def message_item(text):
    return {"type": "message", "id": "msg_omnirun", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log")
    parser.add_argument("--key", required=True)
    ARGS = parser.parse_args()
    exit_with_parent()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    print("ready %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
