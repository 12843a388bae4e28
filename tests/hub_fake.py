"""A local HTTP fake of the Hugging Face Hub API, on 127.0.0.1 (the real Hub is out of reach).

It implements the endpoints ``huggingface_hub`` calls to publish a dataset, with the Hub's
request/response shapes, so the real client library runs unmodified against it:

* ``GET  /api/whoami-v2``                                   token check (401 for unknown tokens)
* ``POST /api/repos/create``                                create (409 if it exists)
* ``POST /api/{type}s/{repo}/branch/{branch}``              create a branch (409 if it exists)
* ``POST /api/validate-yaml``                               card metadata checks (a subset of the Hub's)
* ``POST /api/{type}s/{repo}/preupload/{rev}``              upload mode (lfs/regular) + remote oid
* ``POST /{type}s/{repo}.git/info/lfs/objects/batch``       git-LFS batch API, basic transfer
* ``PUT  /_lfs/{oid}``, ``POST /_lfs/{oid}/verify``         LFS object upload (sha256 checked)
* ``POST /api/{type}s/{repo}/commit/{rev}``                 NDJSON commit (file / lfsFile / deletedFile)
* ``GET  /api/{type}s/{repo}[/revision/{rev}]``             repo info with siblings

Not faked: the Xet storage protocol. Clients must run with ``HF_HUB_DISABLE_XET=1`` so LFS files
take the classic git-LFS path (the commit API the Xet path ends with is the same).
Every request is recorded (method, path, headers, body) for the tests to inspect.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

LFS_SUFFIXES = (".parquet", ".png", ".arrow", ".bin", ".safetensors")
LICENSES = {
    "apache-2.0",
    "mit",
    "odc-by",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc0-1.0",
    "other",
    "unknown",
    "openrail",
    "cc-by-nc-4.0",
    "odbl",
    "pddl",
    "llama3",
}
SIZE_CATEGORIES = {
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
    "n>1T",
}
TASK_CATEGORIES = {
    "text-generation",
    "question-answering",
    "text-classification",
    "summarization",
    "translation",
    "fill-mask",
    "reinforcement-learning",
    "text2text-generation",
}
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    summary: str
    paths: list[str]


@dataclass
class Branch:
    files: dict[str, bytes] = field(default_factory=dict)
    lfs: set[str] = field(default_factory=set)  # paths stored as LFS
    commits: list[Commit] = field(default_factory=list)

    @property
    def sha(self) -> str:
        return self.commits[-1].oid if self.commits else "0" * 40


@dataclass
class Repo:
    repo_type: str
    private: bool
    branches: dict[str, Branch] = field(default_factory=lambda: {"main": Branch()})


def validate_card_yaml(content: str, repo_type: str) -> list[str]:
    """Errors the Hub would report for a card's YAML header (checks what tokenmill relies on)."""
    m = re.match(r"^---\n(.*?)\n---\n", content, re.S)
    if not m:
        return []
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as exc:
        return [f"invalid YAML: {exc}"]
    errors = []
    if not isinstance(meta, dict):
        return ["metadata must be a mapping"]
    lic = meta.get("license")
    if lic is not None and lic not in LICENSES:
        errors.append(f'"license" must be a known license id, got {lic!r}')
    for s in meta.get("size_categories") or []:
        if s not in SIZE_CATEGORIES:
            errors.append(f'"size_categories" has an unknown value {s!r}')
    for t in meta.get("task_categories") or []:
        if t not in TASK_CATEGORIES:
            errors.append(f'"task_categories" has an unknown value {t!r}')
    names = []
    for cfg in meta.get("configs") or []:
        if not isinstance(cfg, dict) or "config_name" not in cfg or "data_files" not in cfg:
            errors.append('"configs" entries need config_name and data_files')
            continue
        names.append(cfg["config_name"])
        for df in cfg["data_files"] if isinstance(cfg["data_files"], list) else []:
            if (
                not isinstance(df, dict)
                or not SPLIT_NAME.match(str(df.get("split", "")))
                or not df.get("path")
            ):
                errors.append(
                    f'"configs.{cfg["config_name"]}.data_files" entries need split and path'
                )
    if len(names) != len(set(names)):
        errors.append('"configs" has duplicate config names')
    infos = meta.get("dataset_info")
    infos = [infos] if isinstance(infos, dict) else (infos or [])
    for info in infos:
        if len(infos) > 1 and info.get("config_name") not in names:
            errors.append(f'"dataset_info" names unknown config {info.get("config_name")!r}')
        for sp in info.get("splits") or []:
            if not isinstance(sp.get("num_examples"), int) or not isinstance(
                sp.get("num_bytes"), int
            ):
                errors.append('"dataset_info.splits" need integer num_examples and num_bytes')
        if not isinstance(info.get("features"), list):
            errors.append('"dataset_info.features" must be a list')
    return errors


