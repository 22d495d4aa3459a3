"""Parse the Snowflake statements that the local Snowflake emulates itself.

`parse(sql)` returns one of the dataclasses below, or None for anything that goes on to
fakesnow unchanged. Error messages never quote string literals, so a malformed
`CREATE SECRET` cannot leak its value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dbt_atomic_local.snowflake.sqltokens import Cursor, Ident, SqlSyntaxError, Token, strip_statement, tokenize

Name = tuple[Ident, ...]


@dataclass(frozen=True)
class Pair:
    """`'alias' = secret_name` inside SECRETS = (...)."""

    key: str
    name: Name


PropValue = Any  # str (string literal or number), bool, Name, list of those or of Pair


@dataclass
class CreateObject:
    """CREATE NETWORK RULE / SECRET / EXTERNAL ACCESS INTEGRATION."""

    kind: str  # NETWORK RULE, SECRET, INTEGRATION
    name: Name
    or_replace: bool
    if_not_exists: bool
    props: dict[str, PropValue]


@dataclass
class AlterObject:
    kind: str
    name: Name
    if_exists: bool
    action: str  # SET, UNSET, RESUME, SUSPEND
    props: dict[str, PropValue] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)


@dataclass
class DropObject:
    kind: str
    name: Name
    if_exists: bool


@dataclass
class ShowObjects:
    kind: str  # NETWORK RULES, SECRETS, INTEGRATIONS, EXTERNAL ACCESS INTEGRATIONS, PROCEDURES, ALERTS, TASKS
    like: str | None
    scope: str | None  # ACCOUNT, DATABASE, SCHEMA
    scope_name: Name | None
    starts_with: str | None = None
    limit: int | None = None


@dataclass
class ShowGrants:
    on_kind: str | None = None  # None with on_name: a table or view
    on_name: Name | None = None
    on_account: bool = False
    to_kind: str | None = None
    to_name: str | None = None
    of_role: str | None = None


@dataclass
class DescribeObject:
    kind: str
    name: Name


@dataclass
class ProcArg:
    name: str
    type: str
    default_sql: str | None  # raw SQL of the DEFAULT expression
    default_tokens: list[Token] | None = None


@dataclass
class CreateProcedure:
    name: Name
    or_replace: bool
    if_not_exists: bool
    args: list[ProcArg]
    returns: str
    language: str
    runtime_version: str | None
    packages: list[str]
    imports: list[str]
    handler: str | None
    integrations: list[Name]
    secrets: list[Pair]
    execute_as: str
    comment: str | None
    body: str


@dataclass
class CallArg:
    name: str | None  # for `arg => value`
    tokens: list[Token]
    sql: str


@dataclass
class Call:
    name: Name
    args: list[CallArg]


@dataclass
class CreateAlert:
    name: Name
    or_replace: bool
    if_not_exists: bool
    props: dict[str, PropValue]
    condition: str  # the query inside IF (EXISTS (...))
    action: str


@dataclass
class CreateTask:
    name: Name
    or_replace: bool
    if_not_exists: bool
    props: dict[str, PropValue]
    after: list[Name]
    when: str | None
    body: str


@dataclass
class Execute:
    kind: str  # ALERT or TASK
    name: Name


@dataclass
class Grant:
    revoke: bool
    privileges: list[str]
    on_kind: str  # TABLE, SCHEMA, SECRET, ..., ACCOUNT, ROLE; "" when the kind was not given
    on_name: Name | None
    on_args: list[str] | None  # procedure argument types
    bulk: str | None  # e.g. "ALL TABLES IN SCHEMA" / "FUTURE TABLES IN SCHEMA"
    grantee_kind: str
    grantees: list[str]
    grant_option: bool


Statement = (
    CreateObject
    | AlterObject
    | DropObject
    | ShowObjects
    | ShowGrants
    | DescribeObject
    | CreateProcedure
    | Call
    | CreateAlert
    | CreateTask
    | Execute
    | Grant
)

# multi-word object kinds, longest first, mapped to the catalog's kind
_KINDS: list[tuple[tuple[str, ...], str]] = [
    (("EXTERNAL", "ACCESS", "INTEGRATION"), "INTEGRATION"),
    (("NETWORK", "RULE"), "NETWORK RULE"),
    (("INTEGRATION",), "INTEGRATION"),
    (("SECRET",), "SECRET"),
    (("PROCEDURE",), "PROCEDURE"),
    (("ALERT",), "ALERT"),
    (("TASK",), "TASK"),
]

_SHOW_KINDS: list[tuple[tuple[str, ...], str]] = [
    (("EXTERNAL", "ACCESS", "INTEGRATIONS"), "EXTERNAL ACCESS INTEGRATIONS"),
    (("NETWORK", "RULES"), "NETWORK RULES"),
    (("INTEGRATIONS",), "INTEGRATIONS"),
    (("SECRETS",), "SECRETS"),
    (("USER", "PROCEDURES"), "PROCEDURES"),
    (("PROCEDURES",), "PROCEDURES"),
    (("ALERTS",), "ALERTS"),
    (("TASKS",), "TASKS"),
]

_SENSITIVE = re.compile(r"\b(SECRET|SECRET_STRING|PASSWORD|OAUTH_REFRESH_TOKEN)\b", re.IGNORECASE)


def is_sensitive(sql: str) -> bool:
    """True for statements that may carry a secret value: never log or forward them."""
    head = re.sub(r"^(\s|--[^\n]*\n|/\*.*?\*/)*", "", sql, flags=re.DOTALL)[:12].upper()
    return head.startswith(("CREATE", "ALTER")) and bool(_SENSITIVE.search(sql))


def describe_for_log(sql: str) -> str:
    """A log-safe summary: sensitive statements are reduced to their leading keywords and name."""
    if not is_sensitive(sql):
        return sql
    try:
        tokens = tokenize(sql)
    except SqlSyntaxError:
        return "<statement with a secret value>"
    words = []
    for tok in tokens:
        if tok.kind == "string" or tok.is_punct("=", "("):
            break
        words.append(tok.raw)
    return " ".join(words[:8]) + " ... <values hidden>"


def _accept_kind(cur: Cursor, kinds: list[tuple[tuple[str, ...], str]]) -> str | None:
    for words, kind in kinds:
        if cur.accept_words(*words):
            return kind
    return None


def parse(sql: str) -> Statement | None:
    """Parse sql if it is an emulated statement; None means "not ours"."""
    try:
        tokens = strip_statement(tokenize(sql))
    except SqlSyntaxError:
        if is_sensitive(sql):
            raise
        return None
    if not tokens:
        return None
    cur = Cursor(tokens, sql)
    first = tokens[0]
    if not first.is_word():
        return None
    head = first.value
    if head == "CREATE":
        return _parse_create(cur)
    if head == "ALTER":
        return _parse_alter(cur)
    if head == "DROP":
        return _parse_drop(cur)
    if head == "SHOW":
        return _parse_show(cur)
    if head in ("DESC", "DESCRIBE"):
        return _parse_describe(cur)
    if head == "CALL":
        cur.next()
        return _parse_call(cur)
    if head == "EXECUTE":
        cur.next()
        kind = cur.accept_word("ALERT", "TASK")
        if kind is None:
            return None
        name = cur.expect_name()
        _expect_end(cur)
        return Execute(kind, tuple(name))
    if head in ("GRANT", "REVOKE"):
        return _parse_grant(cur)
    return None


def _expect_end(cur: Cursor) -> None:
    if not cur.at_end():
        raise cur.error("the end of the statement")


# ---------------------------------------------------------------- properties


def _parse_value(cur: Cursor) -> PropValue:
    tok = cur.peek()
    if tok is None:
        raise cur.error("a value")
    if tok.kind == "string":
        cur.next()
        return tok.value
    if tok.kind == "number":
        cur.next()
        return tok.value
    if tok.is_punct("-") and (nxt := cur.peek(1)) is not None and nxt.kind == "number":
        cur.next()
        cur.next()
        return "-" + nxt.value
    if tok.is_word("TRUE", "FALSE"):
        cur.next()
        return tok.value == "TRUE"
    if tok.is_punct("("):
        cur.next()
        items: list[PropValue] = []
        while not cur.accept_punct(")"):
            item = cur.peek()
            if item is not None and item.kind == "string" and (eq := cur.peek(1)) is not None and eq.is_punct("="):
                cur.next()
                cur.next()
                items.append(Pair(item.value, tuple(cur.expect_name())))
            else:
                items.append(_parse_value(cur))
            if not cur.accept_punct(","):
                cur.expect_punct(")")
                break
        return items
    if tok.kind in ("word", "qident"):
        return tuple(cur.expect_name())
    raise cur.error("a value")


def _parse_props(cur: Cursor, stop_words: tuple[str, ...] = ()) -> dict[str, PropValue]:
    """`KEY = value` pairs until the end or one of stop_words."""
    props: dict[str, PropValue] = {}
    while not cur.at_end():
        tok = cur.peek()
        assert tok is not None
        if tok.is_word(*stop_words) and stop_words:
            break
        eq = cur.peek(1)
        if not (tok.is_word() and eq is not None and eq.is_punct("=")):
            raise cur.error("KEY = value")
        cur.next()
        cur.next()
        props[tok.value] = _parse_value(cur)
    return props


# ---------------------------------------------------------------- CREATE


def _parse_create(cur: Cursor) -> Statement | None:
    cur.expect_word("CREATE")
    or_replace = cur.accept_words("OR", "REPLACE")
    cur.accept_word("SECURE")
    kind = _accept_kind(cur, _KINDS)
    if kind is None:
        return None
    if_not_exists = cur.accept_if_not_exists()
    name = tuple(cur.expect_name())
    if kind in ("NETWORK RULE", "SECRET", "INTEGRATION"):
        props = _parse_props(cur)
        return CreateObject(kind, name, or_replace, if_not_exists, props)
    if kind == "PROCEDURE":
        return _parse_create_procedure(cur, name, or_replace, if_not_exists)
    if kind == "ALERT":
        props = _parse_props(cur, stop_words=("IF",))
        cur.expect_word("IF")
        cur.expect_punct("(")
        cur.expect_word("EXISTS")
        start, end = cur.balanced_group()
        cur.expect_punct(")")
        cur.expect_word("THEN")
        action = cur.rest_text()
        if not action:
            raise SqlSyntaxError("an alert needs an action after THEN")
        return CreateAlert(name, or_replace, if_not_exists, props, cur.sql[start:end].strip(), action)
    # TASK
    props = {}
    after: list[Name] = []
    when: str | None = None
    while True:
        if cur.accept_word("AFTER"):
            after.append(tuple(cur.expect_name()))
            while cur.accept_punct(","):
                after.append(tuple(cur.expect_name()))
        elif cur.accept_word("WHEN"):
            start_tok = cur.peek()
            if start_tok is None:
                raise cur.error("a condition")
            depth = 0
            while True:
                tok = cur.peek()
                if tok is None:
                    raise cur.error("AS")
                if depth == 0 and tok.is_word("AS"):
                    break
                depth += tok.is_punct("(") - tok.is_punct(")")
                cur.next()
            when = cur.sql[start_tok.start : cur.tokens[cur.pos - 1].end].strip()
        elif cur.accept_word("AS"):
            break
        else:
            props.update(_parse_props_one(cur))
    body = cur.rest_text()
    if not body:
        raise SqlSyntaxError("a task needs a statement after AS")
    return CreateTask(name, or_replace, if_not_exists, props, after, when, body)


def _parse_props_one(cur: Cursor) -> dict[str, PropValue]:
    tok = cur.peek()
    eq = cur.peek(1)
    if not (tok is not None and tok.is_word() and eq is not None and eq.is_punct("=")):
        raise cur.error("KEY = value")
    cur.next()
    cur.next()
    return {tok.value: _parse_value(cur)}


def _text(cur: Cursor, tokens: list[Token]) -> str:
    return cur.sql[tokens[0].start : tokens[-1].end].strip() if tokens else ""


def _parse_type(cur: Cursor) -> str:
    """A data type: words, an optional (precision) or TABLE (columns) group, NOT NULL."""
    start = cur.peek()
    if start is None:
        raise cur.error("a type")
    cur.expect_word()
    while (tok := cur.peek()) is not None and tok.is_word("PRECISION", "VARYING"):
        cur.next()
    if (tok := cur.peek()) is not None and tok.is_punct("("):
        cur.balanced_token_range()
    end = cur.tokens[cur.pos - 1].end
    if cur.accept_words("NOT", "NULL"):
        pass
    return re.sub(r"\s+", " ", cur.sql[start.start : end]).upper()


def _parse_create_procedure(cur: Cursor, name: Name, or_replace: bool, if_not_exists: bool) -> CreateProcedure:
    start, end = cur.balanced_token_range()
    args: list[ProcArg] = []
    for group in cur.split_top_level(start, end):
        arg_name = group[0]
        if arg_name.kind not in ("word", "qident"):
            raise SqlSyntaxError("expected an argument name")
        default_at = next((i for i, t in enumerate(group) if t.is_word("DEFAULT")), None)
        type_tokens = group[1:default_at] if default_at is not None else group[1:]
        if not type_tokens:
            raise SqlSyntaxError(f"argument {arg_name.raw} has no type")
        default_tokens = group[default_at + 1 :] if default_at is not None else None
        if default_tokens is not None and not default_tokens:
            raise SqlSyntaxError(f"argument {arg_name.raw} has an empty DEFAULT")
        args.append(
            ProcArg(
                name=arg_name.value if arg_name.kind == "qident" else arg_name.value.upper(),
                type=re.sub(r"\s+", " ", _text(cur, type_tokens)).upper(),
                default_sql=_text(cur, default_tokens) if default_tokens else None,
                default_tokens=default_tokens,
            )
        )
    proc: dict[str, Any] = {
        "returns": None,
        "language": "SQL",
        "runtime_version": None,
        "packages": [],
        "imports": [],
        "handler": None,
        "integrations": [],
        "secrets": [],
        "execute_as": "OWNER",
        "comment": None,
    }
    body: str | None = None
    while not cur.at_end():
        if cur.accept_word("RETURNS"):
            if cur.accept_words("NULL", "ON", "NULL", "INPUT"):
                continue
            proc["returns"] = _parse_type(cur)
        elif cur.accept_word("LANGUAGE"):
            proc["language"] = cur.expect_word()
        elif cur.accept_words("EXECUTE", "AS"):
            if cur.accept_words("RESTRICTED", "CALLER"):
                proc["execute_as"] = "RESTRICTED CALLER"
            else:
                proc["execute_as"] = cur.expect_word("OWNER", "CALLER")
        elif cur.accept_words("CALLED", "ON", "NULL", "INPUT") or cur.accept_word("STRICT", "VOLATILE", "IMMUTABLE"):
            continue
        elif cur.accept_words("COPY", "GRANTS"):
            continue
        elif cur.accept_word("AS"):
            body = cur.expect_string()
            break
        else:
            for key, value in _parse_props_one(cur).items():
                if key == "RUNTIME_VERSION":
                    proc["runtime_version"] = str(value)
                elif key in ("PACKAGES", "IMPORTS"):
                    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                        raise SqlSyntaxError(f"{key} must be a list of strings")
                    proc[key.lower()] = value
                elif key == "HANDLER":
                    if not isinstance(value, str):
                        raise SqlSyntaxError("HANDLER must be a string")
                    proc["handler"] = value
                elif key == "EXTERNAL_ACCESS_INTEGRATIONS":
                    if not isinstance(value, list) or not all(isinstance(v, tuple) for v in value):
                        raise SqlSyntaxError("EXTERNAL_ACCESS_INTEGRATIONS must be a list of names")
                    proc["integrations"] = value
                elif key == "SECRETS":
                    if not isinstance(value, list) or not all(isinstance(v, Pair) for v in value):
                        raise SqlSyntaxError("SECRETS must be a list of 'alias' = secret_name")
                    proc["secrets"] = value
                elif key == "COMMENT":
                    proc["comment"] = str(value)
                # other properties (ARTIFACT_REPOSITORY, ...) are accepted and ignored
    _expect_end(cur)
    if body is None:
        raise SqlSyntaxError("CREATE PROCEDURE needs AS followed by the body")
    if proc["returns"] is None:
        raise SqlSyntaxError("CREATE PROCEDURE needs RETURNS <type>")
    return CreateProcedure(name=name, or_replace=or_replace, if_not_exists=if_not_exists, args=args, body=body, **proc)


# ---------------------------------------------------------------- ALTER / DROP / DESCRIBE


def _parse_alter(cur: Cursor) -> Statement | None:
    cur.expect_word("ALTER")
    kind = _accept_kind(cur, _KINDS)
    if kind is None or kind == "PROCEDURE":
        return None
    if_exists = cur.accept_if_exists()
    name = tuple(cur.expect_name())
    if kind in ("ALERT", "TASK") and (action := cur.accept_word("RESUME", "SUSPEND")):
        _expect_end(cur)
        return AlterObject(kind, name, if_exists, action)
    if cur.accept_word("SET"):
        return AlterObject(kind, name, if_exists, "SET", props=_parse_props(cur))
    if cur.accept_word("UNSET"):
        keys = [cur.expect_word()]
        while cur.accept_punct(","):
            keys.append(cur.expect_word())
        _expect_end(cur)
        return AlterObject(kind, name, if_exists, "UNSET", unset=keys)
    raise cur.error("SET, UNSET, RESUME or SUSPEND")


def _skip_arg_types(cur: Cursor) -> None:
    if (tok := cur.peek()) is not None and tok.is_punct("("):
        cur.balanced_token_range()


def _parse_drop(cur: Cursor) -> Statement | None:
    cur.expect_word("DROP")
    kind = _accept_kind(cur, _KINDS)
    if kind is None:
        return None
    if_exists = cur.accept_if_exists()
    name = tuple(cur.expect_name())
    if kind == "PROCEDURE":
        _skip_arg_types(cur)  # overloads are not emulated: the name identifies the procedure
    _expect_end(cur)
    return DropObject(kind, name, if_exists)


def _parse_describe(cur: Cursor) -> Statement | None:
    cur.next()
    kind = _accept_kind(cur, _KINDS)
    if kind is None:
        return None
    name = tuple(cur.expect_name())
    if kind == "PROCEDURE":
        _skip_arg_types(cur)
    _expect_end(cur)
    return DescribeObject(kind, name)


# ---------------------------------------------------------------- SHOW


def _parse_show(cur: Cursor) -> Statement | None:
    cur.expect_word("SHOW")
    cur.accept_word("TERSE")
    if cur.accept_word("GRANTS"):
        return _parse_show_grants(cur)
    kind = _accept_kind(cur, _SHOW_KINDS)
    if kind is None:
        return None
    show = ShowObjects(kind, None, None, None)
    while not cur.at_end():
        if cur.accept_word("LIKE"):
            show.like = cur.expect_string()
        elif cur.accept_word("IN"):
            if cur.accept_word("ACCOUNT"):
                show.scope = "ACCOUNT"
            else:
                scope = cur.accept_word("DATABASE", "SCHEMA")
                show.scope = scope or "SCHEMA"
                if not cur.at_end() and (tok := cur.peek()) is not None and not tok.is_word("LIKE", "STARTS", "LIMIT"):
                    show.scope_name = tuple(cur.expect_name())
        elif cur.accept_words("STARTS", "WITH"):
            show.starts_with = cur.expect_string()
        elif cur.accept_word("LIMIT"):
            tok = cur.next()
            if tok.kind != "number":
                raise SqlSyntaxError("LIMIT needs a number")
            show.limit = int(tok.value)
            if cur.accept_word("FROM"):
                cur.expect_string()
        else:
            raise cur.error("LIKE, IN, STARTS WITH or LIMIT")
    return show


def _parse_show_grants(cur: Cursor) -> ShowGrants:
    show = ShowGrants()
    if cur.at_end():
        return show
    if cur.accept_word("ON"):
        if cur.accept_word("ACCOUNT"):
            show.on_account = True
        else:
            kind_words, name = _split_kind_and_name(cur, list(range(cur.pos, len(cur.tokens))))
            show.on_kind = kind_words or None
            show.on_name = name
            cur.pos = len(cur.tokens)
    elif cur.accept_word("TO"):
        show.to_kind = cur.expect_word("ROLE", "USER", "SHARE", "APPLICATION")
        show.to_name = cur.expect_ident().normal
    elif cur.accept_word("OF"):
        cur.expect_word("ROLE")
        show.of_role = cur.expect_ident().normal
    _expect_end(cur)
    return show


# ---------------------------------------------------------------- CALL


def _parse_call(cur: Cursor) -> Call:
    name = tuple(cur.expect_name())
    start, end = cur.balanced_token_range()
    _expect_end(cur)
    args: list[CallArg] = []
    for group in cur.split_top_level(start, end):
        arg_name = None
        if len(group) > 2 and group[1].is_punct("=>") and group[0].kind in ("word", "qident"):
            arg_name = group[0].value if group[0].kind == "qident" else group[0].value.upper()
            group = group[2:]
        args.append(CallArg(arg_name, group, _text(cur, group)))
    return Call(name, args)


# ---------------------------------------------------------------- GRANT / REVOKE


def _split_kind_and_name(cur: Cursor, indexes: list[int]) -> tuple[str, Name | None]:
    """Split `<kind words> <name>[(types)]` tokens into the kind and the name."""
    toks = [cur.tokens[i] for i in indexes]
    # drop a trailing (types) group
    if toks and toks[-1].is_punct(")"):
        depth = 0
        for k in range(len(toks) - 1, -1, -1):
            depth += toks[k].is_punct(")") - toks[k].is_punct("(")
            if depth == 0:
                toks = toks[:k]
                break
    # the name: ident (. ident)* from the end
    k = len(toks) - 1
    if k < 0:
        return "", None
    name_start = k
    while (
        name_start - 2 >= 0 and toks[name_start - 1].is_punct(".") and toks[name_start - 2].kind in ("word", "qident")
    ):
        name_start -= 2
    kind_toks = toks[:name_start]
    # a lone kind word such as ACCOUNT has no name
    if not kind_toks and toks[name_start].is_word("ACCOUNT"):
        return "ACCOUNT", None
    parts = [
        Ident(t.raw if t.kind == "word" else t.value, t.kind == "qident")
        for t in toks[name_start:]
        if not t.is_punct(".")
    ]
    kind = " ".join(t.value for t in kind_toks)
    if kind == "EXTERNAL ACCESS INTEGRATION":
        kind = "INTEGRATION"
    return kind, tuple(parts)


def _parse_grant(cur: Cursor) -> Grant:
    revoke = cur.next().value == "REVOKE"
    grant_option = False
    if revoke and cur.accept_words("GRANT", "OPTION", "FOR"):
        grant_option = True
    # privileges up to ON (or up to TO/FROM for GRANT ROLE)
    end_word = "FROM" if revoke else "TO"
    privileges: list[str] = []
    current: list[str] = []
    while (tok := cur.peek()) is not None and not tok.is_word("ON", end_word):
        cur.next()
        if tok.is_punct(","):
            privileges.append(" ".join(current))
            current = []
        else:
            current.append(tok.value if tok.kind == "word" else tok.raw)
    if current:
        privileges.append(" ".join(current))
    if not privileges:
        raise cur.error("a privilege")
    on_kind, on_name, on_args, bulk = "", None, None, None
    if cur.accept_word("ON"):
        start = cur.pos
        while (tok := cur.peek()) is not None and not tok.is_word(end_word):
            cur.next()
        target = list(range(start, cur.pos))
        first = cur.tokens[start] if target else None
        if first is not None and first.is_word("ALL", "FUTURE"):
            in_at = next(i for i in target if cur.tokens[i].is_word("IN"))
            words = [cur.tokens[i].value for i in range(start, in_at + 2)]
            bulk = " ".join(words)
            on_kind = bulk
            on_name = tuple(
                Ident(t.raw if t.kind == "word" else t.value, t.kind == "qident")
                for t in (cur.tokens[i] for i in range(in_at + 2, cur.pos))
                if not t.is_punct(".")
            )
        else:
            on_kind, on_name = _split_kind_and_name(cur, target)
            if target and cur.tokens[target[-1]].is_punct(")"):
                open_at = max(i for i in target if cur.tokens[i].is_punct("(") and i > start)
                on_args = [_text(cur, g).upper() for g in cur.split_top_level(open_at + 1, target[-1])]
    elif len(privileges) == 1 and privileges[0].startswith(("ROLE ", "DATABASE ROLE ")):
        # GRANT ROLE r TO ROLE x
        on_kind = "ROLE"
        role = privileges[0].split(" ", 1)[1].split(" ")[-1]
        on_name = (Ident(role, False),)
        privileges = ["USAGE"]
    cur.expect_word(end_word)
    grantee_kind = cur.accept_word("ROLE", "USER", "SHARE", "APPLICATION") or "ROLE"
    if grantee_kind == "DATABASE":
        cur.expect_word("ROLE")
    grantees = [cur.expect_ident().normal]
    while cur.accept_punct(","):
        cur.accept_word("ROLE", "USER")
        grantees.append(cur.expect_ident().normal)
    if cur.accept_words("WITH", "GRANT", "OPTION"):
        grant_option = True
    while cur.accept_word("CASCADE", "RESTRICT") or cur.accept_words("COPY", "CURRENT", "GRANTS"):
        pass
    cur.accept_words("REVOKE", "CURRENT", "GRANTS")
    _expect_end(cur)
    return Grant(
        revoke=revoke,
        privileges=[p.upper() for p in privileges],
        on_kind=on_kind,
        on_name=on_name,
        on_args=on_args,
        bulk=bulk,
        grantee_kind=grantee_kind,
        grantees=grantees,
        grant_option=grant_option,
    )
