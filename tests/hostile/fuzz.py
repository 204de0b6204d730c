"""A mutation fuzzer of every parser VME exposes to documents from elsewhere (issue 16).

Each target reads text of one kind (an offer, a schedule, a protocol message, a document of
offers, a scenario, an agent config, an accounts file, a stored record, a control-channel line)
and may refuse it only with the error type it documents, naming the field; what it accepts must
survive a round trip where the kind has one (write, read back, equal). The inputs are mutations
of valid seeds (byte flips, cut, repeated and swapped spans, hostile tokens: deep nesting, huge
numbers, Unicode format characters, entities), drawn from a generator seeded per run, so a
failure is reproduced by its seed and case number.

``make test`` runs 10^4 cases (tests/hostile/test_fuzz.py); ``make drills`` 10^6
(``VME_FUZZ_CASES``).
"""

from __future__ import annotations

import asyncio
import random
import re
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from tests.conftest import EXAMPLES, ROOT
from vmenergy.errors import VmeError
from vmenergy.flexoffer import FlexOffer, FlexOfferError, Schedule
from vmenergy.runtime import control
from vmenergy.runtime.scenario.check import check_text
from vmenergy.runtime.servers import ServerError, read_accounts_file
from vmenergy.store import StoreError
from vmenergy.store.codec import dumps as record_dumps
from vmenergy.store.sqlite import read_record
from vmenergy.wire import documents, xml as wxml
from vmenergy.wire.messages import parse_message, to_xml

__all__ = ["TARGETS", "Target", "case", "fuzz", "FuzzReport"]

DOC = (ROOT / "docs" / "protocol.md").read_text()
_XML_BLOCKS = [b.strip() for kind, b in re.findall(r"```(json|xml)\n(.*?)```", DOC, flags=re.S) if kind == "xml"]


def _parses(text: str) -> bool:
    try:
        parse_message(text)
    except FlexOfferError:
        return False
    return True


_MESSAGE_SEEDS = [b for b in _XML_BLOCKS if _parses(b)]

#: Tokens a hostile document likes to hold.
TOKENS = [
    "<", ">", "/>", '"', "'", "&", "&amp;", "&lt;", "&#0;", "&#x202e;", "<!DOCTYPE x [<!ENTITY e 'x'>]>", "&e;",
    "<![CDATA[", "]]>", "<?x?>", "<!--", "-->", "xmlns=\"urn:vmenergy:flexoffer:1\"", "xmlns:a=\"x\"", "a:b=\"1\"",
    "{", "}", "[", "]", ",", ":", "\"\"", "null", "true", "false", "NaN", "Infinity", "-Infinity", "1e999", "-1e999",
    "9" * 500, "9" * 5000, "-" + "9" * 30, "0.1", "-0", "1e-400", "0x10", "\u202e", "\u200b", "\u0085", "\u2028",
    "\u00a0", "\ufeff", "\x00", "\x1b", "\ud800", "\U0010ffff", "é", "東京", "T", "Z", "+01:00", "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z", "P1Y", "PT", "\n", "\r\n", "\t", " ", "=", "#", "[[", "]]", "\"\"\"", "'''",
]
NEST = ["<profile>", "[", "{\"a\":", "<x xmlns=\"urn:example\">"]


@dataclass(frozen=True)
class Target:
    """A parser under fuzz: ``run(text)`` parses (and round-trips what it accepts); ``allowed``
    are the error types it may raise; ``seeds`` are valid inputs to mutate."""

    name: str
    run: Callable[[str], object]
    allowed: tuple[type[BaseException], ...]
    seeds: tuple[str, ...]


def _offer_json(text: str) -> object:
    fo = FlexOffer.from_json(text)
    assert FlexOffer.from_json(fo.to_json()) == fo, "an accepted offer does not round-trip through JSON"
    assert wxml.parse(wxml.to_xml(fo)) == fo, "an accepted offer does not round-trip through XML"
    return fo


def _schedule_json(text: str) -> object:
    s = Schedule.from_json(text)
    assert Schedule.from_json(s.to_json()) == s, "an accepted schedule does not round-trip through JSON"
    return s


