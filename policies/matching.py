"""Rule matching: all of a policy's entries and regexes, found in a prompt fast (entries: `policies.entries`).

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

from policies.entries import (
    EXACT,
    KEY_TABLE,
    NAME,
    REPEATED,
    TERM,
    WORD_CHARS,
    WORD_END,
    Entry,
    Style,
    compile_entry,
    key_of,
    part_regex,
)
from policies.normalize import SPACED_RUN, fold
from policies.schema import Policy

_SECONDARY = frozenset({"exception", "context", "unless"})
_FIELDS = {"term": "prompt.terms", "phrase": "prompt.phrases", "name": "prompt.name_lists", "group":
           "prompt.combinations", "exception": "exceptions.phrases", "context": "exceptions.context.terms",
           "unless": "exceptions.context.unless"}  # fmt: skip


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
            tail = WORD_CHARS if entry.wildcard in ("prefix", "infix") else entry.plural_re
            for cut in range(1, len(word)):
                left, right = word[:cut], word[cut:]
                if not any(len(piece) <= 2 and piece not in _COMMON_SHORT_WORDS for piece in (left, right)):
                    continue
                regex = re.compile(
                    part_regex(left, TERM, first=True) + r"[\W_]{1,3}" + part_regex(right, TERM) + tail + WORD_END
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
        keytext = REPEATED.sub("", folded.translate(KEY_TABLE))
        tokens = keytext.split()
        words = set(tokens)
        if "!" in folded or "|" in folded:  # both readings: "nude!" is punctuation, "materia|" is leetspeak
            words.update(REPEATED.sub("", _EDGE_BANGS.sub(" ", folded).translate(KEY_TABLE)).split())
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

    def find(self, folded: str, excused: list[tuple[int, int]] | None = None) -> list[Match]:
        """Every rule of the policy that fires on a folded prompt, after exceptions and with combinations.

        With `excused`, the spans of the exception phrases that made a match innocent are appended to it."""
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
            if cover is None or not cover.covers(span):
                return False
            if excused is not None:
                excused.extend(s for s in exceptions[cat_name] if s[0] <= span[0] and span[1] <= s[1])
            return True

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
