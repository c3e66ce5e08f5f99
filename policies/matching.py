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
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise

from policies.normalize import SPACED_RUN, fold
from policies.schema import Policy

_LEET_CLASSES = {"a": "a4@", "b": "b8", "e": "e3", "g": "g96", "i": "i1!|", "l": "l1|", "o": "o0", "s": "s5$",
                 "t": "t7+", "z": "z2"}  # fmt: skip
_KEY_LEET = {"4": "a", "@": "a", "8": "b", "3": "e", "9": "g", "6": "g", "1": "i", "!": "i", "|": "i", "l": "i",
             "0": "o", "5": "s", "$": "s", "7": "t", "+": "t", "2": "z"}  # fmt: skip
_ANY_SEP = r"[\W_]+"
_PART_JOIN = r"[\W_]*"
_SECONDARY = frozenset({"exception", "context", "unless"})
_FIELDS = {"term": "prompt.terms", "phrase": "prompt.phrases", "name": "prompt.name_lists", "group":
           "prompt.combinations", "exception": "exceptions.phrases", "context": "exceptions.context.terms",
           "unless": "exceptions.context.unless"}  # fmt: skip
_BEFORE = r"(?<![^\W_])"
_BOUNDARY_BEHIND_FIRST = r"(?<![^\W_](?s:.))"  # after the first character: no word character before it
_AFTER = r"(?![^\W_]|[@$!|]+[^\W_])"
_WORD_CHARS = r"(?:[^\W_]|[@$!|])*"
_REPEATED = re.compile(r"(.)(?=\1)")
"""A character followed by the same one; deleting these collapses runs ("nuuude" -> "nude") in C."""


