"""The users file: `users add|remove|list` through the CLI, real argon2 hashes, a real file lock,
real concurrent processes, and the reloading directory the server logs users in with."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
from filelock import FileLock

from arena.errors import UsageError
from arena.settings import Settings
from arena.users import User, UserDirectory, UserError, UsersFileError, add_user, list_users, remove_user
from cli import EXIT_OK, EXIT_USAGE, main

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse"


def users_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["users", *argv], settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ann_and_bob(settings: Settings) -> Path:
    """A users file with ann (admin) and bob (voter), both with PASSWORD."""
    add_user(settings.users_path, "ann", PASSWORD, "admin")
    add_user(settings.users_path, "bob", PASSWORD)
    return settings.users_path


def test_add_list_and_remove_through_the_cli(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = users_cli(
        capsys, monkeypatch, settings, "add", "ann", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == EXIT_OK, err
    assert f"saved ann (admin) in {settings.users_path}" in err
    code, _, err = users_cli(
        capsys, monkeypatch, settings, "add", "bob.lee@example.org", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == EXIT_OK, err

    code, out, _ = users_cli(capsys, monkeypatch, settings, "list")
    assert code == EXIT_OK
    assert out.split("\n") == ["ann                  admin", "bob.lee@example.org  voter", ""]
    assert "argon2" not in out
    code, out, _ = users_cli(capsys, monkeypatch, settings, "list", "--json")
    assert json.loads(out) == [{"name": "ann", "role": "admin"}, {"name": "bob.lee@example.org", "role": "voter"}]

    code, _, err = users_cli(capsys, monkeypatch, settings, "remove", "ann")
    assert code == EXIT_OK, err
    assert list_users(settings.users_path) == (User("bob.lee@example.org", "voter"),)


def test_file_option_and_environment_choose_the_file(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "team" / "people.toml"
    code, _, err = users_cli(
        capsys, monkeypatch, settings, "add", "ann", "--file", str(elsewhere), "--password-stdin", stdin=PASSWORD
    )
    assert code == EXIT_OK, err
    assert [u.name for u in list_users(elsewhere)] == ["ann"]
    assert not settings.users_path.exists()

    assert Settings.from_env({"GEMMA_ARENA_HOME": str(tmp_path)}).users_path == tmp_path / "users.toml"
    assert Settings.from_env({"GEMMA_ARENA_USERS": str(elsewhere)}).users_path == elsewhere


def test_the_file_holds_argon2id_hashes_and_no_password(ann_and_bob: Path) -> None:
    text = ann_and_bob.read_text()
    assert PASSWORD not in text
    users = tomllib.loads(text)["users"]
    assert [(u["name"], u["role"]) for u in users] == [("ann", "admin"), ("bob", "voter")]
    assert all(u["password_hash"].startswith("$argon2id$") for u in users)
    assert users[0]["password_hash"] != users[1]["password_hash"]  # salted


def test_the_file_and_its_lock_are_private_to_their_owner(ann_and_bob: Path) -> None:
    assert stat.S_IMODE(ann_and_bob.stat().st_mode) == 0o600
    assert stat.S_IMODE(ann_and_bob.with_name("users.toml.lock").stat().st_mode) == 0o600
    assert [p.name for p in ann_and_bob.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_the_right_password_verifies_and_others_do_not(ann_and_bob: Path) -> None:
    users = UserDirectory(ann_and_bob)
    ann = users.verify("ann", PASSWORD)
    assert ann == User("ann", "admin")
    assert ann.is_admin
    assert users.verify("bob", PASSWORD) == User("bob", "voter")
    assert not users.verify("bob", PASSWORD).is_admin  # type: ignore[union-attr]
    assert users.verify("ann", PASSWORD + "!") is None
    assert users.verify("ann", "") is None
    assert users.verify("nobody", PASSWORD) is None
    assert users.verify("Ann", PASSWORD) is None  # names are exact
    assert users.role_of("ann") == "admin"
    assert users.role_of("bob") == "voter"
    assert users.role_of("nobody") is None


def test_an_unknown_name_costs_a_hash_check_like_a_known_one(
    ann_and_bob: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing must not tell whether a user exists: an unknown name is checked against a dummy hash."""
    import arena.users

    users = UserDirectory(ann_and_bob)
    checked: list[str] = []
    hasher = arena.users._hasher()
    real_verify = type(hasher).verify
    monkeypatch.setattr(type(hasher), "verify", lambda self, h, p: checked.append(h) or real_verify(self, h, p))
    assert users.verify("nobody", PASSWORD) is None
    assert users.verify("ann", "wrong password") is None
    assert len(checked) == 2
    assert checked[0].startswith("$argon2id$")
    assert checked[0] not in ann_and_bob.read_text()


