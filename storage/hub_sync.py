"""Votes that survive a Space restart: the journal pushed to a Hugging Face dataset, and replayed
from it into an empty disk before serving.

A Space's disk is gone at every restart. So the store's journal folder (`storage.journal`) is
pushed to a dataset repo by `huggingface_hub.CommitScheduler` every `every_minutes`, and on start
`restore` downloads the dataset's journal files (`snapshot_download`) and replays them into the
SQLite file. Acknowledged votes lost on a restart: at most those of the last interval (the
process was killed); after a clean shutdown none, since `Sync.stop` pushes what is left first.

    report = restore(settings.db_path, "user/arena-votes")      # before the store is opened
    sync = start_sync(folder, "user/arena-votes", every_minutes=10)
    store = open_store(settings.db_path, journal=Journal(folder))
    ...
    store.close(); sync.stop()                                  # on shutdown: nothing is lost

The scheduler is CommitScheduler with its push made for a journal: each file is sent up to its
last complete line (appends take no lock, so one may be half written when the folder is read),
and a file counts as changed when its size changed. CommitScheduler's own test, the mtime, can
miss an append: on a file system with coarse timestamps two appends a few ms apart share one.

The dataset is created (private) when the sync starts if it is not there yet; a missing dataset
restores nothing. The token is `token`, else huggingface_hub's own (HF_TOKEN, a Space secret).
huggingface_hub is imported when a function here is called, not with this module (0.13 s).
"""

from __future__ import annotations

import functools
import io
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from arena.errors import StorageError
from storage.journal import JOURNAL_DIR, Replayed, complete_size, read_journals, replay
from storage.store import open_store

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo, CommitScheduler

log = logging.getLogger(__name__)

_JOURNAL_FILES = f"{JOURNAL_DIR}/*.jsonl"
_TOKENS_PAGE = "https://huggingface.co/settings/tokens"


class HubSyncError(StorageError):
    """The votes could not be restored from, or pushed to, their Hugging Face dataset."""


@dataclass
class Sync:
    """A running push of the journal folder to a dataset. Stop it on shutdown."""

    scheduler: CommitScheduler
    repo_id: str

    def push(self) -> None:
        """Push what the journal holds now, and wait until it is on the Hub."""
        try:
            self.scheduler.trigger().result()
        except Exception as exc:  # whatever the push raised: said with what to do
            raise _hub_error(exc, self.repo_id, "pushing the votes to") from exc

    def stop(self) -> None:
        """Push what is left, then stop pushing: after a clean shutdown no vote is lost."""
        try:
            self.push()
        finally:
            self.scheduler.stop()


def start_sync(
    folder: str | Path,
    repo_id: str,
    every_minutes: float = 10,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    private: bool = True,
) -> Sync:
    """Push the journal files under `folder` to the dataset `repo_id` every `every_minutes`,
    creating the dataset (private unless `private` is False: it holds prompts and voter names) if
    it is missing. `endpoint` is the Hub's address (default: huggingface_hub's, HF_ENDPOINT)."""
    from huggingface_hub import HfApi

    repo_id = dataset_id(repo_id)
    if not every_minutes > 0:
        raise HubSyncError(f"the push interval must be more than 0 minutes, not {every_minutes}")
    api = HfApi(endpoint=endpoint, token=token)
    try:
        scheduler = _journal_scheduler()(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=Path(folder).expanduser(),
            every=every_minutes,
            private=private,
            hf_api=api,
        )
    except Exception as exc:
        raise _hub_error(exc, repo_id, "creating or opening") from exc
    log.info("pushing the votes journal in %s to dataset %s every %s minutes", folder, repo_id, every_minutes)
    return Sync(scheduler, repo_id)