class _KeyTable(dict):
    """`str.translate` table from folded text to the key view: leetspeak to letters, punctuation to spaces."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        result = _KEY_LEET.get(char) or (char if char.isalnum() else " ")
        self[code] = result
        return result


_KEYS = _KeyTable()
_SINGLE_LETTERS = frozenset("bcdefghjklmnopqrstuvwxyz0123456789")
_COMMON_SHORT_WORDS = frozenset({
    "to", "of", "a", "in", "i", "is", "it", "on", "be", "as", "at", "he", "by", "my", "or", "we", "an", "so", "me",
    "if", "up", "do", "no", "us", "go", "s", "am", "mr", "d", "oh", "t", "m", "b", "r", "c", "e", "dr", "de", "re",
    "co", "w", "st", "tv", "x", "l", "al", "n", "ok", "p", "o", "uk", "u", "f", "h", "v", "la", "y", "ii", "g",
    "hi", "j", "k", "vs", "ex", "ed", "ad", "im", "pm", "ca", "ms", "ya", "et", "ll", "mm", "ah", "ma", "eu", "un",
    "id", "ha", "em", "dc", "el", "q", "ve", "jr", "da", "pc", "ft", "en", "le", "bc", "z", "pa", "yo", "ny", "na",
    "op", "ap", "iv", "mo", "pp", "km", "cd", "di", "il", "mi", "sa", "mp", "se", "cm", "eh", "fi", "hd", "uh",
    "va", "ac", "li", "ye", "er", "ai", "dj", "ho"
})  # fmt: skip
"""Every word of one or two letters among the 5,000 most common English words (wordfreq), contractions and
initials included. A word split in two ("nu de", "po rn") is only joined when one piece is a short
non-word, so two real words ("pen is", "an al") are never read as one."""
_EDGE_BANGS = re.compile(r"[!|]+(?![\w@$!|])")
"""'!' and '|' ending a word may be punctuation ("nude!") or leetspeak ("materia|"): both readings are tried."""


def key_of(folded: str) -> str:
    """The lookup key of an already folded word: leetspeak mapped, repeated letters collapsed."""
    return _REPEATED.sub("", folded.translate(_KEYS)).replace(" ", "")


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


def _part_regex(part: str, style: Style, first: bool = False) -> str:
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
        _PART_JOIN.join(_part_regex(p, style, first=(w == 0 and i == 0 and not leading)) for i, p in enumerate(parts))
        for w, parts in enumerate(word_parts)
    )
    last = word_parts[-1][-1]
    if trailing or not style.plural:
        plural_re = ""
    elif last.endswith(("s", "x", "z", "ch", "sh")):  # English plurals: sex -> sexes, nude -> nudes
        plural_re = "(?:[e3][s5$])?" if style.leet else "(?:es)?"
    else:
        plural_re = "(?:[s5$])?" if style.leet else "s?"
    head = _WORD_CHARS if leading else ""
    tail = _WORD_CHARS if trailing else plural_re
    regex = re.compile(f"{_BEFORE}{head}{body}{tail}{_AFTER}" if leading else f"{body}{tail}{_AFTER}")
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
    return _PART_JOIN.join(_part_regex(part, style) for parts in word_parts for part in parts)


@dataclass
class Match:
    """A rule that fired: its category, the rule ("term:nude*") and where, in folded coordinates.

    Combinations keep one span per group in `spans`; `span` is the first of them."""

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
        self._by_text: dict[tuple[str, Style], int] = {}
        self._roles: dict[int, list[_Role]] = defaultdict(list)
        self._regexes: list[tuple[str, str, re.Pattern[str]]] = []
        # Regexes of `allow` categories only matter once something else matched (they can only complete a
        # combination), so they are skipped for prompts where nothing else did, unless a combination
        # could be completed by such regexes alone.
        self._lazy_regexes: list[tuple[str, str, re.Pattern[str]]] = []
        self._lazy_regexes_safe = not any(
            all(_regex_only(policy, group) for group in combo.all_of)
            for category in policy.categories.values()
            for combo in category.prompt.combinations
        )
        for cat_name, category in policy.categories.items():
            rules = category.prompt
            for term in rules.terms:
                self._add(term, _Role(cat_name, "term"))
            for phrase in rules.phrases:
                self._add(phrase, _Role(cat_name, "phrase"))
            for list_name in rules.name_lists:
                for name in name_lists[list_name]:
                    self._add(name, _Role(cat_name, "name"), NAME)
            for rule in rules.regexes:
                compiled = (cat_name, rule.name, re.compile(rule.pattern))
                (self._lazy_regexes if category.action == "allow" else self._regexes).append(compiled)
            for c, combo in enumerate(rules.combinations):
                for g, group in enumerate(combo.all_of):
                    for term in group.any:
                        self._add(term, _Role(cat_name, "group", c, g))
            for phrase in category.exceptions.phrases:
                self._add(phrase, _Role(cat_name, "exception"), EXACT)
            if category.exceptions.context:
                for term in category.exceptions.context.terms:
                    self._add(term, _Role(cat_name, "context"), EXACT)
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
        self._inner_keys = [
            (entry.wild_key or min(entry.keys, key=len), entry_id)
            for entry_id, entry in enumerate(self._entries)
            if " " not in entry.text.strip()
            and len(entry.wild_key or min(entry.keys, key=len)) >= 4
            and any(r.kind not in _SECONDARY for r in self._roles[entry_id])
        ]
        self._split_pairs = self._build_split_pairs()
        self._is_primary = [any(r.kind not in _SECONDARY for r in self._roles[i]) for i in range(len(self._entries))]
        self._is_secondary = [any(r.kind in _SECONDARY for r in self._roles[i]) for i in range(len(self._entries))]
        self._wild_regex: list[tuple[re.Pattern[str], dict[str, list[int]]]] = []
        shapes = {"prefix": r"(?<![^ ]){}", "suffix": r"{}(?![^ ])", "infix": "{}"}
        for kind, keys in wild.items():
            if keys:
                alternation = "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))
                self._wild_regex.append((re.compile(shapes[kind].format(f"(?:{alternation})")), keys))

    def _build_split_pairs(self) -> dict[tuple[str, str], list[tuple[int, re.Pattern[str]]]]:
        """Blocked words split in two by a space or punctuation ("nu de", "po-rn"): key pairs -> patterns.

        Only single words of three letters or more, and only splits where one piece is a short non-word."""
        pairs: dict[tuple[str, str], list[tuple[int, re.Pattern[str]]]] = defaultdict(list)
        for entry_id, entry in enumerate(self._entries):
            kinds = {role.kind for role in self._roles[entry_id]}
            if not kinds & {"term", "phrase", "group"} or entry.style != TERM:
                continue
            word = fold(entry.text.strip("*"))
            if not word.isalnum() or len(word) < 3:
                continue
            tail = _WORD_CHARS if entry.wildcard in ("prefix", "infix") else entry.plural_re
            for cut in range(1, len(word)):
                left, right = word[:cut], word[cut:]
                if not any(len(piece) <= 2 and piece not in _COMMON_SHORT_WORDS for piece in (left, right)):
                    continue
                regex = re.compile(
                    _part_regex(left, TERM, first=True) + r"[\W_]{1,3}" + _part_regex(right, TERM) + tail + _AFTER
                )
                pairs[(key_of(left), key_of(right))].append((entry_id, regex))
        return dict(pairs)

    def _add(self, text: str, role: _Role, style: Style = TERM) -> None:
        entry_id = self._by_text.get((text, style))
        if entry_id is None:
            try:
                entry = compile_entry(text, style)
            except ValueError as exc:
                raise ValueError(f"field categories.{role.category}.{_FIELDS[role.kind]}: {exc}") from None
            entry_id = len(self._entries)
            self._entries.append(entry)
            self._by_text[(text, style)] = entry_id
        self._roles[entry_id].append(role)

    def _candidates(self, folded: str) -> tuple[set[int], dict[int, list[tuple[int, int]]]]:
        """Entries whose key occurs in the prompt, plus spans found in spaced-out runs."""
        keytext = _REPEATED.sub("", folded.translate(_KEYS))
        tokens = keytext.split()
        words = set(tokens)
        if "!" in folded or "|" in folded:  # both readings: "nude!" is punctuation, "materia|" is leetspeak
            words.update(_REPEATED.sub("", _EDGE_BANGS.sub(" ", folded).translate(_KEYS)).split())
        found: set[int] = set()
        index = self._index
        for key in words & self._keyset:
            found.update(index[key])
        for regex, keys in self._wild_regex:
            for hit in regex.findall(keytext):
                found.update(keys[hit])
        # Letters spelled out one by one leave one-character words in the key view (articles aside).
        spaced = words & _SINGLE_LETTERS and SPACED_RUN.search(folded)
        extra = self._spaced_runs(folded) if spaced else {}
        for pair in self._split_pairs.keys() & set(pairwise(tokens)):
            for entry_id, pattern in self._split_pairs[pair]:
                for match in pattern.finditer(folded):
                    extra.setdefault(entry_id, []).append(match.span())
        return found, extra

    def _spaced_runs(self, folded: str) -> dict[int, list[tuple[int, int]]]:
        """Entries spelled out letter by letter ("n u d e", "s.e.l.f-h.a.r.m", "n u d e w o m a n")."""
        runs: list[tuple[str, list[int]]] = []
        for run in SPACED_RUN.finditer(folded):
            step = len(run.group("sep")) + 1
            letters = run.group(0)[::step]
            positions = list(range(run.start(), run.end(), step))
            if (
                runs
                and run.start() - runs[-1][1][-1] <= 6
                and not folded[runs[-1][1][-1] + 1 : run.start()].strip(" .-_*/")
            ):
                runs.append((runs[-1][0] + letters, runs[-1][1] + positions))  # "s.e.l.f - h.a.r.m"
            runs.append((letters, positions))
            if letters[0] in "ai" and len(letters) > 3:  # "a n u d e": the article is not part of the word
                runs.append((letters[1:], positions[1:]))
        found: dict[int, list[tuple[int, int]]] = {}
        for joined, positions in runs:
            key = key_of(joined)
            ids = list(self._index.get(key, ()))
            for regex, keys in self._wild_regex:
                for hit in regex.findall(key):
                    ids.extend(keys[hit])
            for entry_id in ids:
                if self._entries[entry_id].regex.fullmatch(joined):
                    found.setdefault(entry_id, []).append((positions[0], positions[-1] + 1))
            # Words run together once spaced out ("n u d e w o m a n"): look inside the run, but only for
            # entries of four letters or more, so "a s s e s s" or "c l a s s" do not match "ass".
            for inner_key, entry_id in self._inner_keys:
                if inner_key in key:
                    for match in self._entries[entry_id].inner().finditer(joined):
                        span = (positions[match.start()], positions[match.end() - 1] + 1)
                        found.setdefault(entry_id, []).append(span)
        return found

    def find(self, folded: str) -> list[Match]:
        """Every rule of the policy that fires on a folded prompt, after exceptions and with combinations."""
        found, run_spans = self._candidates(folded)
        entries, roles = self._entries, self._roles
        primary: dict[str, list[Match]] = defaultdict(list)
        groups: dict[tuple[str, int, int], list[tuple[int, int]]] = defaultdict(list)
        secondary: list[int] = []
        for entry_id in found.union(run_spans):
            if not self._is_primary[entry_id]:
                secondary.append(entry_id)
                continue
            hits = [m.span() for m in entries[entry_id].regex.finditer(folded)]
            hits.extend(run_spans.get(entry_id, ()))
            if not hits:
                continue
            if self._is_secondary[entry_id]:
                secondary.append(entry_id)
            text = entries[entry_id].text
            for role in roles[entry_id]:
                if role.kind in ("term", "phrase", "name"):
                    primary[role.category].extend(Match(role.category, f"{role.kind}:{text}", h) for h in hits)
                elif role.kind == "group":
                    groups[(role.category, role.combo, role.group)].extend(hits)
        for cat_name, rule_name, regex in self._regexes:
            for m in regex.finditer(folded):
                primary[cat_name].append(Match(cat_name, f"regex:{rule_name}", m.span()))
        if primary or groups or not self._lazy_regexes_safe:
            for cat_name, rule_name, regex in self._lazy_regexes:
                for m in regex.finditer(folded):
                    primary[cat_name].append(Match(cat_name, f"regex:{rule_name}", m.span()))
        if not primary and not groups:
            return []
        # Exceptions and context only matter for categories that matched something: verify them lazily.
        involved = set(primary) | {key[0] for key in groups}
        exceptions: dict[str, list[tuple[int, int]]] = defaultdict(list)
        context: set[str] = set()
        unless: set[str] = set()
        for entry_id in secondary:
            wanted = [r for r in roles[entry_id] if r.category in involved and r.kind in _SECONDARY]
            if not wanted:
                continue
            hits = [m.span() for m in entries[entry_id].regex.finditer(folded)]
            hits.extend(run_spans.get(entry_id, ()))
            if not hits:
                continue
            for role in wanted:
                if role.kind == "exception":
                    exceptions[role.category].extend(hits)
                elif role.kind == "context":
                    context.add(role.category)
                else:
                    unless.add(role.category)

        covers = {cat_name: _Cover(spans) for cat_name, spans in exceptions.items()}

        def innocent(cat_name: str, span: tuple[int, int]) -> bool:
            cover = covers.get(cat_name)
            return cover is not None and cover.covers(span)

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


def _regex_only(policy: Policy, group) -> bool:
    """True when a combination group can only be satisfied by regexes (no words, names or combinations)."""
    if group.any:
        return False
    for name in group.categories:
        rules = policy.categories[name].prompt
        if rules.terms or rules.phrases or rules.name_lists or rules.combinations:
            return False
    return True


def _dedupe(matches: list[Match]) -> list[Match]:
    """One reason per place: drop a match that lies inside a longer one ("Biden" inside "Joe Biden")."""
    kept: list[Match] = []
    reach = -1
    for match in sorted(matches, key=lambda m: (m.span[0], -m.span[1], m.rule)):
        if match.span[1] <= reach:  # starts no earlier than a kept match and ends inside it
            continue
        kept.append(match)
        reach = match.span[1]
    return kept


class _Cover:
    """Exception spans, searchable in O(log n): is a span inside any of them?"""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        ordered = sorted(spans)
        self._starts = [start for start, _ in ordered]
        self._reach: list[int] = []
        furthest = -1
        for _, end in ordered:
            furthest = max(furthest, end)
            self._reach.append(furthest)

    def covers(self, span: tuple[int, int]) -> bool:
        index = bisect_right(self._starts, span[0]) - 1
        return index >= 0 and self._reach[index] >= span[1]
