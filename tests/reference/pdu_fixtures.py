"""pynetdicom's byte-exact PDU fixtures, and pynetdicom's reading of radlab's PDUs.

Prints JSON {"version": ..., "fixtures": {name: hex}, "decoded": {name: ...}}:
- fixtures: the byte strings of `pynetdicom/tests/encoded_pdu_items.py`, which pynetdicom
  ships inside its package (whole PDUs such as `a_associate_rq`, and single items such as
  `user_identity_rq_user_pass`);
- decoded: for each PDU of the query's "decode" ({name: hex}, standard input), what
  pynetdicom makes of it: {"type": class name, "reencoded": hex of its encode(), "text":
  str()} or {"error": ...}.
Read by crates/radlab-net/tests/pdu_fixtures.rs.
"""

import json
import sys

import pynetdicom
from pynetdicom.pdu import PDU_TYPES
from pynetdicom.tests import encoded_pdu_items as items

query = json.loads(sys.stdin.read() or "null") or {}
fixtures = {
    name: value.hex()
    for name, value in sorted(vars(items).items())
    if not name.startswith("_") and isinstance(value, bytes)
}
by_type = {code: cls for cls, code in PDU_TYPES.items()}
decoded = {}
for name, hexed in (query.get("decode") or {}).items():
    raw = bytes.fromhex(hexed)
    try:
        pdu = by_type[raw[0]]()
        pdu.decode(raw)
        decoded[name] = {
            "type": type(pdu).__name__,
            "reencoded": pdu.encode().hex(),
            "text": str(pdu),
        }
    except Exception as e:  # reported to the test, which fails on it
        decoded[name] = {"error": f"{type(e).__name__}: {e}"}
json.dump(
    {"version": pynetdicom.__version__, "fixtures": fixtures, "decoded": decoded},
    sys.stdout,
    indent=1,
)
print()
