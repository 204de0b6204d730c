"""XML codec of flex-offers and schedules in namespace ``urn:vmenergy:flexoffer:1``.

Reading turns the element tree into the same dictionary the JSON codec reads and hands it to the
same constructor, so both formats share one set of rules and the same error paths (JSON field
names: ``profiles[0].slices[1].max``). Writing builds the slixmpp stanza objects of
:mod:`vmenergy.wire.stanzas`, which agents attach to ``<message/>`` as they are.

Safety: documents over :data:`~vmenergy.flexoffer.jsontext.MAX_DOCUMENT_BYTES` and any DTD or entity
declaration are refused before the tree is built (no entity expansion, no external fetch).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.parsers import expat
from typing import Any, Callable, NoReturn, Optional, Union

from vmenergy.flexoffer.errors import DOCUMENT, FlexOfferError
from vmenergy.flexoffer.jsontext import MAX_DOCUMENT_BYTES, guard
from vmenergy.flexoffer.model import FlexOffer
from vmenergy.flexoffer.schedule import Schedule
from slixmpp.xmlstream import ElementBase

from vmenergy.validation import MAX_NUMBER_DIGITS, OversizeNumber

from .stanzas import (
    NS,
    AssignmentElement,
    BaselineElement,
    FlexOfferElement,
    PolytopeElement,
    PriceElement,
    PricesElement,
    ProfileElement,
    RowElement,
    SliceElement,
    TotalElement,
)

__all__ = [
    "OPS",
    "MAX_DEPTH",
    "too_deep",
    "written_size",
    "parse",
    "parse_offer",
    "parse_schedule",
    "parse_element",
    "offer_from_element",
    "schedule_from_element",
    "offer_to_stanza",
    "schedule_to_stanza",
    "to_xml",
]

#: Values of ``<flexoffer op=…>``: what the sender wants done with the offer.
OPS = ("insert", "update", "delete")
#: Deepest element nesting any VME document has is 4 (``flexoffer/profile/polytope/row``); a
#: document nested deeper than this is refused before anything walks it recursively (Python's
#: ElementTree serialiser and slixmpp's deep copy overflow the stack at about 1,000 levels).
MAX_DEPTH = 16

_INT = re.compile(r"[+-]?\d+\Z")
# Each digit run can be matched one way only (``\d+(\.\d*)?``, not ``\d+\.?\d*``): the ambiguous
# form backtracks quadratically, and a 4,400-digit attribute cost 0.25 s per match.
_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|NaN|inf|Infinity|INF)\Z")

# element -> (attribute -> kind); kinds: s = string, i = integer, f = number, l = list of numbers
_OFFER_ATTRS = {
    "op": "s", "id": "s", "issuer": "s", "label": "s", "state": "s", "version": "i", "resolution": "i",
    "creation-time": "s", "acceptance-before": "s", "assignment-before": "s", "start-after": "s",
    "start-before": "s", "start-before-duration": "s",
}
_PROFILE_ATTRS = {"start-after": "s", "start-before": "s"}
_SLICE_ATTRS = {"duration": "i", "min": "f", "max": "f", "values": "l"}
_TOTAL_ATTRS = {"min": "f", "max": "f"}
_ROW_ATTRS = {"b": "f"}
_BASELINE_ATTRS = {"profile": "i", "start": "s"}
_PRICES_ATTRS = {"currency": "s"}
_PRICE_ATTRS = {"up": "f", "down": "f"}
_ASSIGNMENT_ATTRS = {
    "offer-id": "s", "schedule-id": "s", "update-id": "i", "profile": "i", "start": "s", "resolution": "i",
}


# ------------------------------------------------------------------------------------------
# reading


def too_deep(el: ET.Element, limit: int = MAX_DEPTH) -> bool:
    """Whether ``el`` nests elements more than ``limit`` levels deep (itself is level 1); walks
    without recursion and stops at the first branch past the limit."""
    stack = [(el, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in node)
    return False


def written_size(el: ET.Element) -> int:
    """About how many characters ``el`` takes written out (local tag names twice, attributes,
    text), counted without writing it: what a received payload's size limit is judged by.

    Writing it out to measure it (``ET.tostring``) was a fifth of an aggregator's CPU per
    offer. The count leaves out namespace declarations and the growth of escaped characters,
    so it is somewhat under the written length (5-20 % for a short element, 2 % for a big offer)."""
    n = 0
    namespaces = set()
    for node in el.iter():
        tag = node.tag
        if isinstance(tag, str):
            ns, _, local = tag.rpartition("}")
            namespaces.add(ns)
            n += 2 * len(local) + 5 if len(node) or node.text else len(local) + 4  # <t ...></t> or <t ... />
        for key, value in node.attrib.items():
            n += len(key) + len(value) + 4  # ' key="value"'
        if node.text:
            n += len(node.text)
        if node.tail:
            n += len(node.tail)
    return n + sum(len(ns) + 10 for ns in namespaces if ns)  # xmlns:p="..." once each


def parse_element(text: Union[str, bytes]) -> ET.Element:
    """Text to an element tree, refusing oversize input, DTDs and entity declarations."""
    if isinstance(text, str):
        size = len(text.encode("utf-8", "surrogatepass"))
    elif isinstance(text, (bytes, bytearray)):
        size = len(text)
    else:
        raise FlexOfferError(DOCUMENT, f"expected XML text, got {type(text).__name__}")
    if size > MAX_DOCUMENT_BYTES:
        raise FlexOfferError(DOCUMENT, f"oversize document ({size} bytes > {MAX_DOCUMENT_BYTES})")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def forbid(*_args: Any) -> NoReturn:
        raise FlexOfferError(DOCUMENT, "DTDs and entity declarations are not allowed")

    depth = [0]

    def start(tag: str, attrs: dict[str, str]) -> None:
        depth[0] += 1
        if depth[0] > MAX_DEPTH:
            raise FlexOfferError(DOCUMENT, f"elements nested more than {MAX_DEPTH} deep")
        builder.start(_qualified(tag), {_qualified(k): v for k, v in attrs.items()})

    def end(tag: str) -> None:
        depth[0] -= 1
        builder.end(_qualified(tag))

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = forbid
    parser.EntityDeclHandler = forbid
    parser.UnparsedEntityDeclHandler = forbid
    parser.ExternalEntityRefHandler = forbid
    parser.buffer_text = True
    try:
        parser.Parse(text, True)
        return builder.close()
    except FlexOfferError:
        raise
    except expat.ExpatError as exc:
        raise FlexOfferError(DOCUMENT, f"malformed XML: {exc}") from None
    except (ValueError, AssertionError, RecursionError) as exc:
        raise FlexOfferError(DOCUMENT, f"malformed XML: {exc}") from None


def _qualified(name: str) -> str:
    """expat's ``ns}local`` to ElementTree's ``{ns}local``."""
    return "{" + name if "}" in name else name


def _local(el: ET.Element, path: str) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    if not tag.startswith("{"):
        raise FlexOfferError(path or DOCUMENT, f"element <{tag}> has no namespace (expected {NS})")
    ns, _, name = tag[1:].partition("}")
    if ns != NS:
        raise FlexOfferError(path or DOCUMENT, f"unknown namespace {ns!r} (expected {NS})")
    return name


#: Number texts already read, each with the one object it reads as. An offer's cells repeat a
#: few values (a day's polytope rows are half zeros, a slice's bounds are its baseline's energy),
#: and an aggregator holds every offer it accepted: one object per repeated text instead of one
#: per cell. Distinct texts stay distinct objects (``-0.0`` is not ``0.0``); cleared when full.
_NUMBERS: dict[str, Any] = {}
_NUMBERS_MAX = 1 << 16


def _value(text: str, kind: str, path: str) -> Any:
    """Attribute text to a typed value. Unparseable numbers are passed on as text so that the
    model reports them with its usual reason ("not a number: 'lots'")."""
    if kind == "s":
        return text
    if kind == "l":
        return [_number(t) for t in text.split()]
    return _number(text)


def _number(text: str) -> Any:
    """Text to an int or float (shared: see :data:`_NUMBERS`), an :class:`OversizeNumber`, or
    the text itself when it is no number."""
    hit = _NUMBERS.get(text)
    if hit is not None:
        return hit
    value = _parse_number(text)
    if type(value) is float or type(value) is int:
        if len(_NUMBERS) >= _NUMBERS_MAX:
            _NUMBERS.clear()
        _NUMBERS[text] = value
    return value


def _parse_number(text: str) -> Any:
    t = text.strip()
    if len(t) > MAX_NUMBER_DIGITS and (_INT.match(t) or _FLOAT.match(t)):
        return OversizeNumber(len(t))  # the field's check refuses it by name
    if _INT.match(t):
        return int(t)
    if _FLOAT.match(t):
        return float(t)
    return text


def _attrs(el: ET.Element, spec: dict[str, str], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, text in el.attrib.items():
        if key not in spec:
            raise FlexOfferError(_join(path, key.replace("-", "_")), f"unknown attribute {key!r} on <{_local(el, path)}>")
        name = key.replace("-", "_")
        out[name] = _value(text, spec[key], _join(path, name))
    if el.text and el.text.strip() and el.tag not in _TEXT_ELEMENTS:
        raise FlexOfferError(path or DOCUMENT, "unexpected text content")
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _children(el: ET.Element, path: str, allowed: dict[str, Callable[[ET.Element, str], Any]]) -> dict[str, list]:
    """Children grouped by local name, each already converted by its reader."""
    out: dict[str, list] = {name: [] for name in allowed}
    for child in el:
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        name = _local(child, path)
        if name not in allowed:
            raise FlexOfferError(_join(path, name), f"unknown element <{name}> in <{_local(el, path)}>")
        out[name].append(child)
        if child.tail and child.tail.strip():
            raise FlexOfferError(path or DOCUMENT, "unexpected text content")
    return {name: [allowed[name](c, _indexed(path, name, i, len(items))) for i, c in enumerate(items)]
            for name, items in out.items()}


_PLURAL = {"profile": "profiles", "slice": "slices", "row": "A", "price": "slices", "line": "lines"}


def _indexed(path: str, name: str, i: int, count: int) -> str:
    plural = _PLURAL.get(name)
    return f"{_join(path, plural)}[{i}]" if plural else _join(path, name)


def _single(items: list, path: str, name: str) -> Any:
    if len(items) > 1:
        raise FlexOfferError(_join(path, name), f"more than one <{name}>")
    return items[0] if items else None


def _energy_text(el: ET.Element, path: str) -> list:
    if el.attrib:
        raise FlexOfferError(path, "<energy> takes no attributes")
    if len(el):
        raise FlexOfferError(path, "<energy> holds a space-separated list of numbers, no elements")
    return _value(el.text or "", "l", path)


def _slice_dict(el: ET.Element, path: str) -> dict:
    _children(el, path, {})
    return _attrs(el, _SLICE_ATTRS, path)


def _row(el: ET.Element, path: str) -> tuple[list, Any]:
    attrs = _attrs(el, _ROW_ATTRS, path)
    if len(el):
        raise FlexOfferError(path, "<row> holds a space-separated list of numbers, no elements")
    if "b" not in attrs:
        raise FlexOfferError(path.replace(".A[", ".b["), "required")
    return _value(el.text or "", "l", path), attrs["b"]


def _profile_dict(el: ET.Element, path: str) -> dict:
    d = _attrs(el, _PROFILE_ATTRS, path)
    kids = _children(el, path, {"slice": _slice_dict, "total": lambda e, p: _attrs(e, _TOTAL_ATTRS, p),
                                "polytope": _polytope_dict})
    d["slices"] = kids["slice"]
    total = _single(kids["total"], path, "total")
    if total is not None:
        d["total"] = total
    poly = _single(kids["polytope"], path, "polytope")
    if poly is not None:
        d["polytope"] = poly
    return d


def _polytope_dict(el: ET.Element, path: str) -> dict:
    _attrs(el, {}, path)
    rows = _children(el, path, {"row": _row})["row"]
    return {"A": [r[0] for r in rows], "b": [r[1] for r in rows]}


def _baseline_dict(el: ET.Element, path: str) -> dict:
    d = _attrs(el, _BASELINE_ATTRS, path)
    energy = _single(_children(el, path, {"energy": _energy_text})["energy"], path, "energy")
    if energy is not None:
        d["energy"] = energy
    return d


def _prices_dict(el: ET.Element, path: str) -> dict:
    d = _attrs(el, _PRICES_ATTRS, path)
    d["slices"] = _children(el, path, {"price": lambda e, p: _attrs(e, _PRICE_ATTRS, p)})["price"]
    return d


def _offer_dict(el: ET.Element) -> tuple[Optional[str], dict]:
    d = _attrs(el, _OFFER_ATTRS, "")
    op = d.pop("op", None)
    if op is not None and op not in OPS:
        raise FlexOfferError("op", f"unknown operation {op!r} (one of {', '.join(OPS)})")
    kids = _children(el, "", {"profile": _profile_dict, "baseline": _baseline_dict, "prices": _prices_dict})
    d["profiles"] = kids["profile"]
    for name in ("baseline", "prices"):
        item = _single(kids[name], "", name)
        if item is not None:
            d[name] = item
    return op, d


def _schedule_dict(el: ET.Element) -> dict:
    d = _attrs(el, _ASSIGNMENT_ATTRS, "")
    energy = _single(_children(el, "", {"energy": _energy_text})["energy"], "", "energy")
    if energy is not None:
        d["energy"] = energy
    return d


_TEXT_ELEMENTS = {f"{{{NS}}}row", f"{{{NS}}}energy", f"{{{NS}}}line"}


def _element(obj: Union[ET.Element, FlexOfferElement, AssignmentElement]) -> ET.Element:
    return obj if isinstance(obj, ET.Element) else obj.xml


def offer_from_element(el: Union[ET.Element, FlexOfferElement]) -> FlexOffer:
    """A ``<flexoffer>`` element (or its stanza object from a received message) to a FlexOffer."""
    return read_flexoffer(el)[1]


def read_flexoffer(el: Union[ET.Element, FlexOfferElement]) -> tuple[Optional[str], FlexOffer]:
    """``(op, offer)`` from a ``<flexoffer>`` element; ``op`` is None when absent."""

    def run() -> tuple[Optional[str], FlexOffer]:
        x = _element(el)
        if _local(x, "") != "flexoffer":
            raise FlexOfferError(DOCUMENT, f"expected <flexoffer>, got <{_local(x, '')}>")
        op, d = _offer_dict(x)
        return op, FlexOffer.from_dict(d)

    return guard(run)


def schedule_from_element(el: Union[ET.Element, AssignmentElement], resolution: Optional[int] = None) -> Schedule:
    """An ``<assignment>`` element to a Schedule (``resolution`` used when the element has none)."""

    def run() -> Schedule:
        x = _element(el)
        if _local(x, "") != "assignment":
            raise FlexOfferError(DOCUMENT, f"expected <assignment>, got <{_local(x, '')}>")
        return Schedule.from_dict(_schedule_dict(x), resolution=resolution)

    return guard(run)


def parse(text: Union[str, bytes]) -> Union[FlexOffer, Schedule]:
    """XML text of a ``<flexoffer>`` or an ``<assignment>`` to the model object."""

    def run() -> Union[FlexOffer, Schedule]:
        root = parse_element(text)
        name = _local(root, "")
        if name == "flexoffer":
            return offer_from_element(root)
        if name == "assignment":
            return schedule_from_element(root)
        raise FlexOfferError(DOCUMENT, f"unknown root element <{name}> (expected <flexoffer> or <assignment>)")

    return guard(run)


def parse_offer(text: Union[str, bytes]) -> FlexOffer:
    return guard(lambda: offer_from_element(parse_element(text)))


def parse_schedule(text: Union[str, bytes], resolution: Optional[int] = None) -> Schedule:
    return guard(lambda: schedule_from_element(parse_element(text), resolution))


# ------------------------------------------------------------------------------------------
# writing


def _text(value: Any) -> str:
    """An attribute's text: floats as ``repr`` (exact round trip), lists space-separated."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return repr(float(value)) if isinstance(value, float) else str(value)


