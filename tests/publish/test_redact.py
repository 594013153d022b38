"""Redaction and truncation of what a comparison may say once it leaves the process."""

from __future__ import annotations

import pytest

from shadowdiff.config import LoggingConfig
from shadowdiff.model import Difference
from shadowdiff.publish.redact import REDACTED, Redactor


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(LoggingConfig(max_value_chars=40))


@pytest.mark.parametrize(
    ("difference", "control", "candidate"),
    [
        (Difference("header", "authorization", "changed", "Bearer a", "Bearer b"), REDACTED, REDACTED),
        (Difference("header", "cookie", "added", None, "sid=1"), None, REDACTED),
        (Difference("header", "set-cookie:sid", "removed", "set", None), "set", None),
        (Difference("header", "cache-control", "changed", "no-cache", "max-age=1"), "no-cache", "max-age=1"),
        (Difference("body", "$.user.password", "changed", "hunter2", "hunter3"), REDACTED, REDACTED),
        (Difference("body", "$.users[0].Token", "changed", "t1", "t2"), REDACTED, REDACTED),
        (Difference("body", "$.user", "added", None, {"name": "a", "password": "p"}), None, {"name": "a", "password": REDACTED}),
        (Difference("body", "$.note", "changed", "x" * 50, "short"), "x" * 40 + "...(+10 chars)", "short"),
        (Difference("status", "status", "changed", 200, 500), 200, 500),
        (Difference("body", "line 3", "changed", "user=a&password=hunter2&x=1", 'token: "abc123def456" ok'),
         f"user=a&password={REDACTED}&x=1", f'token: "{REDACTED}" ok'),
        (Difference("body", "$", "type_changed", 'not JSON: {"password": "two words"}', "JSON"),
         f'not JSON: {{"password": "{REDACTED}"}}', "JSON"),
    ],
)  # fmt: skip
def test_redaction_and_truncation(redactor: Redactor, difference: Difference, control: object, candidate: object) -> None:
    """Configured headers and body fields are redacted (also inside added objects); long values are cut."""
    out = redactor.difference(difference)
    assert (out.control, out.candidate) == (control, candidate)
    assert (out.part, out.path, out.kind) == (difference.part, difference.path, difference.kind)


@pytest.mark.parametrize(
    "key",
    ["password", "passwd", "pwd", "authToken", "apiKey", "api-key", "X-API-KEY", "SECRET_KEY", "client_secret",
     "card_number", "cardNumber", "jwt", "id_token", "refreshTokens", "sessionId", "cookies", "privateKey",
     "XAuthToken", "user[password]", "credentials", "cvv"],
)  # fmt: skip
def test_secret_key_families(redactor: Redactor, key: str) -> None:
    """Key names in every built-in family are secret, whatever their case and separators."""
    assert redactor.secret_key(key)


@pytest.mark.parametrize("key", ["author", "tokenizer", "name", "passage", "cardinal", "id", "compass"])
def test_ordinary_keys_are_not_secret(redactor: Redactor, key: str) -> None:
    """Words that merely contain a family term's letters are not secret (`author` is not `auth`)."""
    assert not redactor.secret_key(key)


def test_users_add_and_remove_terms() -> None:
    """redact_fields adds a term to the families; redact_keep removes a whole key name, or a family by its name."""
    redactor = Redactor(LoggingConfig(redact_fields=("ssn",), redact_keep=("prompt_tokens", "session")))
    assert redactor.secret_key("user_ssn")
    assert not redactor.secret_key("prompt_tokens") and redactor.secret_key("access_token")
    assert not redactor.secret_key("sessionId")


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi123", "abc.def-ghi123"),
        (f"token was {JWT} today", JWT),
        ("see https://app.example/cb?state=1&access_token=tok123456&x=2", "tok123456"),
        ("https://deploy:hunter2@git.example/repo.git", "hunter2"),
        ("Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        ("user=alice&passwd=hunter2&remember=1", "hunter2"),
        ('config {"apiKey": "k-123456"}', "k-123456"),
        ("SECRET_KEY = 's3cr3t-value'", "s3cr3t-value"),
        ("pay with 4111 1111 1111 1111 now", "4111 1111 1111 1111"),
        ("aws AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----", "MIIEvQIBADANBg"),
        ("Cookie: theme=dark; session=abc123xyz", "abc123xyz"),
    ],
)  # fmt: skip
def test_credential_shapes_in_text(redactor: Redactor, text: str, secret: str) -> None:
    """Credential-shaped values are hidden wherever they appear in a string, the text around them kept."""
    out = Redactor(LoggingConfig(max_value_chars=400)).text(text)
    assert secret not in out and REDACTED in out


