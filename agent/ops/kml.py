"""Pure import of KML Placemark points as checkpoints (defusedxml: no entity bombs, no DTDs)."""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from agent.errors import ConfigError
from agent.ops.checkpoints import Defaults, Imported, checkpoint_from

# Fields read from a Placemark's ExtendedData (<Data name=..><value>) or <SimpleData name=..>.
_DEFAULTS = Defaults()
_FIELDS = ("id", "radius_m", "dwell_s", "tags", "photo")
# A KMZ's doc.kml larger than this is refused unread (a zip bomb expands without limit).
MAX_KML_BYTES = 32 * 1024 * 1024
_DECLARED = re.compile(rb"""^(\s*<\?xml[^>]*?encoding=["'])([A-Za-z0-9._-]+)""")


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


def kml_of_kmz(data: bytes) -> bytes:
    """The KML inside a KMZ (a zip): `doc.kml`, else its only top-level .kml file."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [i for i in zf.infolist() if i.filename.lower().endswith(".kml")]
            top = [i for i in names if "/" not in i.filename]
            doc = next((i for i in top if i.filename.lower() == "doc.kml"), None)
            if doc is None and len(top) == 1:
                doc = top[0]
            if doc is None:
                found = ", ".join(i.filename for i in names) or "none"
                raise ConfigError([("kmz", f"has no doc.kml (KML files: {found})")])
            if doc.file_size > MAX_KML_BYTES:
                raise ConfigError([("kmz", f"{doc.filename} is over {MAX_KML_BYTES} bytes")])
            return zf.read(doc)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ConfigError([("kmz", f"not a readable zip: {exc}")]) from None


def _utf8(data: bytes) -> bytes:
    """KML bytes in UTF-8: expat reads no multi-byte codec but UTF-8/16, so a GBK or GB2312
    export (its XML declaration says so) is decoded here, as GB18030, their superset."""
    m = _DECLARED.match(data)
    if m is None or m.group(2).lower() in (b"utf-8", b"utf8", b"us-ascii", b"ascii"):
        return data
    codec = m.group(2).decode("ascii").lower()
    codec = "gb18030" if codec in ("gbk", "gb2312", "cp936") else codec
    try:
        text = data[m.end() :].decode(codec)
    except (LookupError, UnicodeDecodeError) as exc:
        raise ConfigError([("kml", f"not readable as its declared {codec}: {exc}")]) from None
    return (m.group(1).decode("ascii") + "UTF-8" + text).encode("utf-8")


def from_kml(text: str | bytes, defaults: Defaults = _DEFAULTS) -> list[Imported]:
    """Every Placemark with a Point -> a checkpoint; other geometry is refused by name.

    Bytes are read in the encoding their XML declaration names (GBK exports).
    """
    try:
        root = fromstring(_utf8(text) if isinstance(text, bytes) else text.encode("utf-8"))
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
