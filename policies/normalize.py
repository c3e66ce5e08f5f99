"""Prompt normalisation: fold look-alike characters, case and invisible characters, and map offsets back.

Two views of a prompt are used:

* `fold(text)` maps every character on its own (NFKC, case folding, diacritics stripped, Cyrillic/Greek/
  small-capital look-alikes mapped to Latin, zero-width and control characters removed). The matcher
  searches this view; `offsets(text)` maps each folded position back to the original text.
* `normalize(text)` is the readable, de-obfuscated form reported to users: the folded text with leetspeak
  inside words undone, letters spaced out with dots/spaces/dashes joined, and stretched letters collapsed.
"""

from __future__ import annotations

import re
import unicodedata
from operator import itemgetter

# Look-alike letters that NFKC leaves alone (after case folding). Cyrillic and Greek homoglyphs, plus a few
# Latin variants and IPA letters people use to dodge filters.
_CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "ѐ": "e", "є": "e", "г": "r", "һ": "h", "і": "i", "ї": "i",
    "ј": "j", "к": "k", "ӏ": "l", "м": "m", "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "ԛ": "q",
    "ѕ": "s", "т": "t", "у": "y", "ү": "y", "х": "x", "ԝ": "w", "ѡ": "w", "ь": "b", "ԁ": "d", "ɡ": "g",
    "з": "3", "ч": "4", "ш": "w", "и": "u", "л": "n", "д": "d", "ц": "u", "ъ": "b", "ы": "bi", "я": "r",
    # Greek
    "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "ζ": "z", "η": "n", "θ": "o", "ι": "i", "κ": "k",
    "λ": "l", "μ": "u", "ν": "v", "ξ": "e", "ο": "o", "π": "n", "ρ": "p", "σ": "o", "ς": "s", "τ": "t",
    "υ": "u", "φ": "o", "χ": "x", "ψ": "w", "ω": "w",
    # Latin variants, IPA
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɐ": "a", "ɛ": "e", "ɜ": "e", "ɪ": "i", "ʏ": "y", "ɴ": "n", "ʀ": "r",
    "ʟ": "l", "ɢ": "g", "ʜ": "h", "ɩ": "i", "ɵ": "o", "ø": "o", "ð": "d", "đ": "d", "ħ": "h", "ł": "l",
    "ŧ": "t", "ƀ": "b", "ɇ": "e", "ɨ": "i", "ʉ": "u", "ƶ": "z", "æ": "ae", "œ": "oe", "þ": "th",
}  # fmt: skip

_LATIN_NAME = re.compile(
    r"\b(?:LATIN (?:CAPITAL |SMALL )?LETTER(?: SMALL CAPITAL)?|REGIONAL INDICATOR SYMBOL LETTER) ([A-Z])(?: WITH .*)?$"
)
_WHITESPACE_CONTROLS = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85"


def _fold_char(char: str) -> str:
    """One pass of character folding; `_FoldTable` iterates it to a fixed point."""
    category = unicodedata.category(char)
    if char in _WHITESPACE_CONTROLS or category in ("Zs", "Zl", "Zp"):
        return " "
    if category in ("Cc", "Cf", "Mn", "Me"):
        return ""
    if category == "Cs":
        return "\ufffd"
    out = []
    nfkc = unicodedata.normalize("NFKC", char)
    if len(nfkc) > 2 and nfkc[0] == "(" and nfkc[-1] == ")":  # parenthesized letters and numbers: ⒩ -> n
        nfkc = nfkc[1:-1]
    for piece in "".join(_CONFUSABLES.get(c) or c.casefold() for c in nfkc):
        for base in unicodedata.normalize("NFKD", piece):
            if unicodedata.category(base) in ("Mn", "Me"):
                continue
            if base in _CONFUSABLES:
                out.append(_CONFUSABLES[base])
                continue
            if not base.isascii():
                match = _LATIN_NAME.search(unicodedata.name(base, ""))
                if match:
                    out.append(match.group(1).lower())
                    continue
            out.append(base)
    return "".join(out)


class _FoldTable(dict):
    """A `str.translate` table filled on first sight of each character, so any Unicode text can be folded."""

    def __missing__(self, code: int) -> str:
        result = _fold_char(chr(code))
        for _ in range(8):  # fold the folded characters again until nothing changes (idempotence)
            again = "".join(_fold_char(c) for c in result)
            if again == result:
                break
            result = again
        self[code] = result
        return result