def test_the_gradio_auth_callables_accept_only_good_logins(ann_and_bob: Path) -> None:
    import inspect

    users = UserDirectory(ann_and_bob)
    assert users.check("ann", PASSWORD) is True
    assert users.check("ann", "not the password") is False
    assert inspect.iscoroutinefunction(users.authenticate)  # Gradio awaits it rather than blocking its loop
    assert asyncio.run(users.authenticate("bob", PASSWORD)) is True
    assert asyncio.run(users.authenticate("carol", PASSWORD)) is False


def test_gradio_logs_in_through_the_directory(ann_and_bob: Path) -> None:
    """A real Gradio server with `auth=directory.authenticate`: its /login takes ann, refuses others."""
    import gradio as gr
    import httpx

    users = UserDirectory(ann_and_bob)
    with gr.Blocks() as demo:
        gr.Markdown("hello")
    demo.launch(auth=users.authenticate, prevent_thread_lock=True, quiet=True)
    try:
        url = demo.local_url.rstrip("/")
        good = httpx.post(f"{url}/login", data={"username": "ann", "password": PASSWORD})
        wrong = httpx.post(f"{url}/login", data={"username": "ann", "password": "not the password"})
        unknown = httpx.post(f"{url}/login", data={"username": "zed", "password": PASSWORD})
    finally:
        demo.close()
    assert good.status_code == 200, good.text
    assert (wrong.status_code, unknown.status_code) == (400, 400)


