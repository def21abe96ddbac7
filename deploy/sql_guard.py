"""The query path's gate: a statement runs only if ClickHouse's own parser says it is one read.

ClickHouse does the parsing, twice, on the engine that will run the statement:

1. `formatQuerySingleLine('<text>')` (the text goes in as a string literal, so it cannot be
   executed) refuses several statements ("Multi-statements are not allowed") and anything that
   does not parse, and gives back the one statement in a normal form. That normal form is what
   is checked and what runs: no comment, no second statement, no spelling trick survives it.
2. `EXPLAIN AST <normal form>` gives the parser's tree, one node a line. Explaining parses and
   runs nothing.

The tree is then read strictly (every node's declared children must be there, or the statement
is refused as unreadable: a name with a line break cannot forge nodes) and checked: the root
must be a read (SELECT, WITH … SELECT, SHOW TABLES/COLUMNS/CREATE, DESCRIBE, EXISTS, EXPLAIN of a
SELECT); no INTO OUTFILE, FORMAT or SETTINGS; table functions only from `TABLE_FUNCTIONS`; no
function that reads outside the store (`file`, dictionaries, model files); of the `system`
database only the tables in `SYSTEM_TABLES`. The session the statement runs in is read-only
with fixed limits besides (`deploy.query`): this gate is what readonly does not cover (a scalar
`file()` and `INTO OUTFILE` work under readonly=1 in chDB).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from core.errors import StoreError
from sinks.ddl import READER_SYSTEM_TABLES

#: table functions that only make rows from their arguments (lowercase)
TABLE_FUNCTIONS = frozenset(
    {
        "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "sqlstandardvalues",
        "generateseries", "generate_series", "null", "format",
    }
)  # fmt: skip
SYSTEM_TABLES = frozenset(READER_SYSTEM_TABLES)
#: functions that reach outside the store even as plain expressions (lowercase)
FUNCTIONS = {
    "file": "file() reads a file of the host",
    "catboostevaluate": "catboostEvaluate() loads a model file of the host",
    "naivebayesclassifier": "naiveBayesClassifier() loads a model file of the host",
    "addresstoline": "introspection functions read the server's binary",
    "addresstolinewithinlines": "introspection functions read the server's binary",
    "addresstosymbol": "introspection functions read the server's binary",
    "demangle": "introspection functions read the server's binary",
}
#: dictionaries may read files, URLs or other servers, or run programs, whatever defined them
DICTIONARY_PREFIX = "dict"
#: root nodes of the statements that read
READS = {
    "SelectWithUnionQuery": "SELECT",
    "ShowTables": "SHOW",
    "ShowColumns": "SHOW COLUMNS",
    "ShowIndexes": "SHOW INDEXES",
    "ShowCreateTableQuery": "SHOW CREATE TABLE",
    "ShowCreateViewQuery": "SHOW CREATE VIEW",
    "ShowCreateDatabaseQuery": "SHOW CREATE DATABASE",
    "ExistsTableQuery": "EXISTS",
    "ExistsDatabaseQuery": "EXISTS",
    "ExistsViewQuery": "EXISTS",
    "DescribeQuery": "DESCRIBE",
    "Explain": "EXPLAIN",
}
#: roots whose direct children are all typed nodes, so an Identifier among them is a FORMAT
_TYPED_ROOTS = ("SelectWithUnionQuery", "DescribeQuery", "Explain")
MAX_LENGTH = 100_000
READ_ONLY = "queries here are read-only"
ALLOWED = "SELECT, WITH … SELECT, SHOW, DESCRIBE, EXISTS and EXPLAIN of a SELECT"


class QueryRefused(StoreError):
    """The query path will not run this statement; the message says why."""


@dataclass
class _Node:
    kind: str
    text: str
    depth: int
    declared: int
    children: list[_Node] = field(default_factory=list)

    def walk(self) -> list[_Node]:
        found, todo = [], [self]
        while todo:
            node = todo.pop()
            found.append(node)
            todo.extend(node.children)
        return found


class SqlGuard:
    """Checks statements with the parser of the engine behind `client` (a read-only session)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._table_functions: frozenset[str] | None = None

    def check(self, sql: str) -> str:
        """The statement in ClickHouse's normal form, to run instead of `sql`; `QueryRefused`
        with the reason otherwise."""
        if len(sql) > MAX_LENGTH:
            raise QueryRefused(f"refused: the statement is longer than {MAX_LENGTH:,} characters")
        if "\x00" in sql:
            raise QueryRefused("refused: the statement contains a NUL character")
        statement = self._normal_form(sql)
        tree = self._tree(statement)
        self._check_root(tree, statement)
        for node in tree.walk():
            self._check_node(node)
        return statement

    # -- parsing -------------------------------------------------------------------------------

    def _normal_form(self, sql: str) -> str:
        literal = "'" + sql.replace("\\", "\\\\").replace("'", "\\'") + "'"
        try:
            rows = self._client.query(f"SELECT formatQuerySingleLine({literal})").result_rows
        except ClickHouseError as exc:
            message = _message(exc)
            if "Multi-statements are not allowed" in message:
                raise QueryRefused(
                    "refused: more than one statement (a ';' ends one); send one statement, "
                    f"{READ_ONLY}"
                ) from None
            raise QueryRefused(f"refused: ClickHouse cannot parse it: {message}") from None
        statement = rows[0][0] if rows else ""
        if not statement.strip():
            raise QueryRefused("refused: the text holds no statement")
        return statement

    def _tree(self, statement: str) -> _Node:
        try:
            text = self._client.command(f"EXPLAIN AST {statement}")
        except ClickHouseError as exc:
            if getattr(exc, "code", None) == 164:  # READONLY: it tried to change a setting
                raise QueryRefused(
                    "refused: SETTINGS would change the query path's fixed limits; drop the "
                    "SETTINGS clause"
                ) from None
            raise QueryRefused(f"refused: ClickHouse cannot explain it: {_message(exc)}") from None
        if not isinstance(text, str):
            raise _unreadable()
        return _read_tree(text.split("\n"))

    # -- rules ---------------------------------------------------------------------------------

    def _check_root(self, root: _Node, statement: str) -> None:
        kind = READS.get(root.kind)
        if kind is None:
            words = statement.split(" ", 2)
            word = " ".join(words[:2] if words[0].upper() in ("SHOW", "EXISTS") else words[:1])
            raise QueryRefused(f"refused: {word} is not allowed; {READ_ONLY} ({ALLOWED} only)")
        for child in root.children:
            if child.kind == "Literal":
                raise QueryRefused(f"refused: INTO OUTFILE writes a file; {READ_ONLY}")
            if child.kind == "Set":
                raise QueryRefused(
                    "refused: SETTINGS would change the query path's fixed limits; drop the "
                    "SETTINGS clause"
                )
            if child.kind == "Identifier" and root.kind in _TYPED_ROOTS:
                raise QueryRefused(
                    "refused: FORMAT: the query path answers in a format of its own; drop the "
                    "FORMAT clause"
                )
        if root.kind == "Explain" and [c.kind for c in root.children] != ["SelectWithUnionQuery"]:
            raise QueryRefused(
                "refused: EXPLAIN is allowed of a plain SELECT only (no options, no other "
                "statement)"
            )

    def _check_node(self, node: _Node) -> None:
        if node.kind == "Set":
            raise QueryRefused(
                "refused: SETTINGS would change the query path's fixed limits; drop the "
                "SETTINGS clause"
            )
        if node.kind == "Function":
            name = node.text.split(" ", 1)[0]
            low = name.lower()
            if low in FUNCTIONS:
                raise QueryRefused(f"refused: {FUNCTIONS[low]}; {READ_ONLY} inside the store")
            if low.startswith(DICTIONARY_PREFIX):
                raise QueryRefused(
                    f"refused: {name}() reads a dictionary, whose source may be a file, a URL "
                    f"or a program; {READ_ONLY} inside the store"
                )
            if low in self._known_table_functions() and low not in TABLE_FUNCTIONS:
                raise QueryRefused(
                    f"refused: table function {name}() reaches outside the store; the query "
                    f"path allows {', '.join(sorted(TABLE_FUNCTIONS))}"
                )
        if node.kind in ("Identifier", "TableIdentifier"):
            name = node.text.split(" ", 1)[0].lower()
            database, _, table = name.partition(".")
            if database == "system" and table and table not in SYSTEM_TABLES:
                raise QueryRefused(
                    f"refused: system.{table} is not readable here (it can hold other queries, "
                    f"users or secrets); readable system tables: {', '.join(sorted(SYSTEM_TABLES))}"
                )

    def _known_table_functions(self) -> frozenset[str]:
        """Every table function the engine has, from its own registry (lowercase): a new one
        in a later ClickHouse is refused until someone adds it to `TABLE_FUNCTIONS`."""
        if self._table_functions is None:
            rows = self._client.query("SELECT name FROM system.table_functions").result_rows
            self._table_functions = frozenset(r[0].lower() for r in rows)
        return self._table_functions


