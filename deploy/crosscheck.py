#!/usr/bin/env python3
"""Cross-checks of the deploy artefacts, run by deploy/check.sh (needs PyYAML, which
the check's virtualenv has through kubernetes-validate).

  static REPO RENDERED...
      The Dockerfile against Cargo.toml and .dockerignore, and every rendered overlay
      against the Dockerfile and against the eventbus.toml it ships: binary name and
      path, non-root numeric user, ports (EXPOSE, image environment, config file,
      containerPort, probes, Services, scrape annotations), data and config paths,
      security context, one replica, and terminationGracePeriodSeconds longer than
      drain_delay + shutdown_deadline. Prints one line per problem.
  podfs RENDERED ROOT DEV_TLS_DIR JWKS
      Lays out under ROOT the files the overlay's pod sees (config file and topic
      files from the rendered ConfigMaps at their mount paths; development stand-ins
      for mounted Secrets), rewrites the config file's absolute paths into ROOT and its
      addresses to 127.0.0.1:0, and prints what the started server must report:
      `config=PATH tls=BOOL auth=MODE topics=N`.
"""
import os
import re
import shutil
import sys
import tomllib

import yaml

# Files a Secret volume would hold, filled with development material for the run.
SECRET_STAND_INS = {
    "tls.crt": ("tls", "server.pem"),
    "tls.key": ("tls", "server-key.pem"),
    "ca.crt": ("tls", "ca.pem"),
    "jwks.json": ("jwks", None),
}


def seconds(text):
    """A humantime duration of the kinds the config files use ("500ms", "5s", "1m")."""
    total = 0.0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise ValueError(f"cannot read duration {text!r}")
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def parse_dockerfile(path):
    """Instructions of the final stage, and the whole text."""
    text = open(path, encoding="utf-8").read()
    joined = re.sub(r"\\\n", " ", text)
    stages, current = [], None
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            current = {"FROM": rest.strip(), "ENV": {}, "EXPOSE": [], "RUN": [], "COPY": [],
                       "USER": None, "ENTRYPOINT": None, "VOLUME": []}
            stages.append(current)
        elif current is None:
            continue
        elif word == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                current["ENV"][key] = value
        elif word == "EXPOSE":
            current["EXPOSE"] += [int(p.split("/")[0]) for p in rest.split()]
        elif word in ("RUN", "COPY"):
            current[word].append(rest)
        elif word == "USER":
            current["USER"] = rest.strip()
        elif word == "ENTRYPOINT":
            current["ENTRYPOINT"] = yaml.safe_load(rest)
        elif word == "VOLUME":
            current["VOLUME"] += yaml.safe_load(rest)
    return stages, text


def documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(docs, kind, name=None):
    return [d for d in docs if d.get("kind") == kind
            and (name is None or d["metadata"]["name"] == name)]


def pod_config(docs):
    """The StatefulSet, its container and the eventbus.toml it mounts (parsed)."""
    sts = find(docs, "StatefulSet")[0]
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container.get("args", [])
    config_path = args[args.index("--config") + 1]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == config_path)
    cm_name = volumes[mount["name"]]["configMap"]["name"]
    text = find(docs, "ConfigMap", cm_name)[0]["data"][mount["subPath"]]
    return sts, pod, container, config_path, text


