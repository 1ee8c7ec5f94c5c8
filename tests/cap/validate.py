"""Validates CAP 1.2 messages against the official OASIS schema and an Atom feed against
the Atom 1.0 schema, with the independent `xmlschema` package from PyPI.

Usage: validate.py <schema dir> <atom file> <cap file>…
Prints one line per failure; exits non-zero if any.
"""
import sys
import xmlschema

schemas, atom, caps = sys.argv[1], sys.argv[2], sys.argv[3:]
cap = xmlschema.XMLSchema(f"{schemas}/CAP-v1.2.xsd")
feed = xmlschema.XMLSchema(f"{schemas}/atom.xsd")
failed = 0
for path in caps:
    for error in cap.iter_errors(path):
        print(f"{path}: {error.reason} at {error.path}")
        failed += 1
for error in feed.iter_errors(atom):
    print(f"{atom}: {error.reason} at {error.path}")
    failed += 1
print(f"checked {len(caps)} CAP messages and 1 Atom feed: {failed} problems")
sys.exit(1 if failed else 0)
