#!/usr/bin/env python3
"""Drives the official `openai` package (PyPI), unchanged but for its base URL and key
(OPENAI_BASE_URL, OPENAI_API_KEY), against the OmniRun LLM proxy; prints one JSON
object with what happened.

usage: openai-client.py models
       openai-client.py chat MODEL TEXT
       openai-client.py stream MODEL TEXT      (also records when each chunk arrived)
       openai-client.py many MODEL N           (N chat requests: one, then N-1 at once)
       openai-client.py responses MODEL TEXT   (the Responses API)
       openai-client.py responses-stream MODEL TEXT   (records when each text delta arrived)
       openai-client.py responses-tool MODEL   (a function call, then its output, streamed)
"""
import json
import sys
import threading
import time

import openai

client = openai.OpenAI(max_retries=0, timeout=60)


def error(e):
    # The raw JSON error body as the proxy sent it (the client's own `body` unwraps "error").
    try:
        body = e.response.json()
    except Exception:  # noqa: BLE001
        body = getattr(e, "body", None)
    return {"ok": False, "status": getattr(e, "status_code", None), "body": body, "type": type(e).__name__}


def main():
    command = sys.argv[1]
    # The call's own time, without this interpreter's start (seconds on a loaded machine).
    call_started = time.monotonic()
    try:
        if command == "models":
            models = client.models.list()
            result = {"ok": True, "ids": [m.id for m in models.data]}
        elif command == "chat":
            completion = client.chat.completions.create(
                model=sys.argv[2], messages=[{"role": "user", "content": sys.argv[3]}])
            result = {"ok": True, "content": completion.choices[0].message.content,
                      "usage": completion.usage.model_dump() if completion.usage else None}
        elif command == "stream":
            started = time.monotonic()
            pieces, times, usage = [], [], None
            stream = client.chat.completions.create(
                model=sys.argv[2], messages=[{"role": "user", "content": sys.argv[3]}], stream=True)
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump()
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
                    times.append(time.monotonic() - started)
            result = {"ok": True, "pieces": pieces, "times": times, "usage": usage}
        elif command == "many":
            count = int(sys.argv[3])
            outcomes = []

            def one():
                try:
                    client.chat.completions.create(model=sys.argv[2], messages=[{"role": "user", "content": "hi"}])
                    outcomes.append(200)
                except openai.APIStatusError as e:
                    outcomes.append(e.status_code)
                except Exception as e:  # noqa: BLE001
                    outcomes.append(str(e))

            # The first on its own: the SDK builds its response models lazily, and pydantic's
            # first build is not safe from many threads at once (a client-side error, seen
            # under load). The other N-1 go at once.
            one()
            threads = [threading.Thread(target=one) for _ in range(count - 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            result = {"ok": True, "statuses": outcomes}
        elif command == "responses":
            response = client.responses.create(model=sys.argv[2], input=sys.argv[3])
            result = {"ok": True, "text": response.output_text, "usage": response.usage.model_dump(), "status": response.status}
        elif command == "responses-stream":
            started = time.monotonic()
            pieces, times, events, final = [], [], [], None
            with client.responses.stream(model=sys.argv[2], input=sys.argv[3]) as stream:
                for event in stream:
                    events.append(event.type)
                    if event.type == "response.output_text.delta":
                        pieces.append(event.delta)
                        times.append(time.monotonic() - started)
                    if event.type == "response.failed":
                        final = {"error": event.response.error.model_dump() if event.response.error else None}
                if final is None:
                    done = stream.get_final_response()
                    final = {"usage": done.usage.model_dump(), "status": done.status}
            result = {"ok": "usage" in final, "pieces": pieces, "times": times, "events": events, "final": final}
        elif command == "responses-tool":
            tools = [{"type": "function", "name": "get_weather", "description": "The weather in a city",
                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
            items = [{"role": "user", "content": "weather in Paris?"}]
            with client.responses.stream(model=sys.argv[2], input=items, tools=tools) as stream:
                first = stream.get_final_response()
            call = next(item for item in first.output if item.type == "function_call")
            items += [call.model_dump(exclude_none=True), {"type": "function_call_output", "call_id": call.call_id, "output": "18 C and sunny"}]
            second = client.responses.create(model=sys.argv[2], input=items, tools=tools)
            result = {"ok": True, "tool": call.name, "arguments": json.loads(call.arguments), "answer": second.output_text}
        else:
            result = {"ok": False, "error": "unknown command"}
    except openai.APIStatusError as e:
        result = error(e)
    except openai.APIError as e:
        result = {"ok": False, "status": None, "type": type(e).__name__, "body": str(e)}
    result["elapsed"] = time.monotonic() - call_started
    print(json.dumps(result))


if __name__ == "__main__":
    main()