@pytest.mark.parametrize(
    ("name", "password", "role", "message"),
    [
        ("", PASSWORD, "voter", "1-64 characters among letters, digits and . _ - @"),
        ("a" * 65, PASSWORD, "voter", "1-64 characters"),
        ("ann lee", PASSWORD, "voter", "'ann lee' is not a valid user name"),
        ("<b>ann</b>", PASSWORD, "voter", "not a valid user name"),
        ("anné", PASSWORD, "voter", "not a valid user name"),
        ("ann", "short", "voter", "too short: use at least 8 characters"),
        ("ann", PASSWORD, "root", "unknown role 'root': use one of voter, admin"),
    ],
)
def test_bad_names_passwords_and_roles_are_refused_with_what_to_do(
    settings: Settings, name: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")) as caught:
        add_user(settings.users_path, name, password, role)
    assert isinstance(caught.value, UsageError)
    assert not settings.users_path.exists()


def test_the_cli_refuses_bad_input_in_one_line_with_exit_2(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = users_cli(capsys, monkeypatch, settings, "add", "ann", "--password-stdin", stdin="short\n")
    assert (code, err) == (EXIT_USAGE, "error: the password is too short: use at least 8 characters\n")
    code, _, err = users_cli(capsys, monkeypatch, settings, "add", "a b", "--password-stdin", stdin=PASSWORD)
    assert code == EXIT_USAGE
    assert err.startswith("error: 'a b' is not a valid user name")
    code, _, err = users_cli(capsys, monkeypatch, settings, "add", "ann", "--password-stdin", stdin="")
    assert code == EXIT_USAGE
    assert "no password on standard input" in err
    code, _, err = users_cli(capsys, monkeypatch, settings, "remove", "ann")
    assert code == EXIT_USAGE
    assert "no user 'ann'" in err
    for argv, message in [(["--role", "root"], "invalid choice: 'root'"), ([], "required: NAME")]:
        with pytest.raises(SystemExit) as exited:  # argparse's own refusals end the process
            users_cli(capsys, monkeypatch, settings, "add", *argv)
        assert exited.value.code == EXIT_USAGE
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        users_cli(capsys, monkeypatch, settings)
    assert exited.value.code == EXIT_USAGE
    assert "required: ACTION" in capsys.readouterr().err
    assert not settings.users_path.exists()


def test_the_password_is_asked_twice_and_must_match(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    typed = iter([PASSWORD, PASSWORD + "x", PASSWORD, PASSWORD])
    prompts: list[str] = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt: prompts.append(prompt) or next(typed))
    code, _, err = users_cli(capsys, monkeypatch, settings, "add", "ann")
    assert (code, err) == (EXIT_USAGE, "error: the two passwords differ: run the command again\n")
    code, _, err = users_cli(capsys, monkeypatch, settings, "add", "ann")
    assert code == EXIT_OK, err
    assert prompts == ["Password for ann: ", "Same password again: "] * 2
    assert UserDirectory(settings.users_path).verify("ann", PASSWORD) == User("ann", "voter")


def test_an_existing_user_is_kept_unless_replaced(
    ann_and_bob: Path, settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = users_cli(capsys, monkeypatch, settings, "add", "bob", "--password-stdin", stdin="new password")
    assert code == EXIT_USAGE
    assert "'bob' already exists" in err
    assert "--replace" in err
    with pytest.raises(UserError, match="differ only in case"):
        add_user(ann_and_bob, "BOB", PASSWORD)
    code, _, err = users_cli(
        capsys,
        monkeypatch,
        settings,
        "add",
        "bob",
        "--replace",
        "--role",
        "admin",
        "--password-stdin",
        stdin="new password",
    )
    assert code == EXIT_OK, err
    users = UserDirectory(ann_and_bob)
    assert users.verify("bob", PASSWORD) is None
    assert users.verify("bob", "new password") == User("bob", "admin")
    assert [u.name for u in list_users(ann_and_bob)] == ["ann", "bob"]


def test_concurrent_adds_from_several_processes_all_land(settings: Settings) -> None:
    names = [f"user{n}" for n in range(6)]
    env = {**os.environ, "GEMMA_ARENA_USERS": str(settings.users_path)}
    adds = [
        subprocess.Popen(
            [sys.executable, "app.py", "users", "add", name, "--password-stdin"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    for add in adds:
        assert add.stdin is not None
        add.stdin.write(PASSWORD + "\n")
        add.stdin.close()  # all of them hash, then race for the lock
    for add in adds:
        assert add.wait(timeout=120) == 0, add.stderr.read() if add.stderr else ""
    assert sorted(u.name for u in list_users(settings.users_path)) == names


def test_concurrent_adds_from_threads_all_land(settings: Settings) -> None:
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def add(name: str) -> None:
        try:
            start.wait()
            add_user(settings.users_path, name, PASSWORD)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=add, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(u.name for u in list_users(settings.users_path)) == ["t0", "t1", "t2", "t3"]


def test_a_change_waits_for_the_lock_another_command_holds(ann_and_bob: Path) -> None:
    with FileLock(ann_and_bob.with_name("users.toml.lock")), pytest.raises(UsersFileError, match="is busy"):
        add_user(ann_and_bob, "carol", PASSWORD, timeout_s=0.2)
    with FileLock(ann_and_bob.with_name("users.toml.lock")), pytest.raises(UsersFileError, match="is busy"):
        remove_user(ann_and_bob, "bob", timeout_s=0.2)
    assert [u.name for u in list_users(ann_and_bob)] == ["ann", "bob"]
    add_user(ann_and_bob, "carol", PASSWORD, timeout_s=0.2)
    assert [u.name for u in list_users(ann_and_bob)] == ["ann", "bob", "carol"]


def test_the_directory_sees_adds_and_removes_without_a_restart(
    ann_and_bob: Path, settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    users = UserDirectory(ann_and_bob)
    assert users.verify("carol", PASSWORD) is None
    code, _, err = users_cli(capsys, monkeypatch, settings, "add", "carol", "--password-stdin", stdin=PASSWORD)
    assert code == EXIT_OK, err
    assert users.verify("carol", PASSWORD) == User("carol", "voter")
    assert users.role_of("carol") == "voter"

    code, _, err = users_cli(capsys, monkeypatch, settings, "remove", "ann")
    assert code == EXIT_OK, err
    assert users.verify("ann", PASSWORD) is None
    assert users.role_of("ann") is None


def test_a_broken_edit_keeps_the_last_good_users(ann_and_bob: Path) -> None:
    users = UserDirectory(ann_and_bob)
    ann_and_bob.write_text(ann_and_bob.read_text() + "\n[[users]\n")
    assert users.verify("ann", PASSWORD) == User("ann", "admin")
    assert users.role_of("bob") == "voter"
    ann_and_bob.unlink()
    assert users.role_of("bob") == "voter"
    add_user(ann_and_bob, "carol", PASSWORD)  # a good file again
    assert users.role_of("carol") == "voter"
    assert users.role_of("bob") is None


def test_the_server_refuses_a_missing_empty_or_malformed_file(settings: Settings, ann_and_bob: Path) -> None:
    missing = settings.data_dir / "nobody.toml"
    with pytest.raises(
        UsersFileError, match=r"no users file at .*nobody\.toml: create it with `python app\.py users add"
    ):
        UserDirectory(missing)

    empty = settings.data_dir / "empty.toml"
    empty.write_text("# nobody yet\n")
    with pytest.raises(UsersFileError, match="has no users, so nobody could log in: add one with"):
        UserDirectory(empty)

    text = ann_and_bob.read_text()
    for broken, message in [
        ("[[users]\n", "is not valid TOML"),
        (text.replace('role = "voter"', 'role = "root"'), "bob has an unknown role 'root'"),
        (text.replace('name = "bob"', 'name = "ann"'), "ann appears twice"),
        (text.replace('name = "bob"', 'name = "b b"'), "user 2 has an invalid name 'b b'"),
        (text.replace("$argon2id$", "$plain$"), "ann's password_hash is not an argon2 hash"),
        (text.replace("password_hash", "password"), "must have exactly name, role and password_hash"),
        ('admins = ["ann"]\n' + text, "unexpected top-level keys"),
    ]:
        ann_and_bob.write_text(broken)
        with pytest.raises(UsersFileError, match=message) as caught:
            UserDirectory(ann_and_bob)
        assert "fix it, or remove it and add the users again with `python app.py users add" in str(caught.value)
        with pytest.raises(UsersFileError):
            add_user(ann_and_bob, "carol", PASSWORD)  # a broken file is not silently overwritten
