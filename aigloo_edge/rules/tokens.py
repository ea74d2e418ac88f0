"""The tokenizer of rule expressions (see `aigloo_edge.rules.expr` for the language).

Tokens are produced lazily so the first mistake in the text is the one reported. A number token
carries its unit: `90 °F`, `150W` and `5min` are each one token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Final

from aigloo_edge.errors import AiglooError
from aigloo_edge.rules.units import LITERAL_UNITS, NUMBER, Unit

KEYWORDS: Final = frozenset({"and", "or", "not", "true", "false"})
# Longest first, so `<=` is not read as `<` then `=`.
SYMBOLS: Final = ("<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "(", ")", ",")
# Operators from other languages, each with the advice the rule author needs.
_MISTAKES: Final = {
    "&&": "use 'and' instead of '&&'",
    "||": "use 'or' instead of '||'",
    "&": "use 'and' instead of '&'",
    "|": "use 'or' instead of '|'",
    "=": "use '==' to compare",
    "!": "use 'not' instead of '!'",
}
_NUMBER: Final = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_UNIT: Final = re.compile(r"°?[A-Za-z_][A-Za-z0-9_]*|%|°")


class ExprError(AiglooError):
    """An expression that cannot be compiled; `offset` is the 0-based index of the culprit."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class Kind(Enum):
    NUMBER = "number"
    STRING = "string"
    NAME = "name"
    KEYWORD = "keyword"
    SYMBOL = "symbol"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    """One token; `text` is as written (a number's includes its unit)."""

    kind: Kind
    text: str
    offset: int
    number: float = 0.0
    unit: Unit = NUMBER

    def is_(self, kind: Kind, *texts: str) -> bool:
        return self.kind is kind and (not texts or self.text in texts)


def tokenize(text: str) -> Iterator[Token]:
    """The tokens of `text`, then END forever."""
    pos = _skip_space(text, 0)
    while pos < len(text):
        token = _token_at(text, pos)
        yield token
        pos = _skip_space(text, token.offset + len(token.text))
    end = Token(Kind.END, "", len(text))
    while True:
        yield end


def keyword_hint(word: str) -> str:
    """Advice for `AND`, `True` and friends, which are names, not keywords."""
    lower = word.lower()
    return f" (keywords are lowercase: '{lower}')" if lower in KEYWORDS and lower != word else ""


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _token_at(text: str, pos: int) -> Token:
    if number := _NUMBER.match(text, pos):
        return _number(text, number)
    if name := _NAME.match(text, pos):
        return Token(Kind.KEYWORD if name[0] in KEYWORDS else Kind.NAME, name[0], pos)
    if text[pos] in "\"'":
        return _string(text, pos)
    symbol = next((s for s in SYMBOLS if text.startswith(s, pos)), None)
    if symbol is not None:
        return Token(Kind.SYMBOL, symbol, pos)
    for wrong, advice in _MISTAKES.items():
        if text.startswith(wrong, pos):
            raise ExprError(advice, pos)
    raise ExprError(f"unexpected character '{text[pos]}'", pos)


def _string(text: str, start: int) -> Token:
    end = text.find(text[start], start + 1)
    if end < 0:
        raise ExprError("unterminated string", start)
    return Token(Kind.STRING, text[start : end + 1], start)


def _number(text: str, number: re.Match[str]) -> Token:
    value = float(number[0])
    unit = _UNIT.match(text, _skip_space(text, number.end()))
    if unit is None or not _is_unit(text, number.end(), unit):
        return Token(Kind.NUMBER, number[0], number.start(), value)
    known = LITERAL_UNITS.get(unit[0])
    if known is None:
        units = ", ".join(LITERAL_UNITS)
        raise ExprError(f"unknown unit '{unit[0]}' (units: {units})", unit.start())
    return Token(Kind.NUMBER, text[number.start() : unit.end()], number.start(), value, known)


def _is_unit(text: str, number_end: int, word: re.Match[str]) -> bool:
    """Whether the word after a number is its unit.

    A known unit is (`90F`, `90 F`), and so is any other word (`90kph`, `90 kph`: an unknown
    unit) except a keyword (`90 and`), or after a space a signal (`90 env.x`) or call (`90 abs(`).
    """
    if word[0].lower() in KEYWORDS:
        return False
    if word.start() == number_end or word[0] in LITERAL_UNITS:
        return True
    return text[word.end() : word.end() + 1] not in (".", "(")
