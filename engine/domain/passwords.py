"""The password policy (NIST SP 800-63B): what a new password must be. Pure: no hashing here.

Owns the one normalisation every password goes through before it is hashed or compared (NFKC),
and the rules a new password must meet, all checked on its NFKC form: at least `min_length`
characters (EXAMREG_PASSWORD_MIN_LENGTH) and at most 128; not one of the 30,000 most common
passwords shipped in `data/common_passwords.txt`, nor one of them or a word of this service
("matkhau", "thisinh", …) with digits or symbols around it; nothing containing the login (the
national ID or the username), forwards or backwards; not only repeated or sequential characters;
not the current one. There are no composition rules ("a letter and a digit"): SP 800-63B
§3.1.1.2 forbids them, they make passwords harder to remember, not to guess.

The rules compare a case-folded skeleton in which every decimal digit of any script counts as
its ASCII digit: NFKC already turns full-width `０１２` into `012`, but not Arabic-Indic `٠١٢`,
which would otherwise let `password١` or the ID written in those digits through. The password
itself is kept as typed (NFKC only): Arabic-Indic digits are allowed in a password that passes.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from importlib import resources

from engine.errors import FieldError, WeakPassword

MAX_LENGTH = 128
MIN_LENGTH_FLOOR = 8  # SP 800-63B: no verifier may accept fewer

# Words of this service and of the exam a candidate is likely to build a password on (SP 800-63B:
# "context-specific words, such as the name of the service").
CONTEXT_WORDS = frozenset(
    {
        "examreg",
        "matkhau",
        "thisinh",
        "thptqg",
        "thptquocgia",
        "totnghiep",
        "kythi",
        "dangky",
        "dangkythi",
        "tuyensinh",
        "bogiaoduc",
        "hocsinh",
    }
)


def normalise_password(password: str) -> str:
    """NFKC (SP 800-63B §3.1.1.2), so one password typed on any keyboard is one password:
    Vietnamese diacritics precomposed or combining, full-width letters and digits alike."""
    return unicodedata.normalize("NFKC", password)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped blocklist, read once (lower case, most common first in the file)."""
    text = resources.files("engine.domain").joinpath("data/common_passwords.txt").read_text("utf-8")
    return frozenset(
        line for line in (raw.strip() for raw in text.splitlines()) if line and line[0] != "#"
    )


def _skeleton(text: str) -> str:
    """NFKC, case-folded, every decimal digit of any script as its ASCII digit."""
    return "".join(
        str(unicodedata.decimal(c)) if c.isdecimal() else c
        for c in normalise_password(text).casefold()
    )


def _core(skeleton: str) -> str:
    """The skeleton without the digits, symbols and spaces around it: `password1!` → `password`."""
    start, end = 0, len(skeleton)
    while start < end and not skeleton[start].isalpha():
        start += 1
    while end > start and not skeleton[end - 1].isalpha():
        end -= 1
    return skeleton[start:end]


def _alphanumeric(skeleton: str) -> str:
    return "".join(c for c in skeleton if c.isalnum())


_REPEATS = re.compile(r"(.{1,4}?)\1+", re.S)


def _repetitive(skeleton: str) -> bool:
    """Only repeats and runs (`aaaaaaa1`, `xyzxyzxyz1`, `1234abcd`): once every repeated unit of
    up to four characters is written once (`xyz1`), at most one step goes anywhere but to the
    same or the next character."""
    collapsed = _REPEATS.sub(r"\1", skeleton)
    jumps = sum(1 for a, b in itertools.pairwise(collapsed) if abs(ord(a) - ord(b)) > 1)
    return jumps <= 1


def _contains_login(skeleton: str, login: str) -> bool:
    folded = _alphanumeric(_skeleton(login))
    if len(folded) < 4:  # a two-letter username would forbid half the dictionary
        return False
    letters = _alphanumeric(skeleton)
    return folded in letters or folded[::-1] in letters


_REASONS = {
    "too_long": (
        f"Mật khẩu dài tối đa {MAX_LENGTH} ký tự.",
        f"The password may have at most {MAX_LENGTH} characters.",
    ),
    "same_as_current": (
        "Mật khẩu mới phải khác mật khẩu hiện tại.",
        "The new password must differ from the current one.",
    ),
    "contains_login": (
        "Mật khẩu không được chứa số định danh hay tên đăng nhập của bạn.",
        "The password must not contain your ID number or username.",
    ),
    "too_common": (
        "Mật khẩu này quá phổ biến, rất dễ bị đoán. Vui lòng chọn mật khẩu khác.",
        "This password is too common and easy to guess. Please choose another.",
    ),
    "repetitive": (
        "Mật khẩu không được chỉ gồm ký tự lặp lại hay dãy liên tiếp (như aaaa1111, 12345678).",
        "The password must not be only repeated or sequential characters (like aaaa1111, "
        "12345678).",
    ),
}


def _reasons(new: str, current: str | None, login: str, min_length: int) -> list[str]:
    normal = normalise_password(new)
    skeleton = _skeleton(new)
    core = _core(skeleton)
    found = []
    if len(normal) < min_length:
        found.append("too_short")
    if len(normal) > MAX_LENGTH:
        found.append("too_long")
    if current is not None and normal == normalise_password(current):
        found.append("same_as_current")
    if login and _contains_login(skeleton, login):
        found.append("contains_login")
    blocklist = common_passwords()
    if skeleton in blocklist or core in blocklist or core in CONTEXT_WORDS:
        found.append("too_common")
    elif _repetitive(skeleton):
        found.append("repetitive")
    return found


def check_password_policy(
    new: str, current: str | None = None, *, login: str = "", min_length: int = MIN_LENGTH_FLOOR
) -> None:
    """Refuse a new password that breaks the policy, with every reason it breaks.

    Raises:
        WeakPassword: `errors` holds one FieldError per reason (field `new_password`, codes
            `too_short`, `too_long`, `same_as_current`, `contains_login`, `too_common`,
            `repetitive`); the detail is the first one's message.
    """
    reasons = _reasons(new, current, login, min_length)
    if not reasons:
        return
    messages = {
        **_REASONS,
        "too_short": (
            f"Mật khẩu cần ít nhất {min_length} ký tự (một cụm từ dễ nhớ càng tốt).",
            f"The password needs at least {min_length} characters (a memorable phrase is best).",
        ),
    }
    errors = tuple(FieldError("new_password", code, *messages[code]) for code in reasons)
    raise WeakPassword(errors[0].message, errors[0].message_en, errors=errors)
