"""Rule matching: compile a policy's words, phrases, names and regexes once, then find them in prompts fast.

How a prompt is searched (all of it C-level string and regex work in the common, innocent case):

1. `fold` the prompt (look-alike letters, case, accents, invisible characters).
2. Build a *key* view: leetspeak mapped to letters, punctuation to spaces, repeated letters collapsed
   ("nuuude" -> "nude", "s3x" -> "sex"), split into words, and intersect that set with the keys of every
   policy entry. Letters spaced out with one separator ("n.u.d.e", "s e x") are joined and looked up too.
3. Only entries whose key was seen are verified, with a precise regex on the folded text that allows the
   same obfuscations but requires word boundaries, so "scunthorpe", "cocktail" or "assess" never match
   "cunt", "cock" or "ass". Spans are in folded coordinates; `decide` maps them back to the original text.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from policies.normalize import SPACED_RUN, fold
from policies.schema import Policy

_LEET_CLASSES = {"a": "a4@", "b": "b8", "e": "e3", "g": "g96", "i": "i1!|", "l": "l1|", "o": "o0", "s": "s5$",
                 "t": "t7+", "z": "z2"}  # fmt: skip
_KEY_LEET = {"4": "a", "@": "a", "8": "b", "3": "e", "9": "g", "6": "g", "1": "i", "!": "i", "|": "i", "l": "i",
             "0": "o", "5": "s", "$": "s", "7": "t", "+": "t", "2": "z"}  # fmt: skip
_ANY_SEP = r"[\W_]+"
_PART_JOIN = r"[\W_]*"
_BEFORE = r"(?<![^\W_])"
_AFTER = r"(?![^\W_]|[@$!|]+[^\W_])"
_WORD_CHARS = r"(?:[^\W_]|[@$!|])*"
_REPEATS = re.compile(r"(.)\1+")


class _KeyTable(dict):
    """`str.translate` table from folded text to the key view: leetspeak to letters, punctuation to spaces."""

    def __init__(self, keep_bang: bool) -> None:
        super().__init__()
        self._keep_bang = keep_bang

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if char in "!|" and not self._keep_bang:
            result = " "
        elif char in _KEY_LEET:
            result = _KEY_LEET[char]
        elif char.isalnum():
            result = char
        else:
            result = " "
        self[code] = result
        return result


_KEYS = _KeyTable(keep_bang=True)
_KEYS_NO_BANG = _KeyTable(keep_bang=False)


def key_of(folded: str) -> str:
    """The lookup key of an already folded word: leetspeak mapped, repeated letters collapsed."""
    return _REPEATS.sub(r"\1", folded.translate(_KEYS)).replace(" ", "")


def _part_regex(part: str) -> str:
    pieces = []
    for char in part:
        if char in _LEET_CLASSES:
            pieces.append(f"[{re.escape(_LEET_CLASSES[char])}]+")
        elif char.isdigit():
            pieces.append(re.escape(char))
        else:
            pieces.append(re.escape(char) + "+")
    return "".join(pieces)


@dataclass
class Entry:
    """One word, phrase or name from the policy, compiled for lookup and verification."""

    text: str
    keys: set[str]
    regex: re.Pattern[str]
    bare: re.Pattern[str] | None
    wildcard: str | None = None  # "prefix", "suffix" or "infix" for entries written with '*'
    wild_key: str = ""


def compile_entry(text: str) -> Entry:
    """Compile a policy entry such as 'nude', 'bare breasts', 'self-harm', 'porn*' or '*porn*'."""
    raw = text.strip()
    leading, trailing = raw.startswith("*"), raw.endswith("*")
    words = [w for w in fold(raw.strip("*")).split() if w]
    word_parts = [[p for p in re.split(r"[\W_]+", w) if p] for w in words]
    word_parts = [parts for parts in word_parts if parts]
    if not word_parts:
        raise ValueError(f"entry {text!r} has no letters or digits")
    body = _ANY_SEP.join(_PART_JOIN.join(_part_regex(p) for p in parts) for parts in word_parts)
    plural = "" if trailing else "(?:[e3]?[s5$])?"
    head = _WORD_CHARS if leading else ""
    tail = _WORD_CHARS if trailing else plural
    regex = re.compile(f"{_BEFORE}{head}{body}{tail}{_AFTER}")
    single = len(word_parts) == 1 and not (leading or trailing)
    bare = re.compile(body + plural) if single else None
    keys: set[str] = set()
    if leading or trailing:
        joined = "".join(word_parts[0] if len(word_parts) == 1 else [p for ps in word_parts for p in ps])
        kind = "infix" if leading and trailing else ("suffix" if leading else "prefix")
        return Entry(raw, keys, regex, None, kind, key_of(joined))
    candidates = [(key_of(p), i) for i, parts in enumerate(word_parts) for p in parts]
    anchor, anchor_word = max(candidates, key=lambda c: len(c[0]))
    keys.add(anchor)
    for i, parts in enumerate(word_parts):
        if len(parts) > 1 and i == anchor_word:
            keys.add(key_of("".join(parts)))
    if anchor_word == len(word_parts) - 1:
        for stem in list(keys):
            keys.update({key_of(stem + "s"), key_of(stem + "es")})
    return Entry(raw, keys, regex, bare)


@dataclass
class Match:
    """A rule that fired: its category, rule name, the entry text and where (folded coordinates)."""

    category: str
    rule: str
    span: tuple[int, int]
    spans: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class _Role:
    category: str
    kind: str  # term | phrase | name | exception | context | unless | group
    combo: int = -1
    group: int = -1


class Matcher:
    """All prompt rules of a policy, compiled once; `find(text)` returns the rules that fire."""

    def __init__(self, policy: Policy, name_lists: dict[str, list[str]]) -> None:
        self.policy = policy
        self._entries: list[Entry] = []
        self._by_text: dict[str, int] = {}
        self._roles: dict[int, list[_Role]] = defaultdict(list)
        self._regexes: list[tuple[str, str, re.Pattern[str]]] = []
        for cat_name, category in policy.categories.items():
            rules = category.prompt
            for term in rules.terms:
                self._add(term, _Role(cat_name, "term"))
            for phrase in rules.phrases:
                self._add(phrase, _Role(cat_name, "phrase"))
            for list_name in rules.name_lists:
                for name in name_lists[list_name]:
                    self._add(name, _Role(cat_name, "name"))
            for rule in rules.regexes:
                self._regexes.append((cat_name, rule.name, re.compile(rule.pattern)))
            for c, combo in enumerate(rules.combinations):
                for g, group in enumerate(combo.all_of):
                    for term in group.any:
                        self._add(term, _Role(cat_name, "group", c, g))
            for phrase in category.exceptions.phrases:
                self._add(phrase, _Role(cat_name, "exception"))
            if category.exceptions.context:
                for term in category.exceptions.context.terms:
                    self._add(term, _Role(cat_name, "context"))
                for term in category.exceptions.context.unless:
                    self._add(term, _Role(cat_name, "unless"))
        self._index: dict[str, list[int]] = defaultdict(list)
        wild: dict[str, dict[str, list[int]]] = {"prefix": {}, "suffix": {}, "infix": {}}
        for entry_id, entry in enumerate(self._entries):
            for key in entry.keys:
                self._index[key].append(entry_id)
            if entry.wildcard:
                wild[entry.wildcard].setdefault(entry.wild_key, []).append(entry_id)
        self._keyset = frozenset(self._index)
        self._wild = wild
        self._wild_regex: list[tuple[re.Pattern[str], dict[str, list[int]]]] = []
        shapes = {"prefix": r"(?<![^ ]){}", "suffix": r"{}(?![^ ])", "infix": "{}"}
        for kind, keys in wild.items():
            if keys:
                alternation = "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))
                self._wild_regex.append((re.compile(shapes[kind].format(f"(?:{alternation})")), keys))

    def _add(self, text: str, role: _Role) -> None:
        entry_id = self._by_text.get(text)
        if entry_id is None:
            entry_id = len(self._entries)
            self._entries.append(compile_entry(text))
            self._by_text[text] = entry_id
        self._roles[entry_id].append(role)

    def _candidates(self, folded: str) -> tuple[set[int], dict[int, list[tuple[int, int]]]]:
        """Entries whose key occurs in the prompt, plus spans found in spaced-out runs."""
        keytext = _REPEATS.sub(r"\1", folded.translate(_KEYS))
        words = set(keytext.split())
        if "!" in folded or "|" in folded:
            words.update(_REPEATS.sub(r"\1", folded.translate(_KEYS_NO_BANG)).split())
        found: set[int] = set()
        index = self._index
        for key in words & self._keyset:
            found.update(index[key])
        for regex, keys in self._wild_regex:
            for hit in regex.findall(keytext):
                found.update(keys[hit])
        run_spans: dict[int, list[tuple[int, int]]] = {}
        for run in SPACED_RUN.finditer(folded):
            step = len(run.group("sep")) + 1
            letters = run.group(0)[::step]
            options = [(letters, run.start())]
            if letters[0] in "ai" and len(letters) > 3:
                options.append((letters[1:], run.start() + step))
            for joined, start in options:
                for entry_id in index.get(key_of(joined), ()):
                    bare = self._entries[entry_id].bare
                    if bare is not None and bare.fullmatch(joined):
                        run_spans.setdefault(entry_id, []).append((start, run.end()))
        return found, run_spans

    def find(self, folded: str) -> list[Match]:
        """Every rule of the policy that fires on a folded prompt, after exceptions and with combinations."""
        found, run_spans = self._candidates(folded)
        spans: dict[int, list[tuple[int, int]]] = {}
        for entry_id in found:
            hits = [m.span() for m in self._entries[entry_id].regex.finditer(folded)]
            if hits:
                spans[entry_id] = hits
        for entry_id, hits in run_spans.items():
            spans.setdefault(entry_id, []).extend(hits)
        primary: dict[str, list[Match]] = defaultdict(list)
        for cat_name, rule_name, regex in self._regexes:
            for m in regex.finditer(folded):
                primary[cat_name].append(Match(cat_name, f"regex:{rule_name}", m.span()))
        if not spans and not primary:
            return []
        exceptions: dict[str, list[tuple[int, int]]] = defaultdict(list)
        context: set[str] = set()
        unless: set[str] = set()
        groups: dict[tuple[str, int, int], list[tuple[int, int]]] = defaultdict(list)
        for entry_id, hits in spans.items():
            text = self._entries[entry_id].text
            for role in self._roles[entry_id]:
                if role.kind in ("term", "phrase", "name"):
                    primary[role.category].extend(Match(role.category, f"{role.kind}:{text}", h) for h in hits)
                elif role.kind == "exception":
                    exceptions[role.category].extend(hits)
                elif role.kind == "context":
                    context.add(role.category)
                elif role.kind == "unless":
                    unless.add(role.category)
                else:
                    groups[(role.category, role.combo, role.group)].extend(hits)

        def innocent(cat_name: str, span: tuple[int, int]) -> bool:
            return any(a <= span[0] and span[1] <= b for a, b in exceptions.get(cat_name, ()))

        fired: dict[str, list[Match]] = {}
        for cat_name in self.policy.categories:
            if cat_name in context and cat_name not in unless:
                continue
            kept = [m for m in primary.get(cat_name, ()) if not innocent(cat_name, m.span)]
            if kept:
                fired[cat_name] = kept
        for cat_name, category in self.policy.categories.items():
            if cat_name in context and cat_name not in unless:
                continue
            for c, combo in enumerate(category.prompt.combinations):
                evidence: list[tuple[int, int]] = []
                for g, group in enumerate(combo.all_of):
                    own = [s for s in groups.get((cat_name, c, g), ()) if not innocent(cat_name, s)]
                    others = [m.span for other in group.categories for m in fired.get(other, ())]
                    hits = sorted(own + others)
                    if not hits:
                        break
                    evidence.append(hits[0])
                else:
                    fired.setdefault(cat_name, []).append(
                        Match(cat_name, f"combination:{combo.name}", evidence[0], evidence)
                    )
        return [m for matches in fired.values() for m in _dedupe(matches)]


def _dedupe(matches: list[Match]) -> list[Match]:
    """One reason per place: drop a match that lies inside a longer one ("Biden" inside "Joe Biden")."""
    kept: list[Match] = []
    for match in sorted(matches, key=lambda m: (m.span[0], -m.span[1], m.rule)):
        start, end = match.span
        if any(k.span[0] <= start and end <= k.span[1] for k in kept):
            continue
        kept.append(match)
    return kept
