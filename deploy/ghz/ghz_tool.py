#!/usr/bin/env python3
"""Checks and renders the ghz scenario files in deploy/ghz without ghz itself.

ghz (a Go program) is not installable from the registries this project uses, so
deploy/ghz/check.sh replays each scenario with grpcurl. This script does the parts
that need to understand a ghz config file:

  validate FILE... --schema-id ID --payload B64
      Every key is a documented ghz config key, the call goes through server
      reflection (no proto/protoset), the auth metadata is present, and every
      event carries the topic's schema id and the committed Avro payload.
  render FILE
      Prints the request messages one ghz call would send, as JSON lines for
      `grpcurl -d @`, with ghz's template actions evaluated the way ghz does
      ({{newUUID}} per evaluation, {{.UUID}} and {{.RequestNumber}} per call);
      with "stream-dynamic-messages" the template is evaluated for every message.
  metadata FILE
      Prints the metadata as `name: value` lines (for grpcurl -H).
  set-payload FILE... --schema-id ID --payload B64
      Rewrites schema_id and payload of every event (used by make-payload.sh).
"""
import argparse
import json
import re
import sys
import time
import uuid

# Config keys of ghz's JSON config file (ghz.sh/docs/options and runner.Config);
# a typo in a key would otherwise be ignored by ghz silently.
GHZ_KEYS = {
    "proto", "protoset", "call", "import-paths", "cacert", "cert", "key", "cname",
    "skipTLS", "skipFirst", "skip-first", "insecure", "authority", "async", "rps", "load-schedule",
    "load-start", "load-end", "load-step", "load-step-duration", "load-max-duration",
    "concurrency", "concurrency-schedule", "concurrency-start", "concurrency-end",
    "concurrency-step", "concurrency-step-duration", "concurrency-max-duration",
    "total", "timeout", "duration", "max-duration", "duration-stop", "data",
    "data-file", "binary-file", "metadata", "metadata-file", "stream-interval",
    "stream-call-duration", "stream-call-count", "stream-dynamic-messages",
    "reflect-metadata", "max-recv-message-size", "max-send-message-size", "output",
    "format", "connections", "connect-timeout", "keepalive", "name", "tags", "cpus",
    "debug", "host", "enable-compression", "lb-strategy", "count-errors",
    "disable-template-functions", "disable-template-data",
}
REQUIRED = {"call", "host", "insecure", "data", "metadata", "total", "concurrency"}
AUTH_HEADERS = {"accesstoken", "instanceurl", "tenantid"}
CALLS = {
    "eventbus.v1.PubSub/Publish": "unary",
    "eventbus.v1.PubSub/PublishStream": "bidi",
    "eventbus.v1.PubSub/Subscribe": "bidi",
}
ACTION = re.compile(r"{{\s*(.*?)\s*}}")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def events_of(data):
    """The ProducerEvents of a Publish/PublishStream request (or none)."""
    items = data if isinstance(data, list) else [data]
    return [e for item in items for e in item.get("events", [])]