def restore(db_path: str | Path, repo_id: str, *, token: str | None = None, endpoint: str | None = None) -> Replayed:
    """Replay the journal files of the dataset's latest snapshot into the votes database at
    `db_path` (created if missing), in the order they were recorded; records already stored are
    skipped, so restoring twice changes nothing. A dataset that does not exist yet (a first start)
    restores nothing. Call it before the store that serves is opened."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    repo_id = dataset_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="gemma-arena-restore-") as download:
        try:
            folder = snapshot_download(
                repo_id,
                repo_type="dataset",
                allow_patterns=_JOURNAL_FILES,
                local_dir=download,
                token=token,
                endpoint=endpoint,
            )
        except RepositoryNotFoundError:
            # (also the Hub's answer for a dataset this token may not read: pushing to it then
            # fails too, and Sync.stop says so)
            log.info("no dataset %s yet: starting with an empty votes database", repo_id)
            with open_store(db_path):
                pass
            return Replayed()
        except Exception as exc:
            raise _hub_error(exc, repo_id, "restoring the votes from") from exc
        report = Replayed()
        records = read_journals((Path(folder) / JOURNAL_DIR).glob("*.jsonl"), report)
        with open_store(db_path) as store:
            store.write(lambda db: replay(db, records, report))
    log.info("restored from dataset %s: %s", repo_id, report.summary())
    return report


@functools.cache
def _journal_scheduler() -> type[CommitScheduler]:
    """CommitScheduler with a push made for journal files (defined on first use: importing
    huggingface_hub takes a while)."""
    from huggingface_hub import CommitOperationAdd, CommitScheduler

    class JournalScheduler(CommitScheduler):
        def __init__(self, **kwargs: object) -> None:
            self.pushed: dict[str, int] = {}  # before the scheduler thread starts and pushes
            super().__init__(**kwargs)  # type: ignore[arg-type]

        def push_to_hub(self) -> CommitInfo | None:
            """Commit every journal file whose complete lines grew since the last push."""
            with self.lock:
                grown = {
                    path: size
                    for path in sorted((self.folder_path / JOURNAL_DIR).glob("*.jsonl"))
                    if (size := complete_size(path)) != self.pushed.get(path.name, 0)
                }
            if not grown:
                return None
            operations = []
            for path, size in grown.items():
                with path.open("rb") as file:
                    # in memory (a part is a few MB): a buffer sends LFS-sized parts by HTTP, as
                    # CommitScheduler's own file reader does
                    operations.append(CommitOperationAdd(f"{JOURNAL_DIR}/{path.name}", io.BytesIO(file.read(size))))
            info = self.api.create_commit(
                repo_id=self.repo_id,
                repo_type=self.repo_type,
                operations=operations,
                commit_message=f"Gemma Arena votes journal: {len(operations)} file(s)",
                revision=self.revision,
            )
            self.pushed.update((path.name, size) for path, size in grown.items())
            return info

    return JournalScheduler


_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
_HUB_URL = re.compile(r"https?://[^/]+/")


def dataset_id(repo_id: str) -> str:
    """`owner/name` from what a person may paste: the id, `datasets/owner/name` or the dataset's
    URL. Refuses the id of a model or a Space, which cannot hold the votes."""
    given = repo_id
    text = _HUB_URL.sub("", repo_id.strip()).strip("/")
    kind, _, rest = text.partition("/")
    if kind in ("spaces", "models") and _REPO_ID.fullmatch(rest):
        raise HubSyncError(
            f"{given} is a {kind[:-1]}, not a dataset: the votes go to a dataset repo; give its id, e.g. "
            f"{rest.split('/')[0]}/gemma-arena-votes (it is created, private, on the first start)"
        )
    if kind == "datasets" and _REPO_ID.fullmatch(rest):
        text = rest
    if not _REPO_ID.fullmatch(text):
        raise HubSyncError(f"{given!r} is not a dataset id: give it as owner/name, e.g. your-name/gemma-arena-votes")
    return text


def _hub_error(exc: Exception, repo_id: str, doing: str) -> HubSyncError:
    """A message that says what went wrong with the Hub and what to do about it."""
    from huggingface_hub.errors import RepositoryNotFoundError

    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return HubSyncError(
            f"the Hugging Face Hub refused the token while {doing} dataset {repo_id} (401 {_detail(exc)}): set "
            f"HF_TOKEN (a secret of the Space) to a token with write access to it, from {_TOKENS_PAGE}"
        )
    if status == 403:
        return HubSyncError(
            f"the token may not write to dataset {repo_id} (403 {_detail(exc)}): give it write access to that "
            f"namespace at {_TOKENS_PAGE}, or name a dataset under your own account"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return HubSyncError(
            f"dataset {repo_id} is not there or not readable with this token while {doing} it: check the name, "
            f"and that HF_TOKEN may read and write it ({_TOKENS_PAGE})"
        )
    return HubSyncError(
        f"{doing} dataset {repo_id} failed ({type(exc).__name__}: {_detail(exc)}): check that the Hub can be "
        "reached from here (HF_ENDPOINT, HF_HUB_OFFLINE) and try again; the votes database was not changed"
    )


def _detail(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
