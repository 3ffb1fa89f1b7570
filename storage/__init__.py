"""Gemma Arena's storage: battles, runs and votes in SQLite (through sqlite-utils), read back as
pairwise outcomes for the ratings, and exported or imported (CSV, JSONL, FastChat battles).

Storage is the only code that writes SQL. Nothing is opened at import time:

    store = open_store(settings.db_path)
    battle_id = store.open_battle(request, [("demo:e2b", "demo:e2b"), ("demo:e4b", "demo:e4b")])
    store.finish_battle(battle_id, results)          # -> "finished", or "errored"
    next_id = store.open_battle(follow_up, variants, parent_id=battle_id)  # turn 2 of its conversation
    store.finish_battle(next_id, more_results)
    store.record_vote(next_id, "a")                  # returns once durable; covers turns 1 and 2
    store.conversation(next_id)                      # turns 1..2, answers by variant
    store.history("ann")                             # ann's conversations, newest first
    pairs = store.pair_outcomes(category="image")    # -> arena.ratings.Battles.from_pairs(pairs)

On a Hugging Face Space, whose disk does not outlive a restart, the store also keeps a journal
pushed to a dataset, and the database is restored from it before serving (`storage.hub_sync`).

Errors are `arena.errors.StorageError` subclasses with a message that says what to do.
"""

from __future__ import annotations

# isort: off
# storage.db first: it imports sqlite_utils with pandas hidden (see there), before any module here does
from storage.db import StoreBusy, StoreReadOnly, StoreUnavailable

# isort: on
from storage.conversations import HistoryEntry, StoredAnswer, StoredConversation, StoredTurn
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
    "HistoryEntry",
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
    "StoredAnswer",
    "StoredBattle",
    "StoredConversation",
    "StoredTurn",
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
