"""Where Gemma Arena keeps its files, resolved once from the environment and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    base = env.get(var) or str(Path(env.get("HOME", str(Path.home()))) / fallback)
    return Path(base) / "gemma-arena"


@dataclass(frozen=True)
class Settings:
    """Folders and files the app uses. Nothing is created until a component needs it.

    - `data_dir`: votes database and exports (GEMMA_ARENA_HOME, else $XDG_DATA_HOME/gemma-arena)
    - `cache_dir`: the generated demo variants (GEMMA_ARENA_CACHE, else $XDG_CACHE_HOME/gemma-arena)
    - `db_path`: the SQLite file (GEMMA_ARENA_DB, else data_dir/arena.db)
    - `users_path`: who may log in to a shared server (GEMMA_ARENA_USERS, else data_dir/users.toml);
      the field `users_file` is where it was set, None for the default
    """

    data_dir: Path
    cache_dir: Path
    db_path: Path
    users_file: Path | None = None

    @property
    def users_path(self) -> Path:
        return self.users_file or self.data_dir / "users.toml"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env["GEMMA_ARENA_HOME"]) if env.get("GEMMA_ARENA_HOME") else _xdg(
            env, "XDG_DATA_HOME", ".local/share"
        )
        cache_dir = Path(env["GEMMA_ARENA_CACHE"]) if env.get("GEMMA_ARENA_CACHE") else _xdg(
            env, "XDG_CACHE_HOME", ".cache"
        )
        db_path = Path(env["GEMMA_ARENA_DB"]) if env.get("GEMMA_ARENA_DB") else data_dir / "arena.db"
        users_file = Path(env["GEMMA_ARENA_USERS"]) if env.get("GEMMA_ARENA_USERS") else None
        return cls(data_dir=data_dir, cache_dir=cache_dir, db_path=db_path, users_file=users_file)

    def with_db(self, db_path: str | Path | None) -> Settings:
        return self if db_path is None else replace(self, db_path=Path(db_path))