class HubFake:
    """Run with ``with HubFake(tokens={"hf_x": "alice"}) as hub: ... hub.endpoint``."""

    def __init__(self, tokens: dict[str, str]):
        self.tokens = dict(tokens)
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[dict[str, Any]] = []
        self.validated_yaml: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubFake:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ----------------------------------------------------------------- handlers

    def _user(self, headers) -> str | None:
        auth = headers.get("Authorization", "")
        return (
            self.tokens.get(auth.removeprefix("Bearer ").strip())
            if auth.startswith("Bearer ")
            else None
        )

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, payload: Any = None, headers: dict | None = None) -> None:
                body = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Request-Id", "fake-request")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, message: str) -> None:
                self._send(status, {"error": message}, {"X-Error-Message": message})

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _dispatch(self, method: str) -> None:
                path = unquote(urlparse(self.path).path)
                body = self._body()
                with hub._lock:
                    hub.requests.append(
                        {
                            "method": method,
                            "path": path,
                            "headers": dict(self.headers),
                            "body": body,
                        }
                    )
                try:
                    hub._route(self, method, path, body)
                except Exception as exc:  # noqa: BLE001 - a fake server answers 500 like the real one
                    self._error(500, f"fake hub error: {exc!r}")

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_PUT(self) -> None:
                self._dispatch("PUT")

        return Handler

    def _repo(self, h, rtype: str, repo_id: str) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None or repo.repo_type != rtype:
            h._send(
                404,
                {"error": "Repository not found"},
                {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
            )
            return None
        return repo

    def _route(self, h, method: str, path: str, body: bytes) -> None:
        if path.startswith("/_lfs/"):
            return self._lfs_object(h, method, path, body)
        user = self._user(h.headers)
        if user is None:
            return h._error(401, "Invalid credentials in Authorization header")
        if path == "/api/whoami-v2" and method == "GET":
            return h._send(
                200,
                {
                    "type": "user",
                    "name": user,
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"role": "write"}},
                },
            )
        if path == "/api/repos/create" and method == "POST":
            req = json.loads(body)
            repo_id = f"{req.get('organization') or user}/{req['name']}"
            rtype = req.get("type") or "model"
            url = (
                f"{self.endpoint}/{rtype}s/{repo_id}"
                if rtype != "model"
                else f"{self.endpoint}/{repo_id}"
            )
            with self._lock:
                if repo_id in self.repos:
                    return h._send(409, {"error": "You already created this repo", "url": url})
                self.repos[repo_id] = Repo(
                    rtype, req.get("visibility") == "private" or bool(req.get("private"))
                )
            return h._send(200, {"url": url, "name": repo_id})
        if path == "/api/validate-yaml" and method == "POST":
            req = json.loads(body)
            self.validated_yaml.append(req["content"])
            errors = validate_card_yaml(req["content"], req.get("repoType", "model"))
            if errors:
                return h._send(400, {"errors": [{"message": e} for e in errors], "warnings": []})
            return h._send(200, {"errors": [], "warnings": []})
        m = re.match(r"^/(datasets|models|spaces)/(.+?/.+?)\.git/info/lfs/objects/batch$", path)
        if m and method == "POST":
            return self._lfs_batch(h, json.loads(body))
        m = re.match(
            r"^/api/(datasets|models|spaces)/([^/]+/[^/]+)(?:/(branch|preupload|commit|revision)/(.+))?$",
            path,
        )
        if not m:
            return h._error(404, f"no route {method} {path}")
        rtype, repo_id, action, rev = m.group(1)[:-1], m.group(2), m.group(3), m.group(4)
        repo = self._repo(h, rtype, repo_id)
        if repo is None:
            return None
        if action is None or action == "revision":
            branch = repo.branches.get(rev or "main")
            if branch is None:
                return h._send(
                    404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
                )
            return h._send(
                200,
                {
                    "id": repo_id,
                    "sha": branch.sha,
                    "private": repo.private,
                    "siblings": [{"rfilename": p} for p in sorted(branch.files)],
                },
            )
        if action == "branch":
            with self._lock:
                if rev in repo.branches:
                    return h._send(409, {"error": "Reference already exists"})
                repo.branches[rev] = Branch(
                    dict(repo.branches["main"].files),
                    set(repo.branches["main"].lfs),
                    list(repo.branches["main"].commits),
                )
            return h._send(200, {})
        branch = repo.branches.get(rev)
        if branch is None:
            return h._send(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        if action == "preupload":
            files = []
            for f in json.loads(body)["files"]:
                lfs = f["path"].endswith(LFS_SUFFIXES) or f["size"] > 10 * 1024 * 1024
                existing = branch.files.get(f["path"])
                oid = None
                if existing is not None:
                    oid = (
                        hashlib.sha256(existing).hexdigest()
                        if f["path"] in branch.lfs
                        else git_blob_sha1(existing)
                    )
                files.append(
                    {
                        "path": f["path"],
                        "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False,
                        "oid": oid,
                    }
                )
            return h._send(200, {"files": files, "commitOid": branch.sha})
        if action == "commit":
            return self._commit(h, repo_id, rtype, branch, body)
        return h._error(404, "unknown action")

    def _lfs_batch(self, h, req: dict) -> None:
        objects = []
        for obj in req["objects"]:
            oid = obj["oid"]
            if oid in self.lfs_objects:
                objects.append({"oid": oid, "size": obj["size"]})  # already stored: no actions
            else:
                objects.append(
                    {
                        "oid": oid,
                        "size": obj["size"],
                        "authenticated": True,
                        "actions": {
                            "upload": {"href": f"{self.endpoint}/_lfs/{oid}", "header": {}},
                            "verify": {"href": f"{self.endpoint}/_lfs/{oid}/verify", "header": {}},
                        },
                    }
                )
        h._send(200, {"transfer": "basic", "objects": objects})

    def _lfs_object(self, h, method: str, path: str, body: bytes) -> None:
        parts = path.split("/")
        oid = parts[2]
        if method == "PUT" and len(parts) == 3:
            if hashlib.sha256(body).hexdigest() != oid:
                return h._error(400, "sha256 mismatch")
            with self._lock:
                self.lfs_objects[oid] = body
            return h._send(200, {})
        if method == "POST" and parts[-1] == "verify":
            return (
                h._send(200, {}) if oid in self.lfs_objects else h._error(404, "object not found")
            )
        return h._error(404, "no such LFS route")

    def _commit(self, h, repo_id: str, rtype: str, branch: Branch, body: bytes) -> None:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            return h._error(400, "commit payload must start with a header")
        staged: dict[str, bytes | None] = {}
        lfs_paths: set[str] = set()
        for item in lines[1:]:
            key, value = item["key"], item["value"]
            if key == "file":
                staged[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                data = self.lfs_objects.get(value["oid"])
                if data is None:
                    return h._error(
                        422, f"LFS object {value['oid']} of {value['path']} was never uploaded"
                    )
                staged[value["path"]] = data
                lfs_paths.add(value["path"])
            elif key == "deletedFile":
                staged[value["path"]] = None
            else:
                return h._error(400, f"unsupported commit operation {key}")
        with self._lock:
            for p, data in staged.items():
                if data is None:
                    branch.files.pop(p, None)
                    branch.lfs.discard(p)
                else:
                    branch.files[p] = data
                    (branch.lfs.add if p in lfs_paths else branch.lfs.discard)(p)
            oid = hashlib.sha1(
                f"{branch.sha}{sorted(staged)}{len(branch.commits)}".encode()
            ).hexdigest()
            branch.commits.append(Commit(oid, lines[0]["value"]["summary"], sorted(staged)))
        prefix = (
            f"{self.endpoint}/{rtype}s/{repo_id}"
            if rtype != "model"
            else f"{self.endpoint}/{repo_id}"
        )
        h._send(
            200, {"commitUrl": f"{prefix}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}
        )