def _put(el: Any, fields: dict, skip: tuple[str, ...] = ()) -> None:
    """Write a dict form's scalar fields as attributes (JSON names in kebab-case)."""
    for key, value in fields.items():
        if key not in skip:
            el[key.replace("_", "-")] = _text(value)


def _new(cls: type[ElementBase], parent: Optional[ET.Element] = None) -> ET.Element:
    """The bare XML element of stanza class ``cls`` (what its constructor makes), under ``parent``."""
    tag = f"{{{cls.namespace}}}{cls.name}"
    return ET.Element(tag) if parent is None else ET.SubElement(parent, tag)


def _write(el: ET.Element, cls: type[ElementBase], fields: dict, skip: tuple[str, ...] = ()) -> None:
    """:func:`_put` on a bare element: what ``stanza[key] = text`` does for the stanza classes
    here (an empty text writes nothing; an interface the class does not declare is dropped; a
    sub-interface is a child element holding the text; anything else an attribute), without
    slixmpp's interface dispatch, which was most of the cost of sending an offer."""
    for key, value in fields.items():
        if key in skip:
            continue
        name, text = key.replace("_", "-"), _text(value)
        if not text or name not in cls.interfaces:
            continue
        if name in cls.sub_interfaces:
            ET.SubElement(el, f"{{{cls.namespace}}}{name}").text = text
        else:
            el.set(name, text)