@pytest.mark.parametrize("text", ["basic information", "a bearer of news", "id 1234567890123456", "https://example.com/a?page=2"])
def test_ordinary_text_is_left_alone(text: str) -> None:
    """Prose and values that only resemble a credential's neighbourhood are not rewritten."""
    assert Redactor(LoggingConfig(max_value_chars=400)).text(text) == text


def test_json_inside_a_json_string_and_whole_subtrees(redactor: Redactor) -> None:
    """A JSON document held in a string is redacted as JSON; an added subtree's secret keys are found at any depth."""
    payload = '{"user": {"name": "a", "password": "hunter2"}}'
    subtree = {"a": [{"b": {"apiKey": "k1"}}], "meta": payload}
    out = Redactor(LoggingConfig(max_value_chars=4000)).difference(Difference("body", "$.x", "added", None, subtree))
    assert out.candidate["a"][0]["b"]["apiKey"] == REDACTED
    assert "hunter2" not in out.candidate["meta"] and '"name":"a"' in out.candidate["meta"]


def test_redacted_first_then_cut() -> None:
    """A long value is redacted before it is cut: a secret past the cut is not half shown, one before it is hidden."""
    redactor = Redactor(LoggingConfig(max_value_chars=30))
    out = redactor.text("x" * 20 + " token=abcdefghijklmnop" + "y" * 100)
    assert "abcdef" not in out and out.startswith("x" * 20 + " token=[RE")


def test_user_patterns(redactor: Redactor) -> None:
    """A pattern in redact_patterns is hidden wherever it matches."""
    custom = Redactor(LoggingConfig(redact_patterns=(r"acct-[0-9]{6}",)))
    assert custom.text("for acct-123456 ok") == f"for {REDACTED} ok"


def test_deep_values_and_controls(redactor: Redactor) -> None:
    """A value nested past the scrubbing depth becomes a note, not a RecursionError; controls are escaped."""
    deep: object = "leaf"
    for _ in range(100_000):
        deep = [deep]
    out = Redactor(LoggingConfig(max_value_chars=1000)).difference(Difference("body", "$.x", "added", None, deep))
    assert "nested deeper than" in str(out.candidate)
    assert redactor.text("a\u202eb\x9bc") == "a\\u202eb\\u009bc"


def test_pickles_as_its_settings() -> None:
    """A Redactor sent to the comparison worker arrives with the same settings and hides the same things."""
    import pickle

    redactor = Redactor(LoggingConfig(redact_fields=("ssn",), max_value_chars=50))
    copy = pickle.loads(pickle.dumps(redactor))
    assert copy.spec == redactor.spec and copy.secret_key("ssn")


def test_already_redacted_differences_are_left_alone(redactor: Redactor) -> None:
    """A difference the worker already redacted and cut is not redacted or cut again."""
    once = redactor.difference(Difference("body", "$.note", "changed", "x" * 50, "token=abc"))
    assert redactor.difference(once) is once


