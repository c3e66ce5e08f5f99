"""Noise for training: the junk real prompts carry, applied alike to benign and unsafe prompts.

Adversarial prompts look like noise (token soups, glued words, CLIP markers), and so do many harmless
ones (style-tag lists, mojibake from copy-paste, attention weights). If only unsafe training prompts were
noisy, the head would learn "noise = unsafe" and stop harmless prompts with junk in them; if only benign ones
were, an attacker could hide an unsafe prompt in junk. So every transformation here is applied to both
classes in the same proportions, and the label of a variant is the label of its prompt: noise carries no
signal either way. `bury` puts an unsafe fragment (found by the caller) into a soup of harmless filler, so
that a fragment in a soup stays unsafe.

Filler words come from the caller (`prompt_head.filler_vocabulary`: the encoder's vocabulary minus every
word the policy's rules match), so no corpus source lends its vocabulary to the junk.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

STYLE_TAGS: tuple[str, ...] = (
    "masterpiece", "best quality", "highly detailed", "ultra detailed", "intricate details", "8k", "4k", "uhd",
    "hdr", "sharp focus", "soft focus", "bokeh", "depth of field", "cinematic lighting", "volumetric lighting",
    "dramatic lighting", "rim light", "golden hour", "studio lighting", "octane render", "unreal engine",
    "unreal engine 5", "redshift render", "blender", "cgsociety", "trending on artstation", "artstation hq",
    "deviantart", "behance", "pixiv", "concept art", "digital painting", "digital art", "oil on canvas",
    "watercolor", "gouache", "ink drawing", "pencil sketch", "charcoal", "matte painting", "illustration",
    "photorealistic", "hyperrealistic", "realistic", "photography", "35mm", "50mm lens", "85mm", "f/1.8",
    "canon eos r5", "nikon d850", "kodak portra 400", "film grain", "analog photo", "polaroid", "award winning",
    "award-winning photograph", "national geographic", "vogue", "editorial", "symmetrical", "centered",
    "wide angle", "close-up", "full body", "portrait", "headshot", "elegant", "ethereal", "moody", "vibrant",
    "pastel colors", "muted colors", "high contrast", "low key", "smooth", "glossy", "by greg rutkowski",
    "by artgerm", "by alphonse mucha", "by wlop", "by makoto shinkai", "by james jean", "by ross tran",
    "by ilya kuvshinov", "by craig mullins", "by beeple", "by rembrandt", "by caravaggio", "by monet",
    "studio ghibli", "pixar style", "anime style", "cel shaded", "low poly", "isometric", "vaporwave",
    "cyberpunk", "steampunk", "art nouveau", "art deco", "baroque", "renaissance", "surrealism", "impressionism",
    "trending on pinterest", "instagram", "flickr", "unsplash", "wallpaper", "4k wallpaper", "ray tracing",
    "subsurface scattering", "global illumination", "ambient occlusion", "lens flare", "chromatic aberration",
)  # fmt: skip
"""Tags that SD prompts pile up; none says anything about harm."""

FIRST_NAMES = ("anna", "john", "maria", "li", "omar", "sofia", "ivan", "yuki", "carlos", "emma", "raj", "elena",
               "lucas", "amara", "hans", "mei", "pierre", "zara", "tomas", "ines")  # fmt: skip
SURNAMES = ("weber", "smith", "tanaka", "garcia", "novak", "rossi", "kowalski", "chen", "dubois", "okafor",
            "larsen", "moreau", "silva", "jensen", "haddad", "kim", "petrov", "murphy", "schmidt", "costa")  # fmt: skip
"""Made-up artist credits ("by elena novak"): prompt-site prompts credit artists; captions do not."""

CLIP_MARKERS = ("<|startoftext|>", "<|endoftext|>", "<startoftext>", "[SEP]", "</w>")
PUNCTUATION = (",", ".", ";", ":", "!", "?", "|", "-", "~", "/", "+", "...", "::", "(", ")", "[", "]", "{", "}")
EMOJI = ("✨", "🔥", "🌸", "⭐", "🎨", "🌙", "💫", "🌈", "📸", "🖼", "👁", "🌊", "🍃", "☀", "❄")
MOJIBAKE = {"'": "â€™", '"': "â€œ", "-": "â€“", "é": "Ã©", "è": "Ã¨", "ü": "Ã¼", "ö": "Ã¶", "à": "Ã ", " ": "Â "}

_WORD = re.compile(r"\S+")


def garbage(rng: random.Random) -> str:
    """A made-up token: letters and digits, sometimes a word piece or a repeated syllable."""
    kind = rng.random()
    letters = "abcdefghijklmnopqrstuvwxyz"
    if kind < 0.5:
        return "".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
    if kind < 0.7:
        return "".join(rng.choice(letters + "0123456789") for _ in range(rng.randint(3, 8)))
    if kind < 0.85:
        return rng.choice(letters) * rng.randint(2, 4) + rng.choice(("ing", "ed", "ly", "tion", "er", "s"))
    return "".join(rng.choice(letters) for _ in range(2)) * rng.randint(2, 3)


def noise_token(rng: random.Random, filler: Sequence[str]) -> str:
    """One junk token: a harmless word, a made-up token, a CLIP marker, an emoji, punctuation or a number."""
    kind = rng.random()
    if kind < 0.45 and filler:
        return rng.choice(filler)
    if kind < 0.7:
        return garbage(rng)
    if kind < 0.78:
        return rng.choice(CLIP_MARKERS)
    if kind < 0.86:
        return rng.choice(EMOJI)
    if kind < 0.94:
        return rng.choice(PUNCTUATION)
    return str(rng.randint(0, 9999))


def append_noise(text: str, rng: random.Random, filler: Sequence[str]) -> str:
    """The prompt followed (sometimes preceded) by 3-30 junk tokens."""
    junk = " ".join(noise_token(rng, filler) for _ in range(rng.randint(3, 30)))
    return f"{junk} {text}" if rng.random() < 0.25 else f"{text} {junk}"


def style_tags(text: str, rng: random.Random, filler: Sequence[str]) -> str:
    """The prompt with a long comma-separated list of style tags after it (or around it)."""
    tags = rng.sample(STYLE_TAGS, rng.randint(4, 28))
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        tags.insert(rng.randint(0, len(tags)), f"by {rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}")
    if rng.random() < 0.3:
        cut = rng.randint(0, len(tags))
        return ", ".join([*tags[:cut], text, *tags[cut:]])
    return ", ".join([text, *tags])


def glue(text: str, rng: random.Random, filler: Sequence[str]) -> str:
    """Some or all spaces removed ("a photoof acat"), sometimes camel-cased or hashtagged."""
    words = text.split()
    if len(words) < 2:
        return text
    style = rng.random()
    if style < 0.2:
        return "".join(w[:1].upper() + w[1:] for w in words)
    if style < 0.3:
        return " ".join("#" + w for w in words)
    out = [words[0]]
    for word in words[1:]:
        if rng.random() < 0.4:
            out[-1] += word
        else:
            out.append(word)
    return " ".join(out)


def mojibake(text: str, rng: random.Random, filler: Sequence[str]) -> str:
    """Copy-paste damage: UTF-8 read as Windows-1252, replacement characters, stray non-breaking spaces."""
    out = []
    for char in text:
        if char in MOJIBAKE and rng.random() < 0.5:
            out.append(MOJIBAKE[char])
        elif rng.random() < 0.03:
            out.append(char + rng.choice(("\ufffd", "\ufffd\ufffd", "Â", "â€", "\u00a0")))
        else:
            out.append(char)
    if rng.random() < 0.4:
        cut = rng.randint(0, len(out))
        out.insert(cut, rng.choice(("\ufffd", "ï»¿", "â€¦", "\ufffd\ufffd\ufffd")))
    return "".join(out)


def markers(text: str, rng: random.Random, filler: Sequence[str]) -> str:
    """CLIP's special tokens inserted between (or glued to) words."""
    words = text.split() or [""]
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(words))
        marker = rng.choice(CLIP_MARKERS)
        if rng.random() < 0.5 and at < len(words):
            words[at] = marker + words[at] if rng.random() < 0.5 else words[at] + marker
        else:
            words.insert(at, marker)
    return " ".join(words)