def _xml_doc(text: str) -> object:
    item = wxml.parse(text)
    assert wxml.parse(wxml.to_xml(item)) == item, "an accepted XML document does not round-trip"
    return item


def _message(text: str) -> object:
    msg = parse_message(text)
    assert parse_message(to_xml(msg)) == msg, "an accepted message does not round-trip"
    return msg


def _documents(text: str) -> object:
    return documents.parse_document(text), documents.parse_json_lines(text)


_TMP = Path(tempfile.mkdtemp(prefix="vme-fuzz-"))


def _scenario(text: str) -> object:
    # never raises: every problem is a Problem with a path (a TOML error included)
    return check_text(text, base_dir=ROOT / "scenarios")


def _accounts(text: str) -> object:
    path = _TMP / "accounts.csv"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    path.chmod(0o600)
    return read_accounts_file(path)


def _record(text: str) -> object:
    return read_record(text, "fuzz")


def _control(text: str) -> object:
    async def read() -> object:
        reader = asyncio.StreamReader(limit=control.MAX_LINE)
        reader.feed_data(text.encode("utf-8", "surrogatepass"))
        reader.feed_eof()
        out = []
        while (msg := await control.receive(reader)) is not None:
            out.append(msg)
        return out

    return asyncio.run(read())


def _seeds() -> dict[str, tuple[str, ...]]:
    offers = tuple(p.read_text() for p in sorted(EXAMPLES.glob("*.json")))
    schedules = tuple(b for kind, b in re.findall(r"```(json|xml)\n(.*?)```", DOC, flags=re.S)
                      if kind == "json" and '"offer_id"' in b)
    xml_docs = tuple(b for b in _XML_BLOCKS if b.startswith(("<flexoffer", "<assignment")))
    scenarios = tuple(p.read_text() for p in sorted((ROOT / "scenarios").glob("*.toml")))[:3]
    configs = tuple(p.read_text() for p in sorted((ROOT / "agents").glob("*/*.toml")))
    fo = FlexOffer.from_json(offers[0])
    records = (record_dumps(fo), record_dumps(Schedule(fo.id, fo.start_after or 0, (1.0,) * fo.profiles[0].n_slices, "s-1")),
               record_dumps(parse_message(_MESSAGE_SEEDS[0])), record_dumps({"a": (1, 2.5, None, "x")}))
    return {
        "offer-json": offers, "schedule-json": schedules, "xml-document": xml_docs, "message-xml": tuple(_MESSAGE_SEEDS),
        "documents": offers + schedules + xml_docs, "scenario-toml": scenarios + configs,
        "accounts-file": ("jid,password\nhouse1@localhost,pw1\n\"house2@localhost\",\"a, b\"\n",),
        "store-record": records,
        "control-line": ('{"op":"hello","part":"p","token":"t","agents":1}\n{"op":"done","t":1,"k":0,"sent":{}}\n',),
    }


def targets() -> list[Target]:
    seeds = _seeds()
    return [
        Target("offer-json", _offer_json, (FlexOfferError,), seeds["offer-json"]),
        Target("schedule-json", _schedule_json, (FlexOfferError,), seeds["schedule-json"]),
        Target("xml-document", _xml_doc, (FlexOfferError,), seeds["xml-document"]),
        Target("message-xml", _message, (FlexOfferError,), seeds["message-xml"]),
        Target("documents", _documents, (FlexOfferError,), seeds["documents"]),
        Target("scenario-toml", _scenario, (), seeds["scenario-toml"]),
        Target("accounts-file", _accounts, (ServerError,), seeds["accounts-file"]),
        Target("store-record", _record, (StoreError,), seeds["store-record"]),
        Target("control-line", _control, (control.ControlError,), seeds["control-line"]),
    ]


TARGETS = targets


