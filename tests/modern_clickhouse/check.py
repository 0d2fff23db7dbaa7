"""The schema and insert path on a modern ClickHouse (chdb: ClickHouse 26.x in-process).

Applies migrations/*.sql the way the migration runner splits them, inserts rows made by the
real pipeline with the exact settings the Worker's insert sends (including async_insert,
which only modern servers have), and checks the dedup view. Prints 'N passed, N failed'.
Then runs every kind of statement the read side sends (and the batch writer's stored-id lookup)
on those rows.
usage: python check.py <migrations dir> <rows.jsonl> <read statements, one per line>
"""
import hashlib
import os
import re
import sys
import tempfile

import chdb
from chdb import session

migrations, rows_file, read_file = sys.argv[1], sys.argv[2], sys.argv[3]
rows = open(rows_file).read()
results = []


def check(name, fn):
    try:
        fn()
        results.append((name, None))
    except Exception as e:  # report every failure, then exit non-zero
        results.append((name, e))


def statements(sql):
    out, cur = [], []
    for line in sql.splitlines():
        t = line.strip()
        if not t or t.startswith("--"):
            continue
        cur.append(line)
        if t.endswith(";"):
            out.append("\n".join(cur).strip().rstrip(";"))
            cur = []
    if "".join(cur).strip():
        out.append("\n".join(cur).strip())
    return out


s = session.Session(tempfile.mkdtemp())
s.query("CREATE DATABASE IF NOT EXISTS millimetric")
settings = "SETTINGS allow_experimental_low_cardinality_type=1"


def ledger():
    # The migration runner's ledger (core/src/storage/migrations.rs CREATE_LEDGER), read from
    # there so the two never differ: migration 0008 reads when 0007 was applied from it.
    src = open(os.path.join(migrations, "..", "core", "src", "storage", "migrations.rs")).read()
    const = re.search(r'pub const CREATE_LEDGER: &str = "(.*?)";', src, re.S).group(1)
    return re.sub(r"\\\n\s*", "", const)


def apply():
    s.query(f"USE millimetric; {ledger()}")
    for f in sorted(os.listdir(migrations)):
        if f.endswith(".sql"):
            for st in statements(open(os.path.join(migrations, f)).read()):
                s.query(f"USE millimetric; {st}")
            version, name = f[:-4].split("_", 1)
            s.query(f"INSERT INTO millimetric.schema_migrations (version, name, checksum) VALUES ({int(version)}, '{name}', '')")


def insert(async_insert):
    extra = ", async_insert=1, wait_for_async_insert=1" if async_insert else ""
    s.query(f"INSERT INTO millimetric.events SETTINGS input_format_skip_unknown_fields=0{extra} FORMAT JSONEachRow\n{rows}")


def dedup():
    n_rows = len([l for l in rows.splitlines() if l.strip()])
    raw = int(str(s.query("SELECT count() FROM millimetric.events", "CSV")).strip())
    seen = int(str(s.query("SELECT count() FROM millimetric.events_dedup", "CSV")).strip())
    assert raw == 2 * n_rows, f"both inserts landed: {raw}"
    assert seen == n_rows, f"the dedup view shows each event once: {seen} of {n_rows}"


def columns():
    got = str(s.query("SELECT country, retention_days, prop_keys, toString(revenue_amount), revenue_currency FROM millimetric.events_dedup WHERE event_id='m-2'", "TSV")).strip()
    assert got == "GB\t30\t['plan','seats']\t123456789012.123456\tEUR", got


def unknown_field_is_refused():
    try:
        s.query("INSERT INTO millimetric.events SETTINGS input_format_skip_unknown_fields=0 FORMAT JSONEachRow\n"
                '{"project_id":"p","event_id":"x","ip":"1.2.3.4"}')
    except Exception as e:
        assert "117" in str(e) or "INCORRECT_DATA" in str(e) or "Unknown field" in str(e), e
        return
    raise AssertionError("an unknown field must be an error (it is what dead-letters a schema mismatch)")


def no_ip_column():
    cols = str(s.query("SELECT name FROM system.columns WHERE database='millimetric' AND table='events'", "CSV"))
    assert "ip" not in [c.strip('"') for c in cols.split()], cols


def retention_drop():
    # The retention job (core/src/storage/retention.rs) reads partition ids as `<days>-<YYYYMMDD>` and drops
    # with the key's value, `DROP PARTITION (<days>, 'YYYY-MM-DD')`: both must hold here too.
    import re
    ids = str(s.query("SELECT DISTINCT partition_id FROM system.parts WHERE database='millimetric' AND table='events' AND active", "TSV")).split()
    assert ids and all(re.fullmatch(r"\d+-\d{8}", i) for i in ids), ids
    days, ymd = ids[0].split("-")
    s.query(f"ALTER TABLE millimetric.events DROP PARTITION ({days}, '{ymd[:4]}-{ymd[4:6]}-{ymd[6:]}')")
    left = str(s.query("SELECT DISTINCT partition_id FROM system.parts WHERE database='millimetric' AND table='events' AND active", "TSV")).split()
    assert ids[0] not in left, (ids, left)


