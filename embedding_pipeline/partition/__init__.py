"""A partition's work, in plain Python (no Dagster): keeping Qdrant in step with one resource type.

Data walks one way, one module a step:
    records.py  rows of the content database → records (identity, fingerprint), the listing
    heads.py    what Qdrant holds of each record (its head point), and the saved copy of those heads
    plan.py     listing + heads → new, changed, unchanged, deleted; damage; verification; the deletion guard
    points.py   a record's row → its texts and payloads (chunked)
    write.py    batches of records → texts → vectors → points → the store
    run.py      the whole run of one partition, in order, and what it reports (report.py)

Qdrant itself is the state: every point carries its record's id, its text's hash and a hash of its
text, payload and the vectors' version; a record's first point (its head) also carries the record's
fingerprint and its number of points.
"""
