"""Pure import of KML Placemark points as checkpoints (defusedxml: no entity bombs, no DTDs)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from agent.errors import ConfigError
from agent.ops.checkpoints import Defaults, Imported, checkpoint_from

# Fields read from a Placemark's ExtendedData (<Data name=..><value>) or <SimpleData name=..>.
_DEFAULTS = Defaults()
_FIELDS = ("id", "radius_m", "dwell_s", "tags", "photo")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # KML 2.2 has a namespace; Google Earth exports vary


def _child(el: Element, name: str) -> Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _extended(pm: Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for el in pm.iter():
        tag = _local(el.tag)
        key = el.get("name")
        if key is None:
            continue
        if tag == "Data":
            value = _child(el, "value")
            out[key] = (value.text or "").strip() if value is not None else ""
        elif tag == "SimpleData":
            out[key] = (el.text or "").strip()
    return out


def from_kml(text: str, defaults: Defaults = _DEFAULTS) -> list[Imported]:
    """Every Placemark with a Point -> a checkpoint; other geometry is refused by name."""
    try:
        root = fromstring(text.encode("utf-8"))
    except (ParseError, DefusedXmlException) as exc:
        raise ConfigError([("kml", f"not readable XML: {exc}")]) from None
    if _local(root.tag) != "kml":
        raise ConfigError([("kml", f"root element is <{_local(root.tag)}>, not <kml>")])
    out: list[Imported] = []
    for i, pm in enumerate(e for e in root.iter() if _local(e.tag) == "Placemark"):
        name_el = _child(pm, "name")
        name = (name_el.text or "").strip() if name_el is not None else ""
        where = f"placemark {i}" + (f" ({name})" if name else "")
        point = next((e for e in pm.iter() if _local(e.tag) == "Point"), None)
        if point is None:
            kinds = {_local(e.tag) for e in pm.iter()} & {"LineString", "Polygon", "LinearRing"}
            what = ", ".join(sorted(kinds)) or "no geometry"
            raise ConfigError([(where, f"must be a Point (found {what})")])
        coords = _child(point, "coordinates")
        parts = (coords.text or "").strip().split(",") if coords is not None else []
        if len(parts) not in (2, 3):
            raise ConfigError([(where, "Point coordinates must be lon,lat or lon,lat,alt")])
        data = _extended(pm)
        ident = data.get("id") or pm.get("id") or name
        if not ident:
            raise ConfigError([(where, "needs an id (ExtendedData id, the Placemark id or name)")])
        fields = {k: data[k] for k in _FIELDS if data.get(k)}
        out.append(
            checkpoint_from(where, ident, name or ident, parts[1], parts[0], fields, defaults)
        )
    if not out:
        raise ConfigError([("kml", "has no Placemark")])
    return out