def read_side():
    stmts = [l for l in open(read_file).read().splitlines() if l.strip()]
    assert len(stmts) > 40, len(stmts)
    answered = 0
    for st in stmts:
        out = str(s.query(st))
        answered += bool(out.strip())
    assert answered > 20, f"only {answered} of {len(stmts)} statements found the sample rows"


def aggregates_filled():
    # read_side() ran the rollup job's inserts (examples/read_statements.rs) over the sample rows.
    raw = str(s.query("SELECT uniqExact(anonymous_id), count() FROM millimetric.events_dedup WHERE project_id = 'proj_modern' AND anonymous_id != ''", "TSV")).split()
    visitors = str(s.query("SELECT uniqCombinedMerge(visitors) FROM millimetric.visits_agg WHERE project_id = 'proj_modern'", "TSV")).strip()
    pages = str(s.query("SELECT sumMerge(events) FROM millimetric.pages_agg WHERE project_id = 'proj_modern'", "TSV")).strip()
    done = str(s.query("SELECT count() FROM millimetric.rollup_done WHERE project_id = ''", "TSV")).strip()
    assert int(visitors) >= int(raw[0]) > 0, (visitors, raw)
    assert int(pages) > 0 and int(done) == 30, (pages, done)
    # No visitor id in any aggregate table, whatever its column is named: every stored row of
    # each is searched for the raw events' visitor ids (the *_rollup tables are Null tables).
    ids = str(s.query("SELECT DISTINCT anonymous_id FROM millimetric.events WHERE anonymous_id != ''", "TSV")).split()
    tables = str(s.query("SELECT name FROM system.tables WHERE database='millimetric' AND endsWith(name, '_agg') AND engine NOT LIKE '%View'", "TSV")).split()
    assert ids and len(tables) >= 3, (ids, tables)
    for t in tables:
        # As bytes: the sketches' states are binary.
        dump = s.query(f"SELECT * FROM millimetric.`{t}`", "TSV").bytes()
        assert t != "visits_agg" or dump.strip(), "visits_agg is empty: the search below could not fail"
        for i in ids:
            assert i.encode() not in dump, f"no visitor id in an aggregate table: {i} in {t}"


def id_hash(text):
    # core/src/storage/sql.rs id_hash: the first 12 bytes of the text's SHA-256, as a literal.
    return "unhex('%s')" % hashlib.sha256(text.encode()).hexdigest()[:24]


def stored_id_lookup():
    # first_write::stored_ids_sql's statement, asked with the hash computed as the Worker does.
    got = str(s.query("SELECT project_id, lower(hex(id_hash)) AS hash, max(key_kind = 'secret') AS server FROM millimetric.event_id_hashes "
                      f"WHERE (project_id, id_hash) IN (('proj_modern', {id_hash('m-1')}), ('proj_modern', {id_hash('nope')})) "
                      "GROUP BY project_id, id_hash FORMAT JSONEachRow"))
    want = hashlib.sha256(b"m-1").hexdigest()[:24]
    assert f'"hash":"{want}"' in got and '"server":1' in got and got.count("hash") == 1, got


def visitor_days_by_hash():
    # privacy::visitors' day lookup and erasure of the days index, with the Worker's hash.
    anon = str(s.query("SELECT any(anonymous_id) FROM millimetric.events WHERE project_id = 'proj_modern' AND anonymous_id != ''", "TSV")).strip()
    days = f"SELECT count() FROM millimetric.visitor_day_hashes WHERE project_id = 'proj_modern' AND visitor_hash IN ({id_hash(anon)})"
    assert anon and int(str(s.query(days, "TSV")).strip()) > 0, (anon, days)


check(f"migrations apply on ClickHouse {chdb.__version__ if hasattr(chdb, '__version__') else ''}", apply)
check("insert with the Worker's settings", lambda: insert(False))
check("insert with async_insert", lambda: insert(True))
check("dedup view", dedup)
check("row values", columns)
check("unknown field refused", unknown_field_is_refused)
check("no ip column", no_ip_column)
check("the stored-id lookup (event_id_hashes, filled by its view)", stored_id_lookup)
check("a visitor's days found by the id's hash (visitor_day_hashes)", visitor_days_by_hash)
check("every read-side statement runs", read_side)
check("the rollup's views fill the aggregates", aggregates_filled)
check("retention drops a partition by its value", retention_drop)
failed = [(n, e) for n, e in results if e]
for n, e in results:
    print(f"modern clickhouse: {n}: {'ok' if not e else f'FAILED: {e}'}")
print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
