#!/usr/bin/env python3
"""Drives the official `anthropic` package (PyPI), unchanged but for its base URL and key
(ANTHROPIC_BASE_URL, and ANTHROPIC_API_KEY, sent as x-api-key, or ANTHROPIC_AUTH_TOKEN,
sent as Authorization: Bearer), against the OmniRun LLM proxy; prints one JSON object with
what happened.

usage: anthropic-client.py create MODEL TEXT
       anthropic-client.py stream MODEL TEXT    (records when each text delta arrived)
       anthropic-client.py tool MODEL           (a tool_use, then its tool_result, streamed)
       anthropic-client.py count MODEL TEXT
"""
import json
import sys
import time

import anthropic

client = anthropic.Anthropic(max_retries=0, timeout=60)
TOOLS = [{"name": "get_weather", "description": "The weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def usage(message):
    return {"input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens}


def main():
    command, model = sys.argv[1], sys.argv[2]
    user = [{"role": "user", "content": sys.argv[3] if len(sys.argv) > 3 else "hi"}]
    try:
        if command == "create":
            message = client.messages.create(model=model, max_tokens=64, messages=user,
                                             extra_headers={"anthropic-beta": "omnirun-test-2026"})
            result = {"ok": True, "text": message.content[0].text, "usage": usage(message), "stop": message.stop_reason}
        elif command == "stream":
            started = time.monotonic()
            pieces, times = [], []
            with client.messages.stream(model=model, max_tokens=64, messages=user) as stream:
                for text in stream.text_stream:
                    pieces.append(text)
                    times.append(time.monotonic() - started)
                final = stream.get_final_message()
            result = {"ok": True, "pieces": pieces, "times": times, "usage": usage(final), "stop": final.stop_reason}
        elif command == "tool":
            with client.messages.stream(model=model, max_tokens=64, messages=user, tools=TOOLS) as stream:
                first = stream.get_final_message()
            call = next(block for block in first.content if block.type == "tool_use")
            turn = user + [{"role": "assistant", "content": [block.model_dump() for block in first.content]},
                           {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C and sunny"}]}]
            second = client.messages.create(model=model, max_tokens=64, messages=turn, tools=TOOLS)
            result = {"ok": True, "stop": first.stop_reason, "tool": call.name, "input": call.input, "id": call.id,
                      "answer": second.content[0].text}
        elif command == "count":
            count = client.messages.count_tokens(model=model, messages=user)
            result = {"ok": True, "input_tokens": count.input_tokens}
        else:
            result = {"ok": False, "error": "unknown command"}
    except anthropic.APIStatusError as e:
        try:
            body = e.response.json()
        except Exception:  # noqa: BLE001
            body = e.body
        result = {"ok": False, "status": e.status_code, "body": body, "message": e.message, "type": type(e).__name__}
    except anthropic.APIError as e:
        result = {"ok": False, "status": None, "type": type(e).__name__, "message": str(e)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
