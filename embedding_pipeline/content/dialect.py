"""What SQLite and PostgreSQL write differently in the default queries: JSON built in SQL and a timestamp in
milliseconds, as SQLAlchemy constructs compiled for each. Another database gets a clear error: an operator
gives queries of their own there."""

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

# Their values stay what the driver hands over (JSON text on SQLite, parsed JSON on PostgreSQL): the records'
# digests and payloads are made from those.
_AS_GIVEN = sa.types.NullType()


class json_list(FunctionElement):
    """An aggregate: the group's values as a JSON list, in the order the rows come."""

    type, inherit_cache = _AS_GIVEN, True


class json_object(FunctionElement):
    """A JSON object of (key, value, key, value, ...)."""

    type, inherit_cache = _AS_GIVEN, True


class as_json(FunctionElement):
    """A value passed on as JSON (an array column, a JSON column, a subquery's JSON): SQLite forgets that a
    subquery's column was JSON and would nest it as a string."""

    type, inherit_cache = _AS_GIVEN, True


class epoch_ms(FunctionElement):
    """A timestamp in whole milliseconds since the epoch."""

    type, inherit_cache = sa.BigInteger(), True


_FUNCTIONS = {
    "sqlite": {json_list: "json_group_array", json_object: "json_object", as_json: "json"},
    "postgresql": {json_list: "json_agg", json_object: "json_build_object", as_json: "to_json"},
}


def _compile_function(element, compiler, **kw):
    return f"{_FUNCTIONS[compiler.dialect.name][type(element)]}({compiler.process(element.clauses, **kw)})"


@compiles(epoch_ms, "sqlite")
def _epoch_ms_sqlite(element, compiler, **kw):
    value = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {value}) AS INTEGER) * 1000 + CAST(SUBSTR(strftime('%f', {value}), 4, 3) AS INTEGER))"


@compiles(epoch_ms, "postgresql")
def _epoch_ms_postgresql(element, compiler, **kw):
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) * 1000) AS BIGINT)"


def _no_form(element, compiler, **kw):
    raise sa.exc.CompileError(f"the default queries have no form for {compiler.dialect.name}; give queries of your own")


for _construct in (json_list, json_object, as_json, epoch_ms):
    compiles(_construct)(_no_form)
for _dialect in _FUNCTIONS:
    for _construct in (json_list, json_object, as_json):
        compiles(_construct, _dialect)(_compile_function)


_COMPILED: dict[tuple[int, str], str] = {}


def sql_text(query: str | sa.Select, dialect: sa.Dialect) -> str:
    """A query as SQL text in `dialect`, its parameters written `:name`: a query of one's own as given, a default
    one compiled once per process and dialect (SQLAlchemy would compile it for each engine, and each read opens
    one: 15 ms for the resources query). Text is what a reader wraps in its listing and by-id selects."""
    if isinstance(query, str):
        return query.strip().rstrip(";")
    key = (id(query), dialect.name)
    if key not in _COMPILED:
        compiled = query.compile(dialect=type(dialect)(paramstyle="named"))
        valued = [name for name, bind in compiled.binds.items() if bind.value is not None]
        assert not valued, f"a default query's constants are written into it, not bound: {valued}"
        _COMPILED[key] = str(compiled)
    return _COMPILED[key]