def validate(paths, schema_id, payload):
    problems = []
    for path in paths:
        cfg = load(path)
        bad = lambda msg: problems.append(f"{path}: {msg}")  # noqa: E731
        for key in sorted(set(cfg) - GHZ_KEYS):
            bad(f"unknown ghz config key {key!r}")
        for key in sorted(REQUIRED - set(cfg)):
            bad(f"missing key {key!r}")
        for key in ("proto", "protoset"):
            if key in cfg:
                bad(f"{key!r} set: the scenarios use server reflection")
        if cfg.get("call") not in CALLS:
            bad(f"call {cfg.get('call')!r} is not one of {sorted(CALLS)}")
        if cfg.get("insecure") is not True:
            bad('"insecure" must be true (the README\'s local server is plaintext)')
        missing = AUTH_HEADERS - set(cfg.get("metadata", {}))
        if missing:
            bad(f"metadata lacks {sorted(missing)}")
        data = cfg.get("data")
        if not isinstance(data, (dict, list)) or data == []:
            bad("data must be an object or a non-empty array of objects")
            continue
        if cfg.get("call", "").endswith("/PublishStream"):
            if not cfg.get("stream-call-count"):
                bad("PublishStream needs stream-call-count (messages per stream)")
            if cfg.get("stream-dynamic-messages") is not True:
                bad("PublishStream needs stream-dynamic-messages so event ids differ")
        if cfg.get("call", "").endswith("/Subscribe") and "stream-call-count" in cfg:
            bad("Subscribe sends one FetchRequest and half-closes: no stream-call-count")
        for ev in events_of(data):
            if ev.get("schema_id") != schema_id:
                bad(f"schema_id {ev.get('schema_id')!r} != topic schema {schema_id!r}")
            if ev.get("payload") != payload:
                bad("payload differs from the one make-payload.sh encodes")
            if "newUUID" not in ev.get("id", ""):
                bad("event id must use {{newUUID}} so every event gets its own id")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


class Call:
    """Template data of one ghz call (what ghz's callTemplateData holds)."""

    def __init__(self, cfg, number):
        self.values = {
            ".RequestNumber": str(number),
            ".WorkerID": "g0c0",
            ".UUID": str(uuid.uuid4()),
            ".FullyQualifiedName": cfg["call"].replace("/", "."),
            ".MethodName": cfg["call"].rsplit("/", 1)[1],
            ".TimestampUnix": str(int(time.time())),
            ".TimestampUnixMilli": str(int(time.time() * 1000)),
        }

    def execute(self, text):
        def action(m):
            name = m.group(1)
            if name == "newUUID":
                return str(uuid.uuid4())
            if name in self.values:
                return self.values[name]
            raise SystemExit(f"template action {{{{{name}}}}} is not supported by ghz_tool.py")

        return ACTION.sub(action, text)


def render(path):
    cfg = load(path)
    call = Call(cfg, 0)
    data = cfg["data"]
    items = data if isinstance(data, list) else [data]
    if CALLS[cfg["call"]] == "unary":
        # ghz sends one message per unary call (array data: round robin over calls).
        messages = [items[0]]
        count = 1
    else:
        count = cfg.get("stream-call-count") or len(items)
        messages = [items[i % len(items)] for i in range(count)]
    dynamic = cfg.get("stream-dynamic-messages", False)
    # Without stream-dynamic-messages ghz evaluates the template once per call.
    fixed = [call.execute(json.dumps(m)) for m in items]
    for i, msg in enumerate(messages):
        text = call.execute(json.dumps(msg)) if dynamic else fixed[i % len(items)]
        print(json.dumps(json.loads(text), separators=(",", ":")))
    return 0


def metadata(path):
    cfg = load(path)
    call = Call(cfg, 0)
    for name, value in cfg.get("metadata", {}).items():
        print(f"{name}: {call.execute(value)}")
    return 0


def set_payload(paths, schema_id, payload):
    for path in paths:
        cfg = load(path)
        for ev in events_of(cfg.get("data", {})):
            ev["schema_id"] = schema_id
            ev["payload"] = payload
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["validate", "render", "metadata", "set-payload"])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--schema-id")
    ap.add_argument("--payload")
    a = ap.parse_args()
    if a.command in ("validate", "set-payload") and not (a.schema_id and a.payload):
        ap.error(f"{a.command} needs --schema-id and --payload")
    if a.command == "validate":
        return validate(a.files, a.schema_id, a.payload)
    if a.command == "set-payload":
        return set_payload(a.files, a.schema_id, a.payload)
    if len(a.files) != 1:
        ap.error(f"{a.command} takes one file")
    return render(a.files[0]) if a.command == "render" else metadata(a.files[0])


if __name__ == "__main__":
    sys.exit(main())