FOLD_TABLE = _FoldTable()


def fold(text: str) -> str:
    """The character-level folded view of `text` (what the matcher searches)."""
    return text.translate(FOLD_TABLE)


def offsets(text: str) -> list[int]:
    """For each position of `fold(text)`, the position in `text` it came from, plus one entry for the end."""
    if text.isascii() and len(fold(text)) == len(text):
        return list(range(len(text) + 1))
    positions: list[int] = []
    for index, char in enumerate(text):
        positions.extend([index] * len(FOLD_TABLE[ord(char)]))
    positions.append(len(text))
    return positions


def original_span(positions: list[int], start: int, end: int) -> tuple[int, int]:
    """Map a [start, end) span of the folded text back to the original text, using `offsets(text)`.

    The end extends over characters folding removed (a combining accent, a zero-width space) right after it.
    """
    if end <= start:
        return positions[start], positions[start]
    last = positions[end - 1]
    following = positions[end]
    return positions[start], following if following > last else last + 1


# --- the readable normalised form -------------------------------------------------------------------------

LEET = {"4": "a", "@": "a", "8": "b", "3": "e", "9": "g", "6": "g", "1": "i", "!": "i", "|": "i", "0": "o",
        "5": "s", "$": "s", "7": "t", "+": "t", "2": "z"}  # fmt: skip
"""Leetspeak digits and symbols and the letter each usually stands for."""

_LEET_TABLE = str.maketrans(LEET)
_WORD_CHAR = r"(?:[^\W_]|[@$!|])"
SPACED_RUN = re.compile(
    rf"(?<![^\W_]){_WORD_CHAR}(?P<sep>[\s.\-_*/\\,:;~·•]{{1,3}}){_WORD_CHAR}(?:(?P=sep){_WORD_CHAR})+(?![^\W_])"
)
"""Three or more single characters separated by the same separator: 'n u d e', 'n.u.d.e', 's-e-x'."""

_LEET_CHARS = re.compile(r"[\d@$!|]+")
_TOKEN_REST = re.compile(r"(?:[^\W_]|[@$!|])*")
_TECH_TOKEN = re.compile(r"\d+[^\W\d_]{1,2}|[^\W\d_]{1,2}\d+")  # 4k, 1080p, mp3, h264: not leetspeak
_STRETCH = re.compile(r"(\w)\1{2,}")
_FIRST_GROUP = itemgetter(1)


def _join_run(match: re.Match[str]) -> str:
    run = match.group(0)
    return run[:: len(match.group("sep")) + 1]


def _unleet_token(token: str) -> str:
    if _TECH_TOKEN.fullmatch(token) or sum(c.isalpha() for c in token) < 2:
        return token
    return token.translate(_LEET_TABLE)


def _unleet(text: str) -> str:
    """Undo leetspeak inside words that mix letters and leet characters ("s3x", "h!tler"), not "8k" or "mp3"."""
    pieces: list[str] = []
    done = 0
    for match in _LEET_CHARS.finditer(text):
        start, end = match.span()
        if start < done:
            continue
        before = text[start - 1] if start else ""
        after = text[end] if end < len(text) else ""
        if not (before.isalpha() or after.isalpha()):
            continue  # a number, or punctuation: leave it
        while start > done and (text[start - 1].isalnum() or text[start - 1] in "@$!|"):
            start -= 1
        end = _TOKEN_REST.match(text, end).end()
        token = text[start:end].lstrip("!|").rstrip("!|")  # at the edges they are punctuation: "nude!"
        start = text.index(token, start)
        pieces.append(text[done:start])
        pieces.append(_unleet_token(token))
        done = start + len(token)
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _normalize_once(text: str) -> str:
    text = SPACED_RUN.sub(_join_run, text)
    text = _unleet(text)
    return _STRETCH.sub(_FIRST_GROUP, text)


def normalize(text: str) -> str:
    """The readable de-obfuscated form of `text`: folded, leetspeak undone inside words, spacing and stretching
    removed. Idempotent: `normalize(normalize(t)) == normalize(t)`."""
    result = fold(text)
    while True:
        again = _normalize_once(result)
        if again == result:
            return result
        result = again