def _read_tree(lines: list[str]) -> _Node:
    """The parser's tree from `EXPLAIN AST` lines: depth by indentation, `(children N)` checked
    against the lines that follow, so nothing can be added to it or taken away."""
    root: _Node | None = None
    stack: list[_Node] = []
    for line in lines:
        body = line.lstrip(" ")
        if not body:
            raise _unreadable()
        depth = len(line) - len(body)
        declared = 0
        mark = body.rfind("(children ")
        if body.endswith(")") and mark >= 0 and body[mark + 10 : -1].isdigit():
            declared = int(body[mark + 10 : -1])
            body = body[:mark].rstrip()
        kind, _, text = body.partition(" ")
        node = _Node(kind, text, depth, declared)
        while stack and stack[-1].depth >= depth:
            stack.pop()
        if not stack:
            if root is not None or depth != 0:
                raise _unreadable()
            root = node
        else:
            if depth != stack[-1].depth + 1:
                raise _unreadable()
            stack[-1].children.append(node)
        stack.append(node)
    if root is None or any(len(n.children) != n.declared for n in root.walk()):
        raise _unreadable()
    return root


def _unreadable() -> QueryRefused:
    return QueryRefused(
        "refused: the parser's view of this statement cannot be read unambiguously (a FORMAT "
        "clause, or a name with a line break in it?); rewrite it plainly"
    )


def _message(exc: ClickHouseError) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
