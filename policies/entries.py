"""Compile one policy entry (a word, phrase or name) into its lookup keys and its verification regex.

An entry is found in two steps: its *key* (leetspeak mapped to letters, punctuation to spaces, repeated
letters collapsed: "nuuude" and "nud3" both give "nude") is looked up in the prompt's key view, then its
regex, which tolerates the same obfuscations but requires word boundaries, confirms the match and gives
its span.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policies.normalize import fold

_LEET_CLASSES = {"a": "a4@", "b": "b8", "e": "e3", "g": "g96", "i": "i1!|", "l": "l1|", "o": "o0", "s": "s5$",
                 "t": "t7+", "z": "z2"}  # fmt: skip
_KEY_LEET = {"4": "a", "@": "a", "8": "b", "3": "e", "9": "g", "6": "g", "1": "i", "!": "i", "|": "i", "l": "i",
             "0": "o", "5": "s", "$": "s", "7": "t", "+": "t", "2": "z"}  # fmt: skip
_ANY_SEP = r"[\W_]+"
_PART_JOIN = r"[\W_]*"
_BEFORE = r"(?<![^\W_])"
_BOUNDARY_BEHIND_FIRST = r"(?<![^\W_](?s:.))"  # after the first character: no word character before it
WORD_END = r"(?![^\W_]|[@$!|]+[^\W_])"
WORD_CHARS = r"(?:[^\W_]|[@$!|])*"
REPEATED = re.compile(r"(.)(?=\1)")
"""A character followed by the same one; deleting these collapses runs ("nuuude" -> "nude") in C."""


class _KeyTable(dict):
    """`str.translate` table from folded text to the key view: leetspeak to letters, punctuation to spaces."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        result = _KEY_LEET.get(char) or (char if char.isalnum() else " ")
        self[code] = result
        return result


KEY_TABLE = _KeyTable()


def key_of(folded: str) -> str:
    """The lookup key of an already folded word: leetspeak mapped, repeated letters collapsed."""
    return REPEATED.sub("", folded.translate(KEY_TABLE)).replace(" ", "")


@dataclass(frozen=True)
class Style:
    """How tolerant an entry is: leetspeak, stretched letters ("any", "long" = three or more, "none"), plural."""

    leet: bool = True
    stretch: str = "any"
    plural: bool = True


TERM = Style()
"""Blocked words and phrases, and `unless` words: every obfuscation is tolerated."""
NAME = Style(stretch="long", plural=False)
"""Names: a name stretched by one letter is too often another word ("bidden" is not "Biden")."""
EXACT = Style(leet=False, stretch="none")
"""Exceptions and context words make a match innocent, so they must be written plainly: "goreee" is
not the exception "goree", and "c4rtoon" does not excuse a public figure."""


def part_regex(part: str, style: Style, first: bool = False) -> str:
    """Letters (with their leetspeak look-alikes and stretching, as `style` allows).

    With `first`, the pattern starts with a plain character class and checks the word boundary right
    after it, so the regex engine can skip quickly to places where the entry could start."""
    pieces = []
    for index, char in enumerate(part):
        leet = style.leet and char in _LEET_CLASSES
        one = f"[{re.escape(_LEET_CLASSES[char])}]" if leet else re.escape(char)
        if char.isdigit() or style.stretch == "none":
            more = ""
        elif style.stretch == "any":
            more = f"{one}*"
        else:
            more = f"(?:{one}{one}+)?"
        if first and index == 0:
            pieces.append(one + _BOUNDARY_BEHIND_FIRST + more)
        else:
            pieces.append(one + more)
    return "".join(pieces)


@dataclass
class Entry:
    """One word, phrase or name from the policy, compiled for lookup and verification."""

    text: str
    keys: set[str]
    regex: re.Pattern[str]
    wildcard: str | None = None  # "prefix", "suffix" or "infix" for entries written with '*'
    wild_key: str = ""
    inner_pattern: str = ""
    style: Style = TERM
    plural_re: str = ""
    _inner: re.Pattern[str] | None = None

    def inner(self) -> re.Pattern[str]:
        """The entry without word boundaries, for looking inside letters that were spaced out."""
        if self._inner is None:
            self._inner = re.compile(self.inner_pattern)
        return self._inner


def compile_entry(text: str, style: Style = TERM) -> Entry:
    """Compile a policy entry such as 'nude', 'bare breasts', 'self-harm', 'porn*' or '*porn*'.

    `style` says which obfuscations it tolerates; with `style.plural` it also matches its English plural.
    """
    raw = text.strip()
    leading, trailing = raw.startswith("*"), raw.endswith("*")
    words = [w for w in fold(raw.strip("*")).split() if w]
    word_parts = [[p for p in re.split(r"[\W_]+", w) if p] for w in words]
    word_parts = [parts for parts in word_parts if parts]
    if not word_parts:
        raise ValueError(f"entry {text!r} has no letters or digits")
    body = _ANY_SEP.join(
        _PART_JOIN.join(part_regex(p, style, first=(w == 0 and i == 0 and not leading)) for i, p in enumerate(parts))
        for w, parts in enumerate(word_parts)
    )
    last = word_parts[-1][-1]
    if trailing or not style.plural:
        plural_re = ""
    elif last.endswith(("s", "x", "z", "ch", "sh")):  # English plurals: sex -> sexes, nude -> nudes
        plural_re = "(?:[e3][s5$])?" if style.leet else "(?:es)?"
    else:
        plural_re = "(?:[s5$])?" if style.leet else "s?"
    head = WORD_CHARS if leading else ""
    tail = WORD_CHARS if trailing else plural_re
    regex = re.compile(f"{_BEFORE}{head}{body}{tail}{WORD_END}" if leading else f"{body}{tail}{WORD_END}")
    keys: set[str] = set()
    if leading or trailing:
        joined = "".join(word_parts[0] if len(word_parts) == 1 else [p for ps in word_parts for p in ps])
        kind = "infix" if leading and trailing else ("suffix" if leading else "prefix")
        return Entry(raw, keys, regex, kind, key_of(joined), _inner_body(word_parts, style), style)
    candidates = [(key_of(p), i) for i, parts in enumerate(word_parts) for p in parts]
    anchor, anchor_word = max(candidates, key=lambda c: len(c[0]))
    keys.add(anchor)
    for i, parts in enumerate(word_parts):
        if len(parts) > 1 and i == anchor_word:
            keys.add(key_of("".join(parts)))
    if style.plural and anchor_word == len(word_parts) - 1:
        for stem in list(keys):
            keys.update({key_of(stem + "s"), key_of(stem + "es")})
    return Entry(
        raw, keys, regex, inner_pattern=_inner_body(word_parts, style) + plural_re, style=style, plural_re=plural_re
    )


def _inner_body(word_parts: list[list[str]], style: Style) -> str:
    return _PART_JOIN.join(part_regex(part, style) for parts in word_parts for part in parts)
