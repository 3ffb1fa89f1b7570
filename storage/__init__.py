"""Gemma Arena's storage: battles, runs and votes in SQLite (through sqlite-utils), read back as
pairwise outcomes for the ratings, and exported or imported (CSV, JSONL, FastChat battles).

Storage is the only code that writes SQL. Nothing is opened at import time:

    store = open_store(settings.db_path)
    battle_id = store.open_battle(request, [("demo:e2b", "demo:e2b"), ("demo:e4b", "demo:e4b")])
    store.finish_battle(battle_id, results)          # -> "finished", or "errored"
    store.record_vote(battle_id, "a")                # returns once the vote is durable
    pairs = store.pair_outcomes(category="image")    # -> arena.ratings.Battles.from_pairs(pairs)

On a Hugging Face Space, whose disk does not outlive a restart, the store also keeps a journal
pushed to a dataset, and the database is restored from it before serving (`storage.hub_sync`).

Errors are `arena.errors.StorageError` subclasses with a message that says what to do.
"""

from __future__ import annotations

from storage.db import StoreBusy, StoreReadOnly, StoreUnavailable
from storage.fastchat import BattleRecord, write_battles
from storage.fastchat_reader import read_battle_table, read_battles
from storage.hub_sync import HubSyncError, Sync, restore, start_sync
from storage.imports import ImportRefused, ImportReport
from storage.journal import Journal, Replayed
from storage.migrations import NewerSchema
from storage.queries import CATEGORIES, RATING_MODES, StoredBattle, VariantSpeed
from storage.records import BattleRejected, VoteRejected
from storage.store import Store, StoreMissing, open_store

__all__ = [
    "CATEGORIES",
    "RATING_MODES",
    "BattleRecord",
    "BattleRejected",
    "HubSyncError",
    "ImportRefused",
    "ImportReport",
    "Journal",
    "NewerSchema",
    "Replayed",
    "Store",
    "StoreBusy",
    "StoreMissing",
    "StoreReadOnly",
    "StoreUnavailable",
    "StoredBattle",
    "Sync",
    "VariantSpeed",
    "VoteRejected",
    "open_store",
    "read_battle_table",
    "read_battles",
    "restore",
    "start_sync",
    "write_battles",
]
