#!/usr/bin/env python3
"""Cross-checks of the deploy artefacts, run by deploy/check.sh (needs PyYAML, which
the check's virtualenv has through kubernetes-validate).

  static REPO RENDERED...
      The Dockerfile against Cargo.toml and .dockerignore, and every rendered overlay
      against the Dockerfile and against the eventbus.toml it ships: binary name and
      path, non-root numeric user, ports (EXPOSE, image environment, config file,
      containerPort, probes, Services, scrape annotations), config paths, security
      context, terminationGracePeriodSeconds longer than drain_delay +
      shutdown_deadline, a PodDisruptionBudget. By backend: `rocksdb` runs as a
      one-replica StatefulSet with the data folder on a volume; `jetstream` runs as a
      Deployment of several replicas without a data volume, with nats_replicas = 3,
      nats_url naming the pods of the NATS StatefulSet in the same render, and that
      StatefulSet checked too (nats.conf: routes, max_payload, server_name, store on
      the volume, ports; probes on /healthz, security context, PodDisruptionBudget);
      its eventbus pod must match the RocksDB renders' pod (ports, probes, security).
      Prints one line per problem.
  podfs RENDERED ROOT DEV_TLS_DIR JWKS
      Lays out under ROOT the files the overlay's pod sees (config file and topic
      files from the rendered ConfigMaps at their mount paths; development stand-ins
      for mounted Secrets), rewrites the config file's absolute paths into ROOT and its
      addresses to 127.0.0.1:0, and prints what the started server must report:
      `config=PATH tls=BOOL auth=MODE topics=N backend=NAME grace=SECONDS` (the pod's
      terminationGracePeriodSeconds).
  local-nats CONFIG URL
      Points a laid-out jetstream config file at a single local nats-server: nats_url
      = URL and nats_replicas = 1.
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


def workload(docs, container_name):
    """The StatefulSet or Deployment running a container of that name, and the container."""
    for d in docs:
        if d.get("kind") in ("StatefulSet", "Deployment"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                if c["name"] == container_name:
                    return d, c
    return None, None


def pod_config(docs):
    """The eventbus workload, its pod and container, and the eventbus.toml it mounts
    (path and text)."""
    sts, container = workload(docs, "eventbus")
    if sts is None:
        raise SystemExit("no StatefulSet or Deployment with an eventbus container")
    pod = sts["spec"]["template"]["spec"]
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

    rocksdb_pods, jetstream_pods = [], []
    for path in rendered:
        docs = documents(path)
        where = os.path.basename(path)
        if not docs:
            bad(f"{where}: no resources")
            continue
        sts, pod, container, config_path, config_text = pod_config(docs)
        config = tomllib.loads(config_text)
        backend = config.get("backend", "rocksdb")
        keys = [("listen", "EVENTBUS_LISTEN"), ("metrics_listen", "EVENTBUS_METRICS_LISTEN"),
                ("health_listen", "EVENTBUS_HEALTH_LISTEN"), ("topics", "EVENTBUS_TOPICS")]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        if backend == "rocksdb":
            rocksdb_pods.append((where, pod, container))
            keys.append(("data_dir", "EVENTBUS_DATA_DIR"))
            if sts["kind"] != "StatefulSet":
                bad(f"{where}: the rocksdb backend runs as a StatefulSet (its data volume), not a {sts['kind']}")
            if sts["spec"].get("replicas") != 1:
                bad(f"{where}: replicas must be 1 (single-writer RocksDB backend)")
            if env.get("EVENTBUS_DATA_DIR") not in mounts:
                bad(f"{where}: nothing is mounted at the data folder {env.get('EVENTBUS_DATA_DIR')}")
        elif backend == "jetstream":
            jetstream_pods.append((where, pod, container))
            problems.extend(f"{where}: {p}" for p in
                            cluster_checks(docs, sts, pod, container, config, env))
        else:
            bad(f"{where}: unknown backend {backend!r}")
        for key, env_key in keys:
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
        ports_by_app = {}
        for w in find(docs, "StatefulSet") + find(docs, "Deployment"):
            labels = w["spec"]["template"]["metadata"].get("labels", {})
            ports_by_app[w["metadata"]["name"]] = (labels, {
                p["name"]: p["containerPort"]
                for c in w["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])})
        for svc in find(docs, "Service"):
            selector = svc["spec"].get("selector", {})
            targets = [ports for labels, ports in ports_by_app.values()
                       if selector.items() <= labels.items()]
            if not targets:
                bad(f"{where}: Service {svc['metadata']['name']} selects no pods")
                continue
            for p in svc["spec"]["ports"]:
                target = p.get("targetPort", p["port"])
                if not all(target in t or target in t.values() for t in targets):
                    bad(f"{where}: Service {svc['metadata']['name']} targets {target}, no such port")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        drain = seconds(config.get("drain_delay", "0s")) + seconds(config.get("shutdown_deadline", "10s"))
        if not grace > drain:
            bad(f"{where}: terminationGracePeriodSeconds {grace} <= drain_delay + shutdown_deadline ({drain:g}s)")
        run_as = container.get("securityContext", {}).get(
            "runAsUser", pod.get("securityContext", {}).get("runAsUser"))
        if run_as != uid:
            bad(f"{where}: runAsUser {run_as} != the image's USER {uid}")
        problems.extend(f"{where}: {p}" for p in security_problems(pod, container))
        if not budget_for(docs, sts):
            bad(f"{where}: no PodDisruptionBudget for {sts['kind']} {sts['metadata']['name']}")
    # The Deployment restates the base StatefulSet's pod (minus the volume): keep them equal.
    for where, pod, container in jetstream_pods:
        for other, rpod, rcontainer in rocksdb_pods:
            for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe",
                        "securityContext", "args"):
                if container.get(key) != rcontainer.get(key):
                    bad(f"{where}: the eventbus container's {key} differs from {other}'s")
            fs_free = {k: v for k, v in rpod.get("securityContext", {}).items()
                       if not k.startswith("fsGroup")}
            if pod.get("securityContext") != fs_free:
                bad(f"{where}: the pod securityContext differs from {other}'s (fsGroup aside)")
    return problems


def security_problems(pod, container):
    """What a container lacks of the restricted security context."""
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    checks = {
        "runAsNonRoot": csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True,
        "a numeric non-root runAsUser": (csc.get("runAsUser", psc.get("runAsUser")) or 0) > 0,
        "readOnlyRootFilesystem": csc.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation false": csc.get("allowPrivilegeEscalation") is False,
        "capabilities drop ALL": csc.get("capabilities", {}).get("drop") == ["ALL"],
        "seccompProfile RuntimeDefault": (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
    }
    return [f"container {container['name']}: securityContext lacks {name}"
            for name, good in checks.items() if not good]


def budget_for(docs, workload_doc):
    """The PodDisruptionBudgets whose selector matches the workload's pods."""
    labels = workload_doc["spec"]["template"]["metadata"].get("labels", {})
    return [b for b in find(docs, "PodDisruptionBudget")
            if b["spec"].get("selector", {}).get("matchLabels", {}).items() <= labels.items()]