def test_only_what_can_be_shown_is_scrubbed() -> None:
    """A huge added subtree or string is cut after redaction of what is shown: secrets in the shown part are hidden,
    the cut is marked, and the work does not grow with the value (a 100,000-item subtree is one line)."""
    redactor = Redactor(LoggingConfig(max_value_chars=100))
    tree = {"first": {"password": "hunter2"}, "items": [{"name": f"n{i}", "token": f"t{i}"} for i in range(100_000)]}
    out = redactor.value(tree)
    assert isinstance(out, str) and out.endswith("...(cut)") and "hunter2" not in out and len(out) < 120
    long = "Bearer " + "a" * 50 + " " + "x" * 1_000_000
    cut = redactor.text(long)
    assert cut.startswith("Bearer [REDACTED] xxx")
    hidden = int(cut.rsplit("(+", 1)[1].removesuffix(" chars)"))
    assert len(cut) < 130 and abs(hidden - (len(long) - 100)) < 100  # what was left out, give or take the redaction


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('{"payload": "' + '{\\"password\\": \\"hunter2\\", \\"pad\\": \\"' + "x" * 3000 + '\\"}"}', "hunter2"),
        ('{"id":1,"secret":{"value":"hunter2"},"n":2}\n{"id":2}', "hunter2"),  # NDJSON: not one document
        ('{"id":1,"api key":"k-123456"}\n{"id":2}', "k-123456"),
        ('{"a":"{\\"password\\":\\"hunter2\\"}"}trailing', "hunter2"),  # escaped JSON in a quoted value
        ("user%5Bpassword%5D=hunter2&x=1", "hunter2"),  # a browser-encoded form key
        ("password%3Dhunter2", "hunter2"),
        (":password => 'hunter2'", "hunter2"),
        ("password := hunter2", "hunter2"),
        ("<login><password>hunter2</password></login>", "hunter2"),
        ("Cookie: theme=dark; sid=hunter2", "hunter2"),
        ("authtoken=hunter2 PHPSESSID=hunter3", "hunter"),  # a term inside one word
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----", "lQOYBF"),
        ("xeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "eyJzdWIiOiIxIn0"),
    ],
)  # fmt: skip
def test_shapes_found_in_review(text: str, secret: str) -> None:
    """Secrets in long or broken embedded JSON, escaped JSON, encoded form keys, other assignment operators, XML,
    header-like lines and one-word keys are hidden too."""
    assert secret not in Redactor(LoggingConfig(max_value_chars=4000)).text(text)


def test_a_chain_of_pairs_is_linear_not_recursive() -> None:
    """`ab=ab=ab=...` (a pair per three characters) is scanned without recursing: no RecursionError at any length."""
    redactor = Redactor(LoggingConfig(max_value_chars=4000))
    for count in (200, 2000, 20_000):
        text = "ab=" * count + "password=hunter2"
        out = redactor.text(text)
        assert "hunter2" not in out or len(text) > 4000 + 1024


def test_counts_under_secret_keys_stay_visible_and_decimals_are_not_cards() -> None:
    """A count or a flag under a family key (prompt_tokens, has_password, session_count) is shown, and so is a
    model's output token; a card number (under any key), a numeric password and a credential-like token are not;
    the digits of an exact decimal are never taken for a card number."""
    redactor = Redactor(LoggingConfig())
    assert redactor.difference(Difference("body", "$.usage.prompt_tokens", "changed", 10, 12)).candidate == 12
    assert redactor.difference(Difference("body", "$.card_number", "changed", 4111111111111111, 1)).candidate == REDACTED
    assert redactor.value({"has_password": True, "token": "t-1a2b3c4d"}) == {"has_password": True, "token": REDACTED}
    assert redactor.value({"password": 12345678, "session_count": 3}) == {"password": REDACTED, "session_count": 3}
    assert redactor.value({"token": " world", "logprob": -0.1}) == {"token": " world", "logprob": -0.1}  # a model's
    assert redactor.value({"pan": 4111111111111111, "card": {"n": 5555555555554444}})["card"]["n"] == REDACTED
    assert redactor.text("1.4111111111111111") == "1.4111111111111111"
    assert redactor.text("prompt_tokens: 12") == "prompt_tokens: 12"


def test_secret_shapes_in_keys_and_paths_are_hidden() -> None:
    """A credential-shaped key (a token used as a map key) is hidden in a subtree and in a difference's path."""
    redactor = Redactor(LoggingConfig())
    key = "sk_live_" + "a" * 24
    assert key not in str(redactor.value({"cache": {key: "bob"}}))
    assert key not in redactor.difference(Difference("body", f"$.cache['{key}']", "changed", 1, 2)).path