def weights(text: str, rng: random.Random, filler: Sequence[str]) -> str:
    """Prompt-weighting syntax around some words: (word:1.3), ((word)), [word]."""
    words = text.split()
    out = []
    for word in words:
        roll = rng.random()
        if roll < 0.12:
            out.append(f"({word}:{rng.choice(('0.8', '1.1', '1.2', '1.3', '1.5'))})")
        elif roll < 0.2:
            out.append(f"(({word}))")
        elif roll < 0.25:
            out.append(f"[{word}]")
        else:
            out.append(word)
    return " ".join(out)


def case_noise(text: str, rng: random.Random, filler: Sequence[str]) -> str:
    """Shouting, random capitals, or no capitals at all."""
    roll = rng.random()
    if roll < 0.3:
        return text.upper()
    if roll < 0.5:
        return text.lower()
    return "".join(c.upper() if rng.random() < 0.3 else c for c in text)


def soup(text: str, rng: random.Random, filler: Sequence[str]) -> str:
    """A token soup: the prompt's words, partly shuffled, interleaved with as many junk tokens again."""
    words = text.split()
    if rng.random() < 0.6:
        rng.shuffle(words)
    out = []
    for word in words:
        out.append(word)
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            out.append(noise_token(rng, filler))
    return " ".join(out)


