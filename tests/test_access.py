"""Who may do what, and the per-user limits, without a server (the server-side refusals through
gradio_client are in tests/test_ui_teams.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from arena.errors import UsageError
from cli import main
from cli.serve import check_exposure, is_loopback
from ui.access import Access, AccessDenied, Caller, TooBusy

ROLES = {"ada": "admin", "bo": "voter"}


def request(username: str | None = None, host: str = "10.0.0.7") -> SimpleNamespace:
    """What the handlers read of a gr.Request."""
    return SimpleNamespace(username=username, client=SimpleNamespace(host=host))


def test_without_logins_everyone_is_the_local_voter_counted_by_address() -> None:
    access = Access(local_voter="lab", local_admin=False)
    caller = access.caller(request(host="10.0.0.7"))
    assert caller == Caller("lab", False, "address:10.0.0.7", shared=True)  # everyone on a network address
    assert access.caller(None) == Caller("lab", False, "address:local", shared=True)


def test_with_logins_the_caller_is_the_logged_in_user_with_their_role() -> None:
    access = Access(ROLES.get)
    assert access.caller(request("ada")) == Caller("ada", True, "user:ada")
    assert access.caller(request("bo")) == Caller("bo", False, "user:bo")


def test_a_user_removed_from_the_file_or_no_login_is_refused() -> None:
    access = Access(ROLES.get)
    for username in ("carl", None):
        with pytest.raises(AccessDenied, match="not logged in"):
            access.caller(request(username))


def test_admin_only_actions_refuse_a_voter_and_say_what_to_do() -> None:
    access = Access(ROLES.get)
    access.require_admin(access.caller(request("ada")), "Exporting")
    with pytest.raises(AccessDenied, match="Exporting is for admins only: ask an admin"):
        access.require_admin(access.caller(request("bo")), "Exporting")
    nobody = Access(local_admin=False)
    with pytest.raises(AccessDenied, match="command line"):
        nobody.require_admin(nobody.caller(None), "Exporting")


def test_generations_per_user_are_capped_and_released_when_done() -> None:
    access = Access(ROLES.get, max_concurrent=2)
    bo, ada = access.caller(request("bo")), access.caller(request("ada"))
    with access.generating(bo), access.generating(bo):
        with pytest.raises(TooBusy, match="already have 2"), access.generating(bo):
            pass
        with access.generating(ada):  # another user is not held back
            pass
    with access.generating(bo):  # released, also after the refusal
        pass


def test_a_generation_that_fails_gives_its_slot_back() -> None:
    access = Access(ROLES.get, max_concurrent=1)
    bo = access.caller(request("bo"))
    with pytest.raises(RuntimeError), access.generating(bo):
        raise RuntimeError("the variant died")
    with access.generating(bo):
        pass


def test_votes_per_minute_are_capped_per_user_and_the_window_slides() -> None:
    now = [1000.0]
    access = Access(ROLES.get, max_votes_per_minute=3, clock=lambda: now[0])
    bo, ada = access.caller(request("bo")), access.caller(request("ada"))
    for _ in range(3):
        access.count_vote(bo)
        now[0] += 1
    with pytest.raises(TooBusy, match=r"3 times in the last minute .* try again in 57 s"):
        access.count_vote(bo)
    access.count_vote(ada)
    now[0] += 57  # the first vote is now a minute old
    access.count_vote(bo)
    access.refund_vote(bo)  # a refused vote does not count
    access.count_vote(bo)
    with pytest.raises(TooBusy):
        access.count_vote(bo)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.3.2.1", True),
    ("0.0.0.0", False), ("192.168.1.5", False), ("::", False), ("arena.example.org", False),
])
def test_only_loopback_addresses_count_as_local(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serving_a_network_address_needs_logins_or_an_explicit_no_auth() -> None:
    check_exposure("127.0.0.1", None, False)
    check_exposure("0.0.0.0", "users.toml", False)
    check_exposure("0.0.0.0", None, True)
    with pytest.raises(Exception, match=r"--users FILE .* or --no-auth"):
        check_exposure("0.0.0.0", None, False)


def test_serve_refuses_to_start_on_a_network_address_without_logins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--variants", "demo:e2b"]) == 2
    err = capsys.readouterr().err
    assert "serves the arena to the network without logins" in err and "users add" in err


# --- on a Hugging Face Space (the sign-in itself: tests/test_space_runtime.py) ------------------------


def test_a_users_file_and_hugging_face_sign_in_do_not_mix() -> None:
    from backends.variant_file import SpaceSettings

    with pytest.raises(UsageError, match="sign in with Hugging Face"):
        Access(ROLES.get, space=SpaceSettings())


def test_serve_on_a_space_refuses_a_users_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPACE_ID", "owner/arena")
    assert main(["serve", "--users", str(tmp_path / "users.toml"), "--variants", "demo:e2b"]) == 2
    assert "admins = [" in capsys.readouterr().err


def test_a_space_that_refuses_some_voters_needs_its_sign_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A [space] table that refuses votes from people not signed in, on a Space without an OAuth
    app (no `hf_oauth: true`): nobody could ever vote, so serve refuses to start and says why."""
    for name in ("OAUTH_CLIENT_ID", "SPACES_ZERO_GPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPACE_ID", "owner/arena")
    config = tmp_path / "variants.toml"
    config.write_text('[[variants]]\nspec = "demo:e2b"\n\n[space]\norganization = "gemma-lab"\n')
    assert main(["serve", "--config", str(config)]) == 2
    assert "hf_oauth: true" in capsys.readouterr().err
