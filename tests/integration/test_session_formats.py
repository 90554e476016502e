"""Session formats on files written by real PHP: igbinary (php8.2-igbinary),
several login rules, "empty" as PHP writes it, big sessions read on in chunks,
and sessions written by Symfony 5.4's own session and security classes
(Debian's php-symfony-* packages) with each serialize_handler. Counts are
checked exactly through coupecircuitctl status --json."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import PHP_CLI, clean_env

HANDLERS = ("php", "php_serialize", "php_binary", "igbinary")
SYMFONY_SCRIPT = Path(__file__).resolve().parent / "php" / "symfony_session.php"
SYMFONY_AUTOLOAD = Path("/usr/share/php/Symfony/Component/Security/Http/autoload.php")


def php_args(handler: str) -> list[str]:
    return [PHP_CLI, "-n", "-d", "extension=igbinary", "-d", f"session.serialize_handler={handler}",
            "-d", "display_errors=stderr"]


def plain_session(session_dir: Path, handler: str, code: str, name: str) -> Path:
    """One session written by PHP's session extension with the given handler."""
    session_id = name.replace("_", "-")
    script = (f"session_id('{session_id}'); if (!session_start()) exit(3); {code} "
              "if (!session_write_close()) exit(4);")
    result = subprocess.run(
        php_args(handler) + ["-d", f"session.save_path={session_dir}", "-d", "session.use_cookies=0",
                             "-d", "session.use_strict_mode=0", "-d", "session.gc_probability=0", "-r", script],
        capture_output=True, text=True, timeout=30, env=clean_env())
    assert result.returncode == 0 and result.stderr == "", f"php failed: {result.stdout}{result.stderr}"
    path = session_dir / f"sess_{session_id}"
    assert path.is_file(), path
    return path


def symfony_session(session_dir: Path, handler: str, case: str) -> Path:
    result = subprocess.run(php_args(handler) + [str(SYMFONY_SCRIPT), str(session_dir), case],
                            capture_output=True, text=True, timeout=30, env=clean_env())
    assert result.returncode == 0 and result.stderr == "", f"{case}: {result.stdout}{result.stderr}"
    path = session_dir / f"sess_{result.stdout.strip()}"
    assert path.is_file(), path
    return path


def active_counts(helper) -> dict:
    code, document = helper.status()
    assert code in (0, 1), document
    sessions = document["sessions"]
    assert sessions["scan_failed"] is False
    return sessions["active"]


CART = ("$cart = []; for ($i = 0; $i < 4000; $i++) { $cart['sku-' . $i] = "
        "['qty' => $i % 7, 'label' => 'Item ' . $i . ' ' . str_repeat('x', 16)]; }"
        "$_SESSION['cart'] = $cart;")
PLAIN = {
    "zend_authenticated": "$_SESSION['Default'] = ['init' => true]; $_SESSION['vzn_x'] = ['storage' => 'u'];",
    "user_id": "$_SESSION['user_id'] = 42; $_SESSION['flash'] = [];",
    "big_cart_then_login": CART + "$_SESSION['vzn_x'] = ['storage' => 'u'];",
    "anonymous": "$_SESSION['Default'] = ['init' => true];",
    "big_cart_anonymous": CART,
    "empty": "",
    "emptied": "$_SESSION['x'] = 1; unset($_SESSION['x']);",
}
PLAIN_EXPECTED = {"authenticated": 3, "anonymous": 2, "unknown": 0, "empty": 2}


@pytest.mark.parametrize("handler", ["igbinary", "php_serialize"])
def test_plain_php_sessions_counted_exactly(make_helper, handler):
    helper = make_helper(start=False, config_extra=(
        "\n[sessions]\nauthenticated = * contains storage, has user_id\n"))
    for name, code in PLAIN.items():
        path = plain_session(helper.session_dir, handler, code, name)
        if handler == "igbinary":
            assert path.read_bytes()[:4] == b"\0\0\0\2", name
    # Written by PHP as the issue says: igbinary's empty array, a:0:{}.
    empty = (helper.session_dir / "sess_empty").read_bytes()
    assert empty == (b"\0\0\0\2\x14\x00" if handler == "igbinary" else b"a:0:{}")
    # The big carts put the login past the first 64 KiB chunk.
    assert (helper.session_dir / "sess_big-cart-then-login").stat().st_size > 64 * 1024
    document = helper.start()
    assert document["sessions"]["active"] == PLAIN_EXPECTED
    # The same files with the format fixed.
    helper.stop()
    helper.write_config(extra=f"\n[sessions]\nauthenticated = * contains storage, has user_id\nformat = {handler}\n")
    document = helper.start()
    assert document["sessions"]["active"] == PLAIN_EXPECTED


def test_read_cap_below_the_login_makes_it_unknown(make_helper):
    helper = make_helper(start=False, config_extra="\n[sessions]\nmax_read_bytes = 65536\n")
    plain_session(helper.session_dir, "igbinary", PLAIN["big_cart_then_login"], "big")
    document = helper.start()
    assert document["sessions"]["active"] == {"authenticated": 0, "anonymous": 0, "unknown": 1, "empty": 0}


SYMFONY_CASES = {  # case -> class with both firewalls' rules
    "form_login_main": "authenticated",
    "form_login_admin": "authenticated",
    "two_firewalls": "authenticated",
    "csrf_only": "anonymous",
    "target_path_only": "anonymous",
    "logout": "empty",
}
SYMFONY_RULES = ("\n[sessions]\nunknown_key =\nauthenticated = _sf2_attributes contains _security_main\n"
                 "    _sf2_attributes contains _security_admin\n")


def expected_symfony(times: int) -> dict:
    result = {"authenticated": 0, "anonymous": 0, "unknown": 0, "empty": 0}
    for klass in SYMFONY_CASES.values():
        result[klass] += times
    return result


@pytest.fixture(scope="module")
def symfony_available():
    if not SYMFONY_AUTOLOAD.is_file():
        pytest.skip("php-symfony-security-http is not installed (see .ci/packages.txt)")


def test_symfony_sessions_of_every_handler_in_one_directory(make_helper, symfony_available):
    helper = make_helper(start=False, config_extra=SYMFONY_RULES)
    for handler in HANDLERS:
        for case in SYMFONY_CASES:
            symfony_session(helper.session_dir, handler, case)
    document = helper.start()
    assert document["sessions"]["active"] == expected_symfony(len(HANDLERS))
    # One rule with a glob finds both firewalls too.
    helper.stop()
    helper.write_config(extra="\n[sessions]\nunknown_key =\nauthenticated = _sf2_attributes contains _security_*\n")
    document = helper.start()
    assert document["sessions"]["active"] == expected_symfony(len(HANDLERS))
    # With the main firewall only, the admin-only session is anonymous.
    helper.stop()
    helper.write_config(extra="\n[sessions]\nunknown_key =\nauthenticated = _sf2_attributes contains _security_main\n")
    document = helper.start()
    expected = expected_symfony(len(HANDLERS))
    expected["authenticated"] -= len(HANDLERS)
    expected["anonymous"] += len(HANDLERS)
    assert document["sessions"]["active"] == expected


@pytest.mark.parametrize("handler", HANDLERS)
def test_symfony_sessions_with_the_format_fixed(make_helper, symfony_available, handler):
    helper = make_helper(start=False, config_extra=SYMFONY_RULES + f"format = {handler}\n")
    for case in SYMFONY_CASES:
        symfony_session(helper.session_dir, handler, case)
    document = helper.start()
    assert document["sessions"]["active"] == expected_symfony(1)