def test_a_report_handles_a_bounded_number_of_shapes_and_the_next_one_starts_afresh() -> None:
    """Past the per-report bound the rest of each value is hidden, never shown; a later report (or a lone text)
    handles shapes as before."""
    from shadowdiff.model import MISMATCH, SHADOW, Comparison
    from tests.values import exchange, seen

    redactor = Redactor(LoggingConfig(max_value_chars=4000))
    crafted = " ".join(f"k{i}=v{i}" for i in range(60)) + " password=hunter2"
    differences = tuple(Difference("body", f"line {i}", "changed", crafted, crafted) for i in range(10))
    comparison = Comparison(exchange(seen("primary", {"a": 1}), seen(SHADOW, {"a": 2})), SHADOW, MISMATCH, differences)
    report = redactor.report(comparison)
    assert all("hunter2" not in str(d.control) for d in report.differences)
    assert "rest hidden" in report.differences[-1].control
    assert redactor.text("password=hunter2 user=bob") == "password=[REDACTED] user=bob"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("eyJ" + "a" * 1150 + " " * 20 + " https://admin:SuperSecretPassw0rd@db.example/" + "z" * 2000, "SuperSecret"),
        ("eyJ" + "a" * 1150 + " " * 20 + " card 4111 1111 1111 1111 " + "z" * 2000, "4111 1111"),
        ("My card is 4111 1111 1111 1111.", "4111"),
        ("params: password=hunter2", "hunter2"),
        ("X-Foo: token=abcdef123456", "abcdef123456"),
        ("next=/cb%3Fpassword%3Dhunter2", "hunter2"),
        ("<password><![CDATA[hunter2]]></password>", "hunter2"),
        ("postgres://user:p@ss@db.internal/app", "ss@db"),
        ("password=abc=def", "def"),
        ("https://acct.blob.core.windows.net/c/b?sv=2020&sig=AbCdEf123456%3D", "AbCdEf123456"),
        ("password=12345678 PHPSESSID=982734982734", "982734982734"),
        ("<password>123456</password>", "123456"),
    ],
)  # fmt: skip
def test_shapes_found_in_the_second_review(text: str, secret: str) -> None:
    """Secrets at the edge of the scanned window, before a full stop, inside another pair's value, in CDATA, in
    userinfo with an @, with = in them, in signed URLs, and numeric passwords or session ids are hidden."""
    out = Redactor(LoggingConfig()).text(text)
    assert secret not in out, out


@pytest.mark.parametrize(
    "text",
    [
        '--b\r\nContent-Disposition: form-data; name="password"\r\n\r\ncorrect-horse-42\r\n--b--',
        '--b\nContent-Disposition: form-data; name="api_key"; filename="k.txt"\nContent-Type: text/plain\n\ncorrect-horse-42\n--b--',
    ],
)
def test_a_multipart_parts_secret_value_is_hidden(text: str) -> None:
    """A multipart body seen as text (a backend echoing an upload): the value of a part named like a secret is
    hidden, whatever headers the part has; a part of any other name is left as it was."""
    redactor = Redactor(LoggingConfig())
    assert "correct-horse-42" not in redactor.text(text)
    plain = text.replace('name="password"', 'name="comment"').replace('name="api_key"', 'name="comment"')
    assert "correct-horse-42" in redactor.text(plain)


def test_a_shrunk_long_string_still_says_it_was_cut_and_lone_surrogates_do_not_raise() -> None:
    """A long string that redaction shrinks below the cut keeps its cut marker; a lone surrogate (which JSON parsers
    let through) is replaced, never raised; short values meet user patterns too."""
    redactor = Redactor(LoggingConfig(redact_patterns=("[0-9]{4}",)))
    assert "chars)" in redactor.text("eyJ" + "a" * 1300 + " tail " + "z" * 500)
    assert "hunter2" not in redactor.text("\ud800 password=hunter2")
    assert redactor.value({"x": "1234"}) == {"x": REDACTED}


def test_card_numbers_in_a_list_are_hidden_too() -> None:
    """A card number given as a JSON number inside a list is hidden, as it is under a key."""
    out = Redactor(LoggingConfig()).value({"cards": [4111111111111111, 7]})
    assert out == {"cards": [REDACTED, 7]}