def static(repo, rendered):
    problems = []
    bad = problems.append
    cargo = tomllib.load(open(os.path.join(repo, "Cargo.toml"), "rb"))
    bins = [b["name"] for b in cargo.get("bin", [])] or [cargo["package"]["name"]]
    binary = "eventbus"
    if binary not in bins:
        bad(f"Cargo.toml declares no binary {binary!r} (has {bins})")
    stages, text = parse_dockerfile(os.path.join(repo, "Dockerfile"))
    final = stages[-1]
    build = " ".join(" ".join(s["RUN"]) for s in stages[:-1])
    if f"--bin {binary}" not in build or "--locked" not in build or "--release" not in build:
        bad(f"the build stage must run cargo build --release --locked --bin {binary}")
    if f"target/release/{binary}" not in build:
        bad(f"the build stage must take target/release/{binary}")
    entry = final["ENTRYPOINT"] or [""]
    if not any(c.split()[-1] == entry[0] for c in final["COPY"]):
        bad(f"ENTRYPOINT {entry[0]!r} is not where the final stage copies the binary")
    if os.path.basename(entry[0]) != binary:
        bad(f"ENTRYPOINT {entry[0]!r} does not run the {binary!r} binary")
    user = (final["USER"] or "").split(":")
    if not all(u.isdigit() for u in user) or int(user[0]) == 0:
        bad(f"USER {final['USER']!r} must be a numeric non-root uid[:gid]")
    uid = int(user[0]) if user[0].isdigit() else None
    env = final["ENV"]
    for key in ("EVENTBUS_LISTEN", "EVENTBUS_METRICS_LISTEN", "EVENTBUS_HEALTH_LISTEN",
                "EVENTBUS_DATA_DIR", "EVENTBUS_TOPICS"):
        if key not in env:
            bad(f"the image does not set {key}")
    ports = {port_of(env.get("EVENTBUS_LISTEN", ":0")),
             port_of(env.get("EVENTBUS_METRICS_LISTEN", ":0")),
             port_of(env.get("EVENTBUS_HEALTH_LISTEN", ":0"))}
    if set(final["EXPOSE"]) != ports:
        bad(f"EXPOSE {final['EXPOSE']} != listen, metrics and health ports {sorted(ports)}")
    if env.get("EVENTBUS_DATA_DIR") not in final["VOLUME"]:
        bad(f"VOLUME {final['VOLUME']} does not hold EVENTBUS_DATA_DIR")
    if not final["FROM"].startswith("debian:bookworm-slim"):
        bad(f"runtime base {final['FROM']!r}: expected debian:bookworm-slim (same glibc as the build)")
    # .dockerignore is an allowlist: what the build reads must be let back in.
    allowed = [line[1:].strip().rstrip("/") for line in
               open(os.path.join(repo, ".dockerignore"), encoding="utf-8")
               if line.startswith("!")]
    needed = ["Cargo.toml", "Cargo.lock", "build.rs", "src", "proto"]
    for section in ("bin", "bench", "test"):
        needed += [t["path"] for t in cargo.get(section, []) if "path" in t]
    for path in needed:
        if not any(path == a or path.startswith(a + "/") for a in allowed):
            bad(f".dockerignore keeps out {path}, which the build needs")

    for path in rendered:
        docs = documents(path)
        where = os.path.basename(path)
        if not docs:
            bad(f"{where}: no resources")
            continue
        sts, pod, container, config_path, config_text = pod_config(docs)
        config = tomllib.loads(config_text)
        if sts["spec"].get("replicas") != 1:
            bad(f"{where}: replicas must be 1 (single-writer RocksDB backend)")
        for key, env_key in (("listen", "EVENTBUS_LISTEN"),
                             ("metrics_listen", "EVENTBUS_METRICS_LISTEN"),
                             ("health_listen", "EVENTBUS_HEALTH_LISTEN"),
                             ("data_dir", "EVENTBUS_DATA_DIR"), ("topics", "EVENTBUS_TOPICS")):
            if config.get(key) != env.get(env_key):
                bad(f"{where}: eventbus.toml {key} = {config.get(key)!r} but the image's "
                    f"{env_key} (which wins) is {env.get(env_key)!r}")
        named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if set(named.values()) != set(final["EXPOSE"]):
            bad(f"{where}: containerPorts {named} != EXPOSE {final['EXPOSE']}")
        grpc_port = port_of(config.get("listen", ":0"))
        metrics_port = port_of(config.get("metrics_listen", ":0") or ":0")
        health_port = port_of(config.get("health_listen", ":0") or ":0")
        if (named.get("grpc"), named.get("metrics"), named.get("health")) != (
                grpc_port, metrics_port, health_port):
            bad(f"{where}: named ports {named} != listen {grpc_port} / metrics {metrics_port}"
                f" / health {health_port}")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            spec = container.get(probe)
            if not spec:
                bad(f"{where}: no {probe}")
                continue
            action = spec.get("grpc") or spec.get("tcpSocket") or {}
            port = action.get("port")
            port = named.get(port, port)
            # The kubelet's gRPC probe is plaintext: the health-only port, or the
            # main port when it has no TLS.
            if port not in (grpc_port, health_port):
                bad(f"{where}: {probe} checks port {port}, neither gRPC {grpc_port} nor health {health_port}")
            if "grpc" in spec and port == grpc_port and config.get("tls_cert"):
                bad(f"{where}: {probe} is a plaintext gRPC probe but the port speaks TLS")
        annotations = sts["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/port") not in (None, str(metrics_port)):
            bad(f"{where}: prometheus.io/port {annotations.get('prometheus.io/port')} != {metrics_port}")
        for svc in find(docs, "Service"):
            for p in svc["spec"]["ports"]:
                target = p.get("targetPort", p["port"])
                if named.get(target, target) not in named.values():
                    bad(f"{where}: Service {svc['metadata']['name']} targets {target}, no such port")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        drain = seconds(config.get("drain_delay", "0s")) + seconds(config.get("shutdown_deadline", "10s"))
        if not grace > drain:
            bad(f"{where}: terminationGracePeriodSeconds {grace} <= drain_delay + shutdown_deadline ({drain:g}s)")
        psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
        run_as = csc.get("runAsUser", psc.get("runAsUser"))
        if run_as != uid:
            bad(f"{where}: runAsUser {run_as} != the image's USER {uid}")
        checks = {
            "runAsNonRoot": csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True,
            "readOnlyRootFilesystem": csc.get("readOnlyRootFilesystem") is True,
            "allowPrivilegeEscalation false": csc.get("allowPrivilegeEscalation") is False,
            "capabilities drop ALL": csc.get("capabilities", {}).get("drop") == ["ALL"],
            "seccompProfile RuntimeDefault": (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
        }
        for name, good in checks.items():
            if not good:
                bad(f"{where}: securityContext lacks {name}")
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        if env.get("EVENTBUS_DATA_DIR") not in mounts:
            bad(f"{where}: nothing is mounted at the data folder {env.get('EVENTBUS_DATA_DIR')}")
        if not find(docs, "PodDisruptionBudget"):
            bad(f"{where}: no PodDisruptionBudget")
    return problems


def podfs(rendered, root, dev_tls, jwks):
    docs = documents(rendered)
    sts, pod, container, config_path, config_text = pod_config(docs)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    topics = 0
    config = tomllib.loads(config_text)
    topics_dir = config.get("topics", "")
    for m in container["volumeMounts"]:
        volume = volumes.get(m["name"], {})
        target = os.path.join(root, m["mountPath"].lstrip("/"))
        if "configMap" in volume:
            data = find(docs, "ConfigMap", volume["configMap"]["name"])[0]["data"]
            items = {m["subPath"]: target} if "subPath" in m else {
                k: os.path.join(target, k) for k in data}
            for key, dest in items.items():
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "w", encoding="utf-8") as f:
                    f.write(data[key])
                if topics_dir and m["mountPath"].startswith(topics_dir + "/") and dest.endswith(".avsc"):
                    topics += 1
        elif "secret" in volume:
            os.makedirs(target, exist_ok=True)
            for name, (kind, source) in SECRET_STAND_INS.items():
                src = jwks if kind == "jwks" else os.path.join(dev_tls, source)
                shutil.copyfile(src, os.path.join(target, name))
        elif "persistentVolumeClaim" in volume or m["name"] in [
                t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]:
            os.makedirs(target, exist_ok=True)
    # The config file as the server will read it: paths into ROOT, loopback addresses.
    text = config_text
    for prefix in ("/etc/eventbus", "/var/lib/eventbus"):
        text = text.replace(f'"{prefix}', f'"{os.path.join(root, prefix.lstrip("/"))}')
    text = re.sub(r'(?m)^(listen|metrics_listen|health_listen)\s*=\s*"[^"]+"', r'\1 = "127.0.0.1:0"', text)
    dest = os.path.join(root, config_path.lstrip("/"))
    with open(dest, "w", encoding="utf-8") as f:
        f.write(text)
    tls = "true" if config.get("tls_cert") else "false"
    auth = config.get("auth", "none").capitalize()
    print(f"config={dest} tls={tls} auth={auth} topics={topics}")
    return 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "static":
        problems = static(sys.argv[2], sys.argv[3:])
        for p in problems:
            print(p)
        return 1 if problems else 0
    if len(sys.argv) == 6 and sys.argv[1] == "podfs":
        return podfs(*sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