def size_bytes(text):
    """A NATS config size ("2MB", "9GB", "512K") or a Kubernetes quantity ("10Gi")."""
    match = re.fullmatch(r"(\d+)\s*([KMGT]?)(i?B?)", str(text).strip(), re.IGNORECASE)
    if not match:
        raise ValueError(f"cannot read size {text!r}")
    number, unit, suffix = match.groups()
    power = "KMGT".index(unit.upper()) + 1 if unit else 0
    # Both nats-server and Kubernetes read "MB", "Mi", "MiB" in powers of 1024 and a
    # bare "M" in powers of 1000.
    return int(number) * (1024 if suffix else 1000) ** power


def nats_conf_value(text, key):
    """The value of a top-level or block key in nats.conf (first occurrence), unquoted."""
    match = re.search(rf'(?m)^\s*{key}\b\s*[:=]?\s*"?([^"\n#]+?)"?\s*(?:#.*)?$', text)
    return match.group(1).strip() if match else None


def cluster_checks(docs, deployment, pod, container, config, env):
    """The jetstream backend's deployment: a Deployment without a data volume and the NATS
    JetStream StatefulSet that nats_url points to."""
    problems = []
    bad = problems.append
    if deployment["kind"] != "Deployment":
        bad(f"the jetstream backend keeps no state: run it as a Deployment, not a {deployment['kind']}")
    if (deployment["spec"].get("replicas") or 1) < 2:
        bad("the jetstream backend is for several replicas: replicas >= 2")
    data_dir = env.get("EVENTBUS_DATA_DIR")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        volume = volumes.get(m["name"], {})
        if m["mountPath"] == data_dir or "persistentVolumeClaim" in volume or "ephemeral" in volume:
            bad(f"no data volume with the jetstream backend, but {m['name']} is mounted at {m['mountPath']}")
    if deployment["spec"].get("volumeClaimTemplates"):
        bad("no volumeClaimTemplates with the jetstream backend")
    if config.get("nats_replicas") != 3:
        bad(f"nats_replicas = {config.get('nats_replicas')!r}: 3, so that losing a NATS node loses no acknowledged event")

    nats, nats_container = workload(docs, "nats")
    if nats is None:
        bad("no NATS StatefulSet (a workload with a container named nats) in the render")
        return problems
    name, replicas = nats["metadata"]["name"], nats["spec"].get("replicas", 1)
    namespace = nats["metadata"].get("namespace")
    if nats["kind"] != "StatefulSet" or replicas != 3:
        bad(f"NATS must be a three-replica StatefulSet (is a {nats['kind']} of {replicas})")
    if (config.get("nats_replicas") or 1) > replicas:
        bad(f"nats_replicas {config.get('nats_replicas')} > the {replicas} NATS nodes")
    headless = nats["spec"].get("serviceName")
    svc = find(docs, "Service", headless)
    if not svc or svc[0]["spec"].get("clusterIP") != "None" \
            or svc[0]["spec"].get("publishNotReadyAddresses") is not True:
        bad(f"the NATS StatefulSet's serviceName {headless!r} must be a headless Service "
            "that publishes not-ready pods (the nodes route to each other while starting)")
    nats_ports = {p["name"]: p["containerPort"] for p in nats_container.get("ports", [])}
    pod_names = [f"{name}-{i}" for i in range(replicas)]
    # A pod's DNS name, short (resolved in the pod's namespace) or qualified.
    host_re = re.compile(rf"({'|'.join(map(re.escape, pod_names))})\.{re.escape(headless or '')}"
                         rf"(\.{re.escape(namespace or '')}\.svc(\.cluster\.local)?)?")

    def pods_named(urls, port, what):
        seen = set()
        for url in urls:
            m = re.fullmatch(r"(nats|tls)://(?:[^@/]+@)?([^:/]+):(\d+)/?", url.strip())
            if not m or not host_re.fullmatch(m.group(2)):
                bad(f"{what} {url!r} is not a NATS pod of {name} by its {headless} name")
                continue
            if int(m.group(3)) != port:
                bad(f"{what} {url!r}: port {m.group(3)}, but the NATS pods listen on {port}")
            seen.add(host_re.fullmatch(m.group(2)).group(1))
        if seen != set(pod_names):
            bad(f"{what} names {sorted(seen)}, not every NATS pod {pod_names}")

    pods_named(str(config.get("nats_url", "")).split(","), nats_ports.get("client"), "nats_url")

    # nats.conf, from the ConfigMap mounted where --config points.
    args = nats_container.get("command", []) + nats_container.get("args", [])
    flag = next((f for f in ("--config", "-c") if f in args), None)
    if flag is None:
        bad("the NATS container is not started with --config")
        return problems
    conf_path = args[args.index(flag) + 1]
    nats_pod = nats["spec"]["template"]["spec"]
    nats_volumes = {v["name"]: v for v in nats_pod.get("volumes", [])}
    conf = None
    for m in nats_container.get("volumeMounts", []):
        cm = nats_volumes.get(m["name"], {}).get("configMap")
        if cm and os.path.dirname(conf_path) == m["mountPath"].rstrip("/"):
            data = find(docs, "ConfigMap", cm["name"])[0]["data"]
            conf = data.get(os.path.basename(conf_path))
    if conf is None:
        bad(f"no ConfigMap provides {conf_path}")
        return problems
    max_event = config.get("max_event_bytes", 1048576)
    payload = nats_conf_value(conf, "max_payload")
    if payload is None or size_bytes(payload) < max_event + 64 * 1024:
        bad(f"nats.conf max_payload {payload}: events of max_event_bytes ({max_event}) plus "
            "headers need more (e.g. 2MB)")
    if nats_conf_value(conf, "server_name") != "$POD_NAME" or not any(
            e["name"] == "POD_NAME" and e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
            for e in nats_container.get("env", [])):
        bad("nats.conf server_name must be $POD_NAME, with POD_NAME set from metadata.name")
    for key, port_name in (("port", "client"), ("http_port", "monitor")):
        if str(nats_ports.get(port_name)) != nats_conf_value(conf, key):
            bad(f"nats.conf {key} {nats_conf_value(conf, key)} != containerPort {port_name} {nats_ports.get(port_name)}")
    cluster_block = re.search(r"(?s)\bcluster\s*\{(.*?)\n\}", conf)
    if not cluster_block:
        bad("nats.conf has no cluster block")
    else:
        block = cluster_block.group(1)
        if str(nats_ports.get("cluster")) != nats_conf_value(block, "port"):
            bad(f"nats.conf cluster port != containerPort cluster {nats_ports.get('cluster')}")
        routes = re.findall(r"(?:nats|tls)://[^\s,\]]+", block)
        pods_named(routes, nats_ports.get("cluster"), "cluster route")
    js_block = re.search(r"(?s)\bjetstream\s*\{(.*?)\n\}", conf)
    store = nats_conf_value(js_block.group(1), "store_dir") if js_block else None
    claims = {t["metadata"]["name"]: t for t in nats["spec"].get("volumeClaimTemplates", [])}
    store_mount = next((m for m in nats_container.get("volumeMounts", [])
                        if store and m["mountPath"].rstrip("/") == store.rstrip("/")), None)
    if not store_mount or store_mount["name"] not in claims:
        bad(f"nats.conf jetstream store_dir {store} is not on a volumeClaimTemplate")
    else:
        limit = nats_conf_value(js_block.group(1), "max_file_store")
        size = claims[store_mount["name"]]["spec"]["resources"]["requests"]["storage"]
        if limit is None or size_bytes(limit) >= size_bytes(size):
            bad(f"jetstream max_file_store {limit} must stay below the volume's {size}")
    ldm = sum(seconds(nats_conf_value(conf, k) or "0s")
              for k in ("lame_duck_duration", "lame_duck_grace_period"))
    if ldm and not nats_pod.get("terminationGracePeriodSeconds", 30) > ldm:
        bad(f"NATS terminationGracePeriodSeconds must exceed lame duck mode ({ldm:g}s)")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = (nats_container.get(probe) or {}).get("httpGet", {})
        if nats_ports.get(http.get("port"), http.get("port")) != nats_ports.get("monitor") \
                or not str(http.get("path", "")).startswith("/healthz"):
            bad(f"NATS {probe} must GET /healthz on the monitor port")
        elif probe != "startupProbe" and http["path"] != "/healthz?js-enabled-only=true":
            bad(f"NATS {probe} should be /healthz?js-enabled-only=true (a lagging stream must not restart the node)")
    image = nats_container.get("image", "")
    if not re.search(r":\d+\.\d+\.\d+", image):
        bad(f"NATS image {image!r} is not pinned to a release (x.y.z)")
    problems.extend(security_problems(nats_pod, nats_container))
    budgets = budget_for(docs, nats)
    if not budgets or any(b["spec"].get("maxUnavailable") != 1 for b in budgets):
        bad("NATS needs a PodDisruptionBudget with maxUnavailable 1 (keep the RAFT quorum)")
    if any(b["spec"].get("maxUnavailable") not in (1, None) for b in budget_for(docs, deployment)):
        bad("the eventbus PodDisruptionBudget should allow one eviction at a time (maxUnavailable 1)")
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
    backend = config.get("backend", "rocksdb")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    print(f"config={dest} tls={tls} auth={auth} topics={topics} backend={backend} grace={grace}")
    return 0


def local_nats(config_path, url):
    """Points a laid-out jetstream config at one local nats-server (one replica)."""
    with open(config_path, encoding="utf-8") as f:
        text = f.read()
    for key, value in (("nats_url", f'"{url}"'), ("nats_replicas", "1")):
        text, count = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", text)
        if count == 0:
            text += f"\n{key} = {value}\n"
    config = tomllib.loads(text)
    assert config["nats_url"] == url and config["nats_replicas"] == 1, config
    with open(config_path, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "static":
        problems = static(sys.argv[2], sys.argv[3:])
        for p in problems:
            print(p)
        return 1 if problems else 0
    if len(sys.argv) == 6 and sys.argv[1] == "podfs":
        return podfs(*sys.argv[2:])
    if len(sys.argv) == 4 and sys.argv[1] == "local-nats":
        return local_nats(*sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