def offer_element(fo: FlexOffer, op: Optional[str] = None) -> ET.Element:
    """A FlexOffer as a bare ``<flexoffer>`` element: the XML of :func:`offer_to_stanza`
    (a test compares them), built directly.

    Written from the offer's canonical (JSON) form, so both formats carry the same fields in
    the same way; only the nesting differs."""
    if op is not None and op not in OPS:
        raise FlexOfferError("op", f"unknown operation {op!r} (one of {', '.join(OPS)})")
    d = fo.to_dict()
    el = _new(FlexOfferElement)
    if op is not None:
        el.set("op", op)
    _write(el, FlexOfferElement, d, skip=("profiles", "baseline", "prices"))
    for p in d["profiles"]:
        pe = _new(ProfileElement, el)
        _write(pe, ProfileElement, p, skip=("slices", "total", "polytope"))
        for sl in p["slices"]:
            _write(_new(SliceElement, pe), SliceElement, sl)
        if "total" in p:
            _write(_new(TotalElement, pe), TotalElement, p["total"])
        if "polytope" in p:
            poly = _new(PolytopeElement, pe)
            for row, b in zip(p["polytope"]["A"], p["polytope"]["b"]):
                re_ = _new(RowElement, poly)
                if text := _text(b):
                    re_.set("b", text)
                re_.text = _text(row) or None  # RowElement keeps its coefficients as text
    if "baseline" in d:
        _write(_new(BaselineElement, el), BaselineElement, d["baseline"])
    if "prices" in d:
        pr = _new(PricesElement, el)
        _write(pr, PricesElement, d["prices"], skip=("slices",))
        for price in d["prices"]["slices"]:
            _write(_new(PriceElement, pr), PriceElement, price)
    return el


def offer_to_stanza(fo: FlexOffer, op: Optional[str] = None) -> FlexOfferElement:
    """A FlexOffer as a ``<flexoffer>`` stanza object (append it to a slixmpp Message)."""
    return FlexOfferElement(xml=offer_element(fo, op))


def schedule_to_stanza(s: Schedule) -> AssignmentElement:
    """A Schedule as an ``<assignment>`` stanza object (from its canonical form, like offers)."""
    el = AssignmentElement()
    _put(el, s.to_dict())
    return el


def to_xml(obj: Union[FlexOffer, Schedule], op: Optional[str] = None) -> str:
    """XML text of an offer (``<flexoffer>``, with ``op`` when given) or a schedule (``<assignment>``)."""
    if isinstance(obj, FlexOffer):
        return str(offer_to_stanza(obj, op))
    if isinstance(obj, Schedule):
        if op is not None:
            raise FlexOfferError("op", "only <flexoffer> carries an op")
        return str(schedule_to_stanza(obj))
    raise TypeError(f"to_xml takes a FlexOffer or a Schedule, not {type(obj).__name__}")