def mutate(text: str, rng: random.Random) -> str:
    """One to four random edits of ``text``."""
    s = text
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        i = rng.randrange(len(s) + 1)
        if op == 0 and s:  # flip a character
            s = s[:i] + chr(rng.choice((rng.randrange(32, 127), rng.randrange(0, 0x3000)))) + s[i + 1:]
        elif op == 1:  # a hostile token
            s = s[:i] + rng.choice(TOKENS) + s[i:]
        elif op == 2 and s:  # cut a span
            j = min(len(s), i + rng.randrange(1, 64))
            s = s[:i] + s[j:]
        elif op == 3 and s:  # repeat a span
            j = min(len(s), i + rng.randrange(1, 64))
            s = s[:j] + s[i:j] * rng.randrange(1, 50) + s[j:]
        elif op == 4:  # nest deeply
            tok = rng.choice(NEST)
            s = s[:i] + tok * rng.choice((20, 1000, 50_000)) + s[i:]
        elif op == 5:  # a number replaced by an extreme one
            m = list(re.finditer(r"-?\d+(\.\d+)?", s))
            if m:
                x = rng.choice(m)
                s = s[:x.start()] + rng.choice(("9" * 4400, "-1e999", "1e-999", "0", "-1", str(2 ** 64), "NaN")) + s[x.end():]
        elif op == 6 and len(s) > 2:  # swap two spans
            j = rng.randrange(len(s))
            a, b = sorted((i, j))
            if a < b:
                k = rng.randrange(a, b)
                s = s[:a] + s[k:b] + s[a:k] + s[b:]
        else:  # a random string value
            s = s[:i] + "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(1, 8))) + s[i:]
    return s


@dataclass
class FuzzReport:
    cases: int = 0
    accepted: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def case(seed: int, n: int, chosen: Optional[list[Target]] = None) -> tuple[Target, str]:
    """Case ``n`` of run ``seed``: its target and input. Each case has its own generator, so one
    case is reproduced without replaying the cases before it."""
    chosen = chosen if chosen is not None else targets()
    target = chosen[n % len(chosen)]
    rng = random.Random(f"vme-fuzz/{seed}/{n}")
    return target, mutate(rng.choice(target.seeds), rng)


def _where(exc: BaseException) -> str:
    """The innermost frame of a traceback (file:line), which is where a fix goes."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"


def fuzz(cases: int, seed: int = 0, only: Optional[str] = None, keep: int = 10, start: int = 0) -> FuzzReport:
    """Cases ``start`` .. ``start + cases - 1`` spread over the targets; failures name the target,
    seed, case number, the place that raised and the input (``python -m tests.hostile.fuzz
    --case SEED N`` replays one)."""
    report = FuzzReport()
    chosen = [t for t in targets() if only is None or t.name == only]
    t0 = time.perf_counter()
    for n in range(start, start + cases):
        target, text = case(seed, n, chosen)
        report.cases += 1
        try:
            target.run(text)
        except target.allowed as exc:
            if isinstance(exc, VmeError) and not exc.path and len(report.failures) < keep:
                report.failures.append(f"{target.name} seed {seed} case {n}: refused without a path: {exc!r}")
            report.refused[target.name] = report.refused.get(target.name, 0) + 1
            continue
        except Exception as exc:  # noqa: BLE001 - what the fuzzer looks for
            if len(report.failures) < keep:
                report.failures.append(f"{target.name} seed {seed} case {n}: {type(exc).__name__} at {_where(exc)}: "
                                       f"{exc!s:.300} input {text[:300]!r}")
            report.failed += 1
            continue
        report.accepted[target.name] = report.accepted.get(target.name, 0) + 1
    report.seconds = time.perf_counter() - t0
    return report


def main(argv: list[str]) -> int:
    """``python -m tests.hostile.fuzz [CASES [SEED]]`` or ``--case SEED N`` (one case, traceback)."""
    if argv[:1] == ["--case"]:
        import traceback

        target, text = case(int(argv[1]), int(argv[2]))
        print(f"target {target.name}, input {text!r:.2000}")
        try:
            target.run(text)
        except target.allowed as exc:
            print(f"refused: {exc!r}")
        except Exception:  # noqa: BLE001 - shown to the person replaying it
            traceback.print_exc()
            return 1
        return 0
    r = fuzz(int(argv[0]) if argv else 10_000, int(argv[1]) if len(argv) > 1 else 0)
    print(f"{r.cases} cases in {r.seconds:.1f} s ({r.cases / max(r.seconds, 1e-9):.0f}/s); accepted {r.accepted}; "
          f"refused {r.refused}; failed {r.failed}")
    for f in r.failures:
        print("FAILURE", f)
    return 1 if r.failures else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
