"""The Anthropic Messages and OpenAI Responses halves of fake-llm-upstream.py: the same
behaviours (see there) in those protocols' shapes, streamed as their named SSE events.

Besides echo, both know a tool turn (model */tool): without a tool result in the request
the answer is a call of the tool `get_weather` with {"city": "Paris"}; with one, the answer
is "tool said: <the result>".
"""
import json
import time

TOOL_INPUT = {"city": "Paris"}


def _words(text):
    return text.split(" ")


def output_words(wire, body):
    """The answer's output tokens: one per word (a tool call counts its JSON's words)."""
    if wire == "messages":
        block = messages_answer(body)[0]
        return len(_words(block[1] if block[0] == "text" else json.dumps(block[3])))
    item = responses_answer(body)
    return len(_words(item["content"][0]["text"] if item["type"] == "message" else item["arguments"]))


# --- Anthropic Messages -----------------------------------------------------------------------
def messages_answer(body):
    """The blocks of the answer: [("text", str)] or [("tool_use", id, name, input)]."""
    # the last user message (Claude Code puts messages of role "system" after it)
    users = [m for m in body["messages"] if m.get("role") == "user"]
    last = users[-1] if users else body["messages"][-1]
    content = last.get("content")
    if isinstance(content, list):
        results = [b for b in content if b.get("type") == "tool_result"]
        if results:
            inner = results[-1].get("content")
            if isinstance(inner, list):
                inner = "".join(b.get("text", "") for b in inner)
            return [("text", "tool said: " + str(inner))]
        # the prompt is the last text block that is not one of the agent's own reminders
        # (Claude Code puts <system-reminder> blocks before and after the user's words)
        texts = [b.get("text", "") for b in content if b.get("type") == "text"]
        words = [t for t in texts if not t.lstrip().startswith("<system-reminder>")]
        content = (words or texts or [""])[-1]
    if body.get("model", "").endswith("/tool"):
        return [("tool_use", "toolu_fake_1", "get_weather", TOOL_INPUT)]
    return [("text", "echo: " + (content or ""))]


def messages_error(status, kind, message):
    return status, {"type": "error", "error": {"type": kind, "message": message}}


def messages(handler, body, usage, delay, stall):
    """Answers POST /messages (usage: {"input_tokens", "output_tokens", "cost"?})."""
    blocks = messages_answer(body)
    stop = "tool_use" if blocks[0][0] == "tool_use" else "end_turn"
    message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"], "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1}}
    if not body.get("stream"):
        message["content"] = [{"type": "text", "text": b[1]} if b[0] == "text" else
                              {"type": "tool_use", "id": b[1], "name": b[2], "input": b[3]} for b in blocks]
        message["stop_reason"] = stop
        message["usage"] = usage
        return handler.reply(200, message)
    handler.start_events()
    handler.event("message_start", {"type": "message_start", "message": message})
    handler.event("ping", {"type": "ping"})
    for index, block in enumerate(blocks):
        if block[0] == "text":
            handler.event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            for n, word in enumerate(_words(block[1])):
                delta = {"type": "text_delta", "text": word if n == 0 else " " + word}
                handler.event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                time.sleep(30 if stall else delay)
        else:
            start = {"type": "tool_use", "id": block[1], "name": block[2], "input": {}}
            handler.event("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
            text = json.dumps(block[3])
            for piece in (text[:5], text[5:]):  # the input arrives as partial JSON
                handler.event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                      "delta": {"type": "input_json_delta", "partial_json": piece}})
                time.sleep(delay)
        handler.event("content_block_stop", {"type": "content_block_stop", "index": index})
    delta_usage = {"output_tokens": usage["output_tokens"]}
    if "cost" in usage:
        delta_usage["cost"] = usage["cost"]
    handler.event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": delta_usage})
    handler.event("message_stop", {"type": "message_stop"})
    handler.end_events()


def count_tokens(handler, body):
    handler.reply(200, {"input_tokens": len(json.dumps(body["messages"])) // 4})


# --- OpenAI Responses ---------------------------------------------------------------------------
def responses_answer(body):
    """The output item of the answer: a message, or a function call of get_weather."""
    items = body["input"] if isinstance(body["input"], list) else [{"role": "user", "content": body["input"]}]
    outputs = [i for i in items if i.get("type") == "function_call_output"]
    if outputs:
        return _message("tool said: " + str(outputs[-1].get("output")))
    if body.get("model", "").endswith("/tool"):
        return {"type": "function_call", "id": "fc_fake_1", "call_id": "call_fake_1", "name": "get_weather",
                "arguments": json.dumps(TOOL_INPUT), "status": "completed"}
    text = ""
    for item in items:
        if item.get("role") == "user":
            content = item.get("content")
            texts = [content] if isinstance(content, str) else [p.get("text", "") for p in content or [] if "text" in p]
            text = texts[-1] if texts else ""
    return _message("echo: " + text)


def _message(text):
    return {"type": "message", "id": "msg_fake", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def responses_error(status, kind, message):
    return status, {"error": {"message": message, "type": kind, "code": None, "param": None}}


def responses(handler, body, usage, delay, stall):
    """Answers POST /responses (usage: {"input_tokens", "output_tokens", "cost"?})."""
    item = responses_answer(body)
    full_usage = dict(usage, total_tokens=usage["input_tokens"] + usage["output_tokens"])
    base = {"id": "resp_fake", "object": "response", "created_at": int(time.time()), "model": body["model"],
            "status": "in_progress", "output": [], "usage": None}
    done = dict(base, status="completed", output=[item], usage=full_usage)
    if not body.get("stream"):
        return handler.reply(200, done)
    sequence = iter(range(1000))

    def send(name, data):
        handler.event(name, dict(data, type=name, sequence_number=next(sequence)))

    handler.start_events()
    send("response.created", {"response": base})
    send("response.in_progress", {"response": base})
    if item["type"] == "message":
        send("response.output_item.added", {"output_index": 0, "item": dict(item, content=[], status="in_progress")})
        send("response.content_part.added", {"output_index": 0, "item_id": item["id"], "content_index": 0,
                                             "part": {"type": "output_text", "text": "", "annotations": []}})
        for n, word in enumerate(_words(item["content"][0]["text"])):
            send("response.output_text.delta", {"output_index": 0, "item_id": item["id"], "content_index": 0,
                                                "delta": word if n == 0 else " " + word})
            time.sleep(30 if stall else delay)
        send("response.output_text.done", {"output_index": 0, "item_id": item["id"], "content_index": 0,
                                           "text": item["content"][0]["text"]})
        send("response.content_part.done", {"output_index": 0, "item_id": item["id"], "content_index": 0, "part": item["content"][0]})
    else:
        send("response.output_item.added", {"output_index": 0, "item": dict(item, arguments="", status="in_progress")})
        send("response.function_call_arguments.delta", {"output_index": 0, "item_id": item["id"], "delta": item["arguments"]})
        send("response.function_call_arguments.done", {"output_index": 0, "item_id": item["id"], "arguments": item["arguments"]})
    send("response.output_item.done", {"output_index": 0, "item": item})
    send("response.completed", {"response": done})
    handler.end_events()
