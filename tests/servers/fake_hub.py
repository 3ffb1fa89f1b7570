"""A loopback server that answers like the Hugging Face Hub, for tests (the Hub cannot be reached
from here).

It implements exactly the endpoints that the installed huggingface_hub (2.x) calls for
`CommitScheduler` (create_repo, create_commit with its preupload and LFS steps) and
`snapshot_download` (repo_info, list_repo_tree, hf_hub_download), with the documented wire format:

- `POST /api/repos/create`: `{name, organization, type, visibility?}`; 200 `{url, name, id}`,
  409 `{error, url}` when the repo exists, 403 outside the token's namespace.
- `GET /api/{type}s/{id}` and `GET /api/{type}s/{id}/revision/{rev}`: repo info with `sha`,
  `private` and `siblings`.
- `GET /api/{type}s/{id}/tree/{rev}[/{path}]?recursive=&expand=`: files (`oid` = git blob sha1,
  `size`, `lfs: {oid, size, pointerSize}`) and folders, in one page.
- `POST /api/{type}s/{id}/preupload/{rev}`: `uploadMode` "lfs" from `lfs_threshold` bytes
  (the Hub's 10 MB by default) or for a binary sample, else "regular"; `oid` of the file there.
- `POST /{prefix}{id}.git/info/lfs/objects/batch` (git-lfs batch API, basic transfer): upload
  and verify actions, none for an object already stored; `PUT` to the upload href (on another
  host name, `localhost`, as S3 is) and `POST .../objects/verify`.
- `POST /api/{type}s/{id}/commit/{rev}`: NDJSON `header` (summary, parentCommit), `file`
  (base64, refused above `lfs_threshold` as the Hub refuses big plain files), `lfsFile`
  (a stored object), `deletedFile`, `deletedFolder`; answers `{commitUrl, commitOid}`.
- `HEAD`/`GET /{prefix}{id}/resolve/{rev}/{path}`: `X-Repo-Commit`, `ETag` (git sha1) and
  `Content-Length` for a plain file; for an LFS file a 302 to the object on `localhost` with
  `X-Linked-Etag` (sha256) and `X-Linked-Size`, as the Hub redirects to its CDN.

Errors carry the Hub's headers (`X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`,
`X-Error-Message`), so huggingface_hub raises the same exception classes. A token other than
`token` is refused with 401 "Invalid credentials in Authorization header"; without a token,
private repos read as not found (401), and nothing can be written.

Repos, commits and LFS objects are kept in memory. Not reproduced: Xet storage (no `X-Xet-Hash`
is ever sent, so huggingface_hub uses plain HTTP and LFS), .gitattributes rules, pagination,
pull requests and branches other than the one each commit names.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

#: The Hub stores plain git files up to 10 MB; bigger ones must go through LFS.
HUB_LFS_THRESHOLD = 10 * 1000 * 1000
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_TYPES = "(?P<type>model|dataset|space)s"
_REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
_PREFIXES = "(?P<prefix>datasets/|spaces/|)"


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def oid(self) -> str:
        """What the tree and preupload call `oid`: the git sha1 of the blob (of its pointer for LFS)."""
        return git_blob_oid(lfs_pointer(self.sha256, len(self.data)) if self.lfs else self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Commit:
    oid: str
    summary: str
    files: dict[str, Blob]
    date: str


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def at(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.head
        return next((c for c in self.commits if c.oid == revision), None)


_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"


class HubError(Exception):
    """An error answer: `{"error": message, **body}` with the Hub's error headers."""

    def __init__(self, status: int, message: str, code: str | None = None, **body: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.body = status, message, code, body


class Answer:
    """One request and the means to answer it (HEAD gets the headers without the body)."""

    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        self._handler = handler
        parts = urlsplit(handler.path)
        self.method = handler.command
        self.path = unquote(parts.path)
        self.query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.body = body
        self.headers = handler.headers
        self.match: re.Match[str] | None = None

    def group(self, name: str) -> str:
        assert self.match is not None
        return self.match.group(name)

    @property
    def repo_type(self) -> str:
        """The repo type the path names: `/api/datasets/...`, or a `datasets/` prefix (none: model)."""
        assert self.match is not None
        groups = self.match.groupdict()
        if groups.get("type"):
            return groups["type"]
        return {"": "model", "datasets/": "dataset", "spaces/": "space"}[groups.get("prefix") or ""]

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        handler = self._handler
        handler.send_response_only(status)
        handler.send_header("Date", handler.date_time_string())
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            handler.send_header(name, value)
        handler.end_headers()
        if self.method != "HEAD":
            handler.wfile.write(body)
        handler.wfile.flush()

    def send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self.send(
            status, json.dumps(value).encode(), {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        )


@dataclass
class FakeHub:
    """A Hub-like server on a free loopback port. Use as a context manager; `url` is its endpoint."""

    token: str = "hf_fake_write_token"
    user: str = "arena-tester"
    lfs_threshold: int = HUB_LFS_THRESHOLD
    repos: dict[tuple[str, str], Repo] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)
    #: (method, path) of every request received, oldest first.
    requests: list[tuple[str, str]] = field(default_factory=list)
    #: Requests that matched no endpoint: a test can assert there were none.
    unknown: list[tuple[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake hub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def cdn(self) -> str:
        """The same server under another host name, as the Hub's LFS storage is another host."""
        assert self._server is not None
        return f"http://localhost:{self._server.server_address[1]}"

    def files(self, repo_id: str, repo_type: str = "dataset") -> dict[str, bytes]:
        """The files of a repo's latest commit."""
        return {path: blob.data for path, blob in self.repos[(repo_type, repo_id)].head.files.items()}

    def __enter__(self) -> FakeHub:
        routes: list[tuple[str, re.Pattern[str], Callable[[Answer], None]]] = [
            ("POST", re.compile(r"/api/repos/create"), self._create),
            ("GET", re.compile(rf"/api/{_TYPES}/{_REPO}(?:/revision/(?P<rev>[^/]+))?"), self._info),
            ("GET", re.compile(rf"/api/{_TYPES}/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?"), self._tree),
            ("POST", re.compile(rf"/api/{_TYPES}/{_REPO}/preupload/(?P<rev>[^/]+)"), self._preupload),
            ("POST", re.compile(rf"/api/{_TYPES}/{_REPO}/commit/(?P<rev>[^/]+)"), self._commit),
            ("POST", re.compile(rf"/{_PREFIXES}{_REPO}\.git/info/lfs/objects/batch"), self._lfs_batch),
            ("POST", re.compile(rf"/{_PREFIXES}{_REPO}\.git/info/lfs/objects/verify"), self._lfs_verify),
            ("PUT", re.compile(r"/lfs-storage/(?P<oid>[0-9a-f]{64})"), self._lfs_put),
            ("GET", re.compile(r"/lfs-storage/(?P<oid>[0-9a-f]{64})"), self._lfs_get),
            ("HEAD", re.compile(rf"/{_PREFIXES}{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"), self._resolve),
            ("GET", re.compile(rf"/{_PREFIXES}{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"), self._resolve),
        ]
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                answer = Answer(self, self._body())
                with owner._lock:
                    owner.requests.append((answer.method, answer.path))
                for method, pattern, route in routes:
                    if method == answer.method and (match := pattern.fullmatch(answer.path)):
                        answer.match = match
                        try:
                            with owner._lock:
                                route(answer)
                        except HubError as exc:
                            headers = {"X-Error-Message": exc.message}
                            if exc.code:
                                headers["X-Error-Code"] = exc.code
                            answer.send_json(exc.status, {"error": exc.message, **exc.body}, headers)
                        return
                with owner._lock:
                    owner.unknown.append((answer.method, answer.path))
                answer.send_json(404, {"error": "Sorry, we can't find the page you are looking for."})

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_HEAD = do_POST = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake hub", daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------------ auth and lookups
    def _authenticated(self, answer: Answer) -> bool:
        header = answer.headers.get("Authorization")
        if header is None:
            return False
        if header != f"Bearer {self.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return True

    def _repo(self, answer: Answer, *, write: bool = False) -> Repo:
        authenticated = self._authenticated(answer)
        repo = self.repos.get((answer.repo_type, answer.group("repo")))
        if repo is None or (repo.private and not authenticated):
            raise HubError(404 if authenticated else 401, "Repository not found", "RepoNotFound")
        if write and not authenticated:
            raise HubError(401, "You must be authenticated to write to this repository")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.at(unquote(revision))
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # ------------------------------------------------------------------ routes
    def _create(self, answer: Answer) -> None:
        if not self._authenticated(answer):
            raise HubError(401, "You must be authenticated to create a repository")
        body = answer.json()
        namespace = body.get("organization") or self.user
        if namespace != self.user:
            raise HubError(403, f"You don't have the rights to create a repository under the namespace {namespace!r}")
        repo_type = body.get("type") or "model"
        repo_id = f"{namespace}/{body['name']}"
        url = f"{self.url}/{_PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            raise HubError(409, f"You already created this {repo_type} repo", url=url)
        repo = Repo(repo_type, repo_id, private=body.get("visibility", "public") != "public")
        repo.commits.append(
            Commit(_new_oid(), "initial commit", {".gitattributes": Blob(_GITATTRIBUTES, False)}, _now())
        )
        self.repos[(repo_type, repo_id)] = repo
        answer.send_json(200, {"url": url, "name": repo_id, "id": uuid.uuid4().hex[:24]})

    def _info(self, answer: Answer) -> None:
        repo = self._repo(answer)
        commit = self._commit_at(repo, answer.group("rev") or "main")
        answer.send_json(
            200,
            {
                "_id": uuid.uuid4().hex[:24],
                "id": repo.id,
                "author": repo.id.split("/")[0],
                "sha": commit.oid,
                "lastModified": commit.date,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            },
        )

    def _tree(self, answer: Answer) -> None:
        repo = self._repo(answer)
        commit = self._commit_at(repo, answer.group("rev"))
        base = (answer.group("path") or "").strip("/")
        recursive = answer.query.get("recursive", "False").lower() == "true"
        entries: dict[str, dict[str, Any]] = {}
        for path in sorted(commit.files):
            if base and not path.startswith(base + "/"):
                continue
            relative = path[len(base) + 1 :] if base else path
            parts = relative.split("/")
            for depth in range(1, len(parts)):  # the folders on the way
                folder = "/".join(([base] if base else []) + parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(folder, {"type": "directory", "oid": _tree_oid(folder), "path": folder})
            if recursive or len(parts) == 1:
                blob = commit.files[path]
                entry: dict[str, Any] = {"type": "file", "oid": blob.oid, "size": len(blob.data), "path": path}
                if blob.lfs:
                    pointer = lfs_pointer(blob.sha256, len(blob.data))
                    entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(pointer)}
                entries[path] = entry
        answer.send_json(200, list(entries.values()))

    def _preupload(self, answer: Answer) -> None:
        repo = self._repo(answer, write=True)
        commit = self._commit_at(repo, answer.group("rev"))
        files = []
        for item in answer.json()["files"]:
            sample = base64.b64decode(item["sample"])
            lfs = item["size"] >= self.lfs_threshold or b"\0" in sample
            there = commit.files.get(item["path"])
            oid = None if there is None else (there.sha256 if there.lfs else there.oid)
            files.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        answer.send_json(200, {"files": files, "commitOid": commit.oid})

    def _lfs_batch(self, answer: Answer) -> None:
        repo = self._repo(answer, write=True)
        body = answer.json()
        if body.get("operation") != "upload" or "basic" not in body.get("transfers", ["basic"]):
            raise HubError(422, "only basic uploads are implemented here")
        objects = []
        for item in body["objects"]:
            entry: dict[str, Any] = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.lfs_objects:
                verify = f"{self.url}/{_PREFIX[repo.type]}{repo.id}.git/info/lfs/objects/verify"
                entry["actions"] = {
                    "upload": {"href": f"{self.cdn}/lfs-storage/{item['oid']}", "header": {}},
                    "verify": {"href": verify, "header": {}},
                }
            objects.append(entry)
        answer.send_json(
            200,
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            {"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _lfs_put(self, answer: Answer) -> None:
        oid = answer.group("oid")
        if hashlib.sha256(answer.body).hexdigest() != oid:  # S3 checks the signed content hash
            raise HubError(400, "the uploaded content does not match the object id")
        self.lfs_objects[oid] = answer.body
        answer.send(200, headers={"ETag": f'"{hashlib.md5(answer.body).hexdigest()}"'})

    def _lfs_verify(self, answer: Answer) -> None:
        self._repo(answer, write=True)
        body = answer.json()
        data = self.lfs_objects.get(body["oid"])
        if data is None or len(data) != body["size"]:
            raise HubError(404, f"object {body['oid']} was not uploaded")
        answer.send_json(200, {"success": True})

    def _lfs_get(self, answer: Answer) -> None:
        data = self.lfs_objects.get(answer.group("oid"))
        if data is None:
            raise HubError(404, "no such object")
        answer.send(200, data, {"Content-Type": "application/octet-stream", "ETag": f'"{answer.group("oid")}"'})

    def _commit(self, answer: Answer) -> None:
        repo = self._repo(answer, write=True)
        head = self._commit_at(repo, answer.group("rev"))
        lines = [json.loads(line) for line in answer.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the first line of a commit must be its header")
        header = lines[0]["value"]
        parent = header.get("parentCommit")
        if parent is not None and parent != head.oid:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                data = base64.b64decode(value["content"])
                if len(data) >= self.lfs_threshold:
                    raise HubError(
                        400,
                        f"Your push was rejected because it contains files larger than 10 MiB: "
                        f"{value['path']}. Please use LFS",
                    )
                files[value["path"]] = Blob(data, False)
            elif key == "lfsFile":
                data_or_none = self.lfs_objects.get(value["oid"])
                if data_or_none is None:
                    raise HubError(400, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                files[value["path"]] = Blob(data_or_none, True)
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                files = {p: b for p, b in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        commit = Commit(_new_oid(), header.get("summary", ""), files, _now())
        repo.commits.append(commit)
        answer.send_json(
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self.url}/{_PREFIX[repo.type]}{repo.id}/commit/{commit.oid}",
                "pullRequestUrl": None,
            },
        )

    def _resolve(self, answer: Answer) -> None:
        repo = self._repo(answer)
        commit = self._commit_at(repo, answer.group("rev"))
        blob = commit.files.get(answer.group("path"))
        if blob is None:
            raise HubError(404, "Entry not found", "EntryNotFound")
        headers = {"X-Repo-Commit": commit.oid}
        if blob.lfs:
            headers |= {
                "Location": f"{self.cdn}/lfs-storage/{blob.sha256}",
                "X-Linked-Etag": f'"{blob.sha256}"',
                "X-Linked-Size": str(len(blob.data)),
                "ETag": f'"{blob.oid}"',
            }
            answer.send(302, b"", headers)
            return
        headers |= {
            "ETag": f'"{blob.oid}"',
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(answer.group('path').split('/')[-1])}",
        }
        answer.send(200, blob.data, headers)


def _new_oid() -> str:
    return hashlib.sha1(uuid.uuid4().bytes).hexdigest()


def _tree_oid(path: str) -> str:
    return hashlib.sha1(path.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