_TAG_SET = frozenset(STYLE_TAGS)
_ARTIST = re.compile(r"^(?:(?:art|painting|photo|photograph|illustration)\s+)?by\s+\S+(?:\s+\S+){0,2}$", re.IGNORECASE)
_QUALITY = re.compile(
    r"^(?:\d+k|\d+\s?mm|f/\d.*|hd|uhd|hdr|4k|8k|16k|trending on \S+|featured on \S+|\S+ render|octane|"
    r"unreal engine.*|artstation.*|cinematic.*|highly detailed|detailed|intricate.*|sharp focus|smooth|elegant|"
    r"masterpiece|best quality|high quality|award.winning.*|concept art|digital (?:art|painting)|illustration)$",
    re.IGNORECASE,
)


def strip_tags(text: str, rng: random.Random | None = None, filler: Sequence[str] = ()) -> str:
    """The prompt without its style tags: comma-separated parts that are a known tag, "by <artist>", or a
    quality/render/camera tag. Unsafe prompts scraped from prompt sites nearly all carry such tags and
    captions nearly never do; taking them off unsafe prompts (and putting them on benign ones) keeps the
    head from learning "style tags = unsafe"."""
    parts = [p.strip() for p in re.split(r"[,|]", text)]
    kept = [p for p in parts if p and p.lower() not in _TAG_SET and not _ARTIST.match(p) and not _QUALITY.match(p)]
    return ", ".join(kept) if kept else text


TRANSFORMS: dict[str, Callable[[str, random.Random, Sequence[str]], str]] = {
    "append_noise": append_noise,
    "style_tags": style_tags,
    "glue": glue,
    "mojibake": mojibake,
    "markers": markers,
    "weights": weights,
    "case": case_noise,
    "soup": soup,
}


def noisy(text: str, rng: random.Random, filler: Sequence[str]) -> str:
    """One noisy variant: one to three transformations, drawn at random."""
    for name in rng.sample(sorted(TRANSFORMS), rng.choice((1, 1, 2, 2, 3))):
        text = TRANSFORMS[name](text, rng, filler)
    return text


def bury(fragment: str, rng: random.Random, filler: Sequence[str]) -> str:
    """`fragment` somewhere inside 5-40 junk and filler tokens (a synthetic adversarial soup)."""
    before = [noise_token(rng, filler) for _ in range(rng.randint(0, 20))]
    after = [noise_token(rng, filler) for _ in range(rng.randint(5 if not before else 0, 20))]
    return " ".join([*before, fragment, *after])


def fragment_around(text: str, span: tuple[int, int], rng: random.Random) -> str:
    """The words of `text` covering `span`, with up to three words of context on each side."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    inside = [i for i, (s, e) in enumerate(words) if s < span[1] and e > span[0]]
    if not inside:
        return text[span[0] : span[1]]
    first = max(0, inside[0] - rng.randint(0, 3))
    last = min(len(words) - 1, inside[-1] + rng.randint(0, 3))
    return text[words[first][0] : words[last][1]]
