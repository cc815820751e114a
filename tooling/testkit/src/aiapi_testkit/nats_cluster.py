"""A JetStream cluster of three ``nats-server`` processes on loopback, for tests of failover.

Each node has its own client, cluster (route) and monitoring port and its own store directory;
any node can be killed (SIGKILL: a lost machine) and started again on the same ports and store,
where it catches up from the others. Three nodes keep a quorum with one of them down, so streams
and buckets at three replicas stay writable through the loss of any one node.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from aiapi_cli.embedded import nats_server_binary, write_private
from aiapi_cli.ports import free_port

HOST = "127.0.0.1"


class ClusterError(RuntimeError):
    pass


@dataclass
class NatsNode:
    name: str
    directory: Path
    port: int
    cluster_port: int
    monitor_port: int
    kills: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def config(self, routes: list[str], cluster_name: str, extra: str) -> str:
        store = json.dumps(str(self.directory / "jetstream"))
        route_list = ", ".join(json.dumps(r) for r in routes)
        return (
            f"server_name: {json.dumps(self.name)}\n"
            f"listen: {json.dumps(f'{HOST}:{self.port}')}\n"
            f"http: {json.dumps(f'{HOST}:{self.monitor_port}')}\n"
            f"jetstream {{ store_dir: {store} }}\n"
            f"cluster {{\n  name: {json.dumps(cluster_name)}\n"
            f"  listen: {json.dumps(f'{HOST}:{self.cluster_port}')}\n"
            f"  routes: [{route_list}]\n}}\n" + extra
        )

    def start(self, config_text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "nats.conf"
        write_private(path, config_text)  # it holds the users' passwords
        log = self.directory / "nats-server.log"
        argv = [str(nats_server_binary()), "-c", str(path), "-l", str(log)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        """SIGKILL: nothing flushed, no goodbye to the cluster (a lost machine)."""
        self.kills += 1
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)
        self._proc = None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None

    def violations(self) -> list[str]:
        """The log's lines about a client refused a publish or subscribe (permissions)."""
        log = self.directory / "nats-server.log"
        if not log.exists():
            return []
        return [
            line
            for line in log.read_text("utf-8", "replace").splitlines()
            if "Violation - Subject" in line
        ]

    def monitor(self, path: str) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(
                f"http://{HOST}:{self.monitor_port}{path}", timeout=2
            ) as answer:
                data: dict[str, object] = json.loads(answer.read())
                return data
        except (OSError, ValueError):
            return None


@dataclass
class NatsCluster:
    """Three JetStream nodes routed to each other; ``extra_config`` is appended to every node's
    configuration (an ``authorization`` block, say)."""

    directory: Path
    size: int = 3
    extra_config: str = ""
    name: str = "aiapi-test"
    nodes: list[NatsNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes = [
                NatsNode(
                    name=f"n{i + 1}",
                    directory=self.directory / f"n{i + 1}",
                    port=free_port(HOST),
                    cluster_port=free_port(HOST),
                    monitor_port=free_port(HOST),
                )
                for i in range(self.size)
            ]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated (what ``AIAPI_NATS_URL`` takes)."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> NatsNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def _routes(self) -> list[str]:
        return [f"nats-route://{HOST}:{n.cluster_port}" for n in self.nodes]

    def start(self, *, timeout_s: float = 60.0) -> None:
        for node in self.nodes:
            node.start(node.config(self._routes(), self.name, self.extra_config))
        self.wait_healthy(timeout_s=timeout_s)

    def restart(self, node: NatsNode, *, timeout_s: float = 60.0) -> None:
        node.start(node.config(self._routes(), self.name, self.extra_config))
        self.wait_healthy(timeout_s=timeout_s)

    def wait_healthy(self, *, timeout_s: float) -> None:
        """Until every running node answers ``/healthz`` (JetStream current: it has a meta
        leader and its streams have caught up) and the nodes agree on one meta leader."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            running = [n for n in self.nodes if n.running]
            health = [n.monitor("/healthz") for n in running]
            leaders = {self._meta_leader(n) for n in running}
            if all(h is not None and h.get("status") == "ok" for h in health) and (
                len(leaders) == 1 and None not in leaders
            ):
                return
            for node in self.nodes:
                if node._proc is not None and node._proc.poll() is not None:
                    raise ClusterError(f"nats-server {node.name} exited; see {node.directory}")
            time.sleep(0.1)
        raise ClusterError("the NATS cluster did not become healthy in time")

    @staticmethod
    def _meta_leader(node: NatsNode) -> str | None:
        jsz = node.monitor("/jsz")
        meta = jsz.get("meta_cluster") if jsz else None
        leader = meta.get("leader") if isinstance(meta, dict) else None
        return str(leader) if leader else None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def violations(self) -> list[str]:
        """Permission refusals, but for one a node loss causes by design: a service that got a
        request through the lost node and answers it through another may not publish the reply
        (a server allows an answer only to a request it delivered itself); the requester's wait
        times out, as it would had the answer been lost with the node."""
        lost = any(node.kills for node in self.nodes)
        return [
            line
            for node in self.nodes
            for line in node.violations()
            if not (lost and 'Publish Violation - Subject "_INBOX.' in line)
        ]
