"""A small Snowflake SQL tokenizer and token cursor for the statements emulated locally.

Handles `'...'` strings (with `''` and backslash escapes), `$$...$$` strings, `"quoted"`
identifiers (with `""`), `--`, `//` and `/* */` comments, numbers, words and punctuation.
Every token keeps its offsets, so callers can slice raw SQL (alert conditions, task bodies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class SqlSyntaxError(Exception):
    """The statement could not be parsed. The message never repeats string literals."""


@dataclass(frozen=True)
class Token:
    kind: str  # word, qident, string, number, punct, param
    value: str  # words upper-cased; strings and quoted identifiers unescaped
    raw: str
    start: int
    end: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and (not words or self.value in words)

    def is_punct(self, *puncts: str) -> bool:
        return self.kind == "punct" and (not puncts or self.value in puncts)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0", "'": "'", '"': '"', "\\": "\\"}
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def tokenize(sql: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i) or sql.startswith("//", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise SqlSyntaxError("unterminated comment")
            i = j + 2
        elif sql.startswith("$$", i):
            j = sql.find("$$", i + 2)
            if j < 0:
                raise SqlSyntaxError("unterminated $$ string")
            tokens.append(Token("string", sql[i + 2 : j], sql[i : j + 2], i, j + 2))
            i = j + 2
        elif c == "'":
            out: list[str] = []
            j = i + 1
            while True:
                if j >= n:
                    raise SqlSyntaxError("unterminated string literal")
                ch = sql[j]
                if ch == "\\" and j + 1 < n:
                    out.append(_ESCAPES.get(sql[j + 1], sql[j + 1]))
                    j += 2
                elif ch == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        out.append("'")
                        j += 2
                    else:
                        break
                else:
                    out.append(ch)
                    j += 1
            tokens.append(Token("string", "".join(out), sql[i : j + 1], i, j + 1))
            i = j + 1
        elif c == '"':
            out = []
            j = i + 1
            while True:
                if j >= n:
                    raise SqlSyntaxError("unterminated quoted identifier")
                if sql[j] == '"':
                    if j + 1 < n and sql[j + 1] == '"':
                        out.append('"')
                        j += 2
                        continue
                    break
                out.append(sql[j])
                j += 1
            tokens.append(Token("qident", "".join(out), sql[i : j + 1], i, j + 1))
            i = j + 1
        elif c.isdigit() or (c == "." and i + 1 < n and sql[i + 1].isdigit()):
            m = _NUMBER.match(sql, i)
            assert m
            tokens.append(Token("number", m.group(0), m.group(0), i, m.end()))
            i = m.end()
        elif m := _WORD.match(sql, i):
            tokens.append(Token("word", m.group(0).upper(), m.group(0), i, m.end()))
            i = m.end()
        elif c == "?":
            tokens.append(Token("param", "?", "?", i, i + 1))
            i += 1
        else:
            two = sql[i : i + 2]
            if two in ("=>", "::", "<=", ">=", "<>", "!=", "||"):
                tokens.append(Token("punct", two, two, i, i + 2))
                i += 2
            else:
                tokens.append(Token("punct", c, c, i, i + 1))
                i += 1
    return tokens


def strip_statement(tokens: list[Token]) -> list[Token]:
    """Drop trailing semicolons."""
    while tokens and tokens[-1].is_punct(";"):
        tokens = tokens[:-1]
    return tokens


@dataclass(frozen=True)
class Ident:
    """One identifier part: unquoted ones compare upper-cased, quoted ones as written."""

    value: str
    quoted: bool

    @property
    def normal(self) -> str:
        return self.value if self.quoted else self.value.upper()


class Cursor:
    """Walks a token list; `expect_*` raise SqlSyntaxError, `accept_*` return None/False."""

    def __init__(self, tokens: list[Token], sql: str):
        self.tokens = tokens
        self.sql = sql
        self.pos = 0

    # -- inspection
    def peek(self, offset: int = 0) -> Token | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise SqlSyntaxError("unexpected end of statement")
        self.pos += 1
        return tok

    def error(self, expected: str) -> SqlSyntaxError:
        tok = self.peek()
        if tok is None:
            return SqlSyntaxError(f"expected {expected} but the statement ended")
        shown = "<string>" if tok.kind == "string" else tok.raw[:40]
        return SqlSyntaxError(f"expected {expected} at position {tok.start}, found {shown}")

    # -- words
    def accept_word(self, *words: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok.is_word(*words):
            self.pos += 1
            return tok.value
        return None

    def accept_words(self, *words: str) -> bool:
        """Accept an exact sequence of words, or nothing."""
        for k, w in enumerate(words):
            tok = self.peek(k)
            if tok is None or not tok.is_word(w):
                return False
        self.pos += len(words)
        return True

    def expect_word(self, *words: str) -> str:
        value = self.accept_word(*words)
        if value is None:
            raise self.error(" or ".join(words) if words else "a keyword")
        return value

    def expect_words(self, *words: str) -> None:
        if not self.accept_words(*words):
            raise self.error(" ".join(words))

    # -- punctuation
    def accept_punct(self, p: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.is_punct(p):
            self.pos += 1
            return True
        return False

    def expect_punct(self, p: str) -> None:
        if not self.accept_punct(p):
            raise self.error(f"'{p}'")

    # -- values
    def expect_string(self) -> str:
        tok = self.peek()
        if tok is None or tok.kind != "string":
            raise self.error("a string literal")
        self.pos += 1
        return tok.value

    def expect_ident(self) -> Ident:
        tok = self.peek()
        if tok is None or tok.kind not in ("word", "qident"):
            raise self.error("an identifier")
        self.pos += 1
        return Ident(tok.raw if tok.kind == "word" else tok.value, tok.kind == "qident")

    def expect_name(self) -> list[Ident]:
        """A possibly qualified name: a, a.b or a.b.c."""
        parts = [self.expect_ident()]
        while self.accept_punct("."):
            parts.append(self.expect_ident())
        if len(parts) > 3:
            raise SqlSyntaxError("a name has at most three parts")
        return parts

    def accept_if_not_exists(self) -> bool:
        return self.accept_words("IF", "NOT", "EXISTS")

    def accept_if_exists(self) -> bool:
        return self.accept_words("IF", "EXISTS")

    def balanced_token_range(self) -> tuple[int, int]:
        """Consume `( ... )`; return the index range [first, closing paren) of the tokens inside."""
        self.expect_punct("(")
        start = self.pos
        depth = 1
        while True:
            tok = self.next()
            if tok.is_punct("("):
                depth += 1
            elif tok.is_punct(")"):
                depth -= 1
                if depth == 0:
                    return start, self.pos - 1

    def balanced_group(self) -> tuple[int, int]:
        """Consume `( ... )`; return the offsets of the text inside the parentheses."""
        first, closing = self.balanced_token_range()
        return self.tokens[first - 1].end, self.tokens[closing].start

    def rest_text(self) -> str:
        """The raw SQL from the current token to the end; consumes everything."""
        if self.at_end():
            return ""
        start = self.tokens[self.pos].start
        self.pos = len(self.tokens)
        return self.sql[start:].strip().rstrip(";").strip()

    def split_top_level(self, start: int, end: int) -> list[list[Token]]:
        """The tokens between indexes start and end, split on top-level commas."""
        groups: list[list[Token]] = [[]]
        depth = 0
        for tok in self.tokens[start:end]:
            if tok.is_punct("(", "["):
                depth += 1
            elif tok.is_punct(")", "]"):
                depth -= 1
            if depth == 0 and tok.is_punct(","):
                groups.append([])
            else:
                groups[-1].append(tok)
        return [g for g in groups if g]
