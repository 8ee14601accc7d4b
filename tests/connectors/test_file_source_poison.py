"""Poison lines: each is refused with its byte offset, and the file source goes on delivering the rest."""
from __future__ import annotations

import json
import logging

from orgloop.connectors.file import FileSource
from orgloop.event import MAX_DEPTH, check_encodable

POISON: list[tuple[str, bytes, str]] = [
    ("deep nesting", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper"),
    ("deep but legal for json", b'{"a": ' + b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5) + b"}", "nested deeper"),
    ("an int beyond 64 bits", b'{"n": 18446744073709551616}', "64 bits"),
    ("a negative int beyond 64 bits", b'{"n": -9223372036854775809}', "64 bits"),
    ("NaN", b'{"x": NaN}', "NaN"),
    ("Infinity", b'{"x": [Infinity]}', "NaN and Infinity"),
    ("binary", b"\x00\xff\xfe\x81garbage", "invalid UTF-8"),
    ("invalid UTF-8 in a string", b'{"s": "caf\xe9"}', "invalid UTF-8"),
    ("a lone surrogate", b'{"s": "\\ud800"}', "lone surrogate"),
    ("a 2 MiB line", b'{"big": "' + b"x" * (2 << 20) + b'"}', "longer than"),
    ("another source's envelope", json.dumps({"source": "github", "type": "resource.changed",
                                              "payload": {"spoof": True}}).encode(), "claims source 'github'"),
    ("an invalid envelope", b'{"type": "no.such.type"}', "is not one of"),
    ("not JSON", b"{oops", "invalid JSON"),
]


def test_every_poison_line_is_refused_with_its_offset_and_the_good_lines_flow(tmp_path, caplog):
    path = tmp_path / "in.jsonl"
    lines: list[bytes] = []
    for i, (_name, poison, _why) in enumerate(POISON):
        lines.append(json.dumps({"good": i}).encode())
        lines.append(poison)
    lines.append(json.dumps({"good": len(POISON)}).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    offsets = [sum(len(x) + 1 for x in lines[:k]) for k in range(len(lines))]

    src = FileSource("feed", {"path": "in.jsonl"}, base_dir=tmp_path)
    events: list[dict] = []
    cp = None
    with caplog.at_level(logging.WARNING, logger="orgloop.connectors.file"):
        for _ in range(50):
            batch, cp = src.poll(cp, 3)            # small batches: refusals never stall a batch
            events += batch
            if cp == str(path.stat().st_size) and not batch:
                break
    assert [e["payload"] for e in events] == [{"good": i} for i in range(len(POISON) + 1)]
    for e in events:
        check_encodable(e)                         # what went through can be stored
    assert src.invalid_lines == len(POISON)
    text = caplog.text
    for k, (name, _poison, why) in enumerate(POISON):
        assert why in text, f"{name}: reason {why!r} not logged"
        if name != "a 2 MiB line":                 # that one is reported by where it ends
            assert f"at byte {offsets[2 * k + 1]} " in text, f"{name}: offset not logged"


def test_bare_lines_get_ids_from_their_place_so_a_reread_gives_the_same_ids(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n{"a": 1}\n{"type": "resource.changed", "payload": {"b": 2}}\n')
    first, _ = FileSource("feed", {"path": "in.jsonl"}, base_dir=tmp_path).poll(None, 100)
    again, _ = FileSource("feed", {"path": "in.jsonl"}, base_dir=tmp_path).poll(None, 100)
    assert [e["id"] for e in first] == [e["id"] for e in again]
    assert len({e["id"] for e in first}) == 3      # the same payload on another line is another event
    other, _ = FileSource("other", {"path": "in.jsonl"}, base_dir=tmp_path).poll(None, 100)
    assert not {e["id"] for e in other} & {e["id"] for e in first}
    path.write_text('{"a": 1}\n')                   # a new file (new inode or truncated): new ids
    path.unlink()
    path.write_text('{"a": 1}\n{"a": 1}\n')
    fresh, _ = FileSource("feed", {"path": "in.jsonl"}, base_dir=tmp_path).poll(None, 100)
    assert len(fresh) == 2
