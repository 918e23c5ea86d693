"""Where an address is: its country and its network (the autonomous system), offline.

The indexer asks once per batch for the batch's distinct addresses; answers are cached by
/24 (IPv4) or /48 (IPv6) prefix where the data holds one answer for all of it, else by
address. Data: MaxMind-format databases named by the `geo_db` setting (re-read when their files
change, as `geoipupdate` leaves them), else the GeoLite2-derived data that ships with the
`geoip2fast` package. A private, loopback or unparseable address is nowhere: no country.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol

from mailstats.errors import InvalidParameter

MODES = ("network", "country", "off")
ATTRIBUTION = (
    "This product includes GeoLite2 data created by MaxMind, available from https://www.maxmind.com"
)
SAMPLE = "193.0.6.139"  # RIPE NCC's, in the Netherlands
CACHE_SIZE = 1 << 18  # answers kept, by prefix or address; emptied when full

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Place:
    """An address's country (ISO 3166-1 alpha-2, "" when unknown) and network."""

    country: str = ""
    asn: int | None = None
    asnorg: str | None = None


NOWHERE = Place()


class Source(Protocol):
    @property
    def description(self) -> str: ...

    def find(self, address: Address) -> tuple[Place, int]:
        """The place and the prefix length of the network the answer holds for."""
        ...


def _country(code: Any) -> str:
    text = str(code or "").upper()
    return text if len(text) == 2 and text.isalpha() else ""


def _prefix(cidr: str) -> int:
    _, _, length = cidr.rpartition("/")
    return int(length) if length.isdigit() else 128


class Bundled:
    """The data of the `geoip2fast` package: countries, and network names (no numbers)."""

    def __init__(self, network: bool) -> None:
        from geoip2fast import GeoIP2Fast  # type: ignore[import-untyped]

        name = "geoip2fast-asn-ipv6.dat.gz" if network else "geoip2fast-ipv6.dat.gz"
        self._data = GeoIP2Fast(geoip2fast_data_file=name)
        source = str(self._data.get_database_info().get("source_info", name))
        stamp = source.rpartition("-")[2]  # e.g. MAXMIND:GeoLite2-CountryASN-IPv4IPv6-en-20240618
        dated = f", {stamp[:4]}-{stamp[4:6]}-{stamp[6:]}" if len(stamp) == 8 else ""
        version = metadata.version("geoip2fast")
        self.description = f"{source} (bundled with geoip2fast {version}{dated})"

    def find(self, address: Address) -> tuple[Place, int]:
        found = self._data.lookup(str(address))
        cidrs = [c for c in (found.cidr, getattr(found, "asn_cidr", "")) if c]
        prefix = max((_prefix(c) for c in cidrs), default=address.max_prefixlen)
        org = getattr(found, "asn_name", "") or None
        return Place(_country(found.country_code), None, org), prefix


class MaxMind:
    """MaxMind-format files (Country or City, and ASN), merged; re-opened when replaced."""

    def __init__(self, paths: Sequence[str]) -> None:
        import maxminddb

        self._open = maxminddb.open_database
        self._broken = (OSError, ValueError, maxminddb.InvalidDatabaseError)
        self.paths = tuple(paths)
        self._readers: dict[str, tuple[tuple[int, int, int], Any]] = {}
        self.refresh()

    @property
    def description(self) -> str:
        parts = []
        for path, (_, reader) in self._readers.items():
            meta = reader.metadata()
            built = time.strftime("%Y-%m-%d", time.gmtime(meta.build_epoch))
            parts.append(f"{path} ({meta.database_type}, built {built})")
        return "; ".join(parts)

    def refresh(self) -> bool:
        """Re-open files replaced since they were read (a stat each, once per batch); True
        if any was. Replace them by renaming a new file over the old, as geoipupdate does."""
        changed = False
        for path in self.paths:
            try:
                st = os.stat(path)
            except OSError as exc:
                if path in self._readers:
                    continue  # being replaced: keep what was read
                raise InvalidParameter(f"Invalid setting geo_db: {exc}") from None
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            held = self._readers.get(path)
            if held is not None and held[0] == stamp:
                continue
            try:
                reader = self._open(path)
            except self._broken as exc:
                if held is not None:
                    continue  # half written: keep the old one until the next look
                raise InvalidParameter(f"Invalid setting geo_db: {path}: {exc}") from None
            if held is not None:
                held[1].close()
            self._readers[path] = (stamp, reader)
            changed = True
        return changed

    def find(self, address: Address) -> tuple[Place, int]:
        country, asn, org, prefix = "", None, None, 0
        for _, reader in self._readers.values():
            try:
                record, length = reader.get_with_prefix_len(address)
            except self._broken:  # an IPv6 address in an IPv4-only file, a damaged file
                continue
            prefix = max(prefix, length)
            if not isinstance(record, dict):
                continue
            where = record.get("country") or record.get("registered_country") or {}
            country = country or _country(where.get("iso_code"))
            number = record.get("autonomous_system_number")
            if asn is None and isinstance(number, int):
                asn = number
            name = record.get("autonomous_system_organization")
            if org is None and isinstance(name, str) and name:
                org = name
        return Place(country, asn, org), prefix or address.max_prefixlen


class Geo:
    """Lookups in one mode (network | country | off), cached, safe to share."""

    def __init__(self, mode: str = "network", paths: Sequence[str] = ()) -> None:
        """`paths`: MaxMind-format files; none: the bundled data."""
        if mode not in MODES:
            raise InvalidParameter(f"Invalid setting geo: {mode!r} (use network, country or off)")
        self.mode = mode
        self.paths = tuple(paths)
        self._source: Source | None = None
        # answers by /24 or /48 prefix (version, prefix), or by address (version, address, 0)
        self._cache: dict[tuple[int, ...], Place] = {}
        self._lock = threading.Lock()
        if self.paths and mode != "off":
            self._source = MaxMind(self.paths)  # fail at start-up on a bad file

    @property
    def on(self) -> bool:
        return self.mode != "off"

    def source(self) -> Source:
        """The data, loaded on first use (the bundled data takes a moment and ~100 MB)."""
        if self._source is None:
            self._source = Bundled(self.mode == "network")
        return self._source

    def lookup(self, text: str) -> Place:
        """One address's place; NOWHERE for a private, reserved or malformed one.

        >>> Geo().lookup("127.0.0.1")
        Place(country='', asn=None, asnorg=None)
        """
        return self.places([text]).get(text, NOWHERE)

    def places(self, addresses: Iterable[str]) -> dict[str, Place]:
        """The places of these addresses (distinct), by address as given: from the cache
        by prefix, or by address where the data's network is narrower, else the data."""
        out: dict[str, Place] = {}
        if not self.on:
            return out
        with self._lock:
            if isinstance(self._source, MaxMind) and self._source.refresh():
                self._cache.clear()
            cache = self._cache
            for text in addresses:
                if text in out:
                    continue
                number = _number(text)
                if number is None:
                    out[text] = NOWHERE
                    continue
                wide = _wide(*number)
                place = cache.get(wide) if wide else None
                if place is None:
                    place = cache.get((*number, 0)) or self._find(number, wide)
                out[text] = place
        return out

    def _find(self, number: tuple[int, int], wide: tuple[int, int] | None) -> Place:
        """A cache miss: the data's answer, kept for the prefix where it holds for all of it."""
        version, value = number
        address = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
        if not address.is_global:
            return NOWHERE
        place, length = self.source().find(address)
        if self.mode == "country":
            place = Place(place.country)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()  # rare, and cheaper than keeping an order on every hit
        if wide is not None and length <= (24 if version == 4 else 48):
            self._cache[wide] = place
        else:
            self._cache[(*number, 0)] = place
        return place

    def status(self) -> dict[str, Any]:
        """What `mailstats geo status` prints: the mode and the data it reads."""
        if not self.on:
            return {"geo": "off", "data": None}
        source = self.source()
        info: dict[str, Any] = {"geo": self.mode, "data": source.description}
        if isinstance(source, Bundled):
            info["attribution"] = ATTRIBUTION
        place = self.lookup(SAMPLE)  # one address whose place every source agrees on
        info["sample"] = {"address": SAMPLE, "country": place.country, "asn": place.asn,
                          "asnorg": place.asnorg}  # fmt: skip
        return info


OFF = Geo("off")


# Special-purpose blocks whose /24 or /48 prefixes mix global and reserved addresses
# (192.0.0.0/24, 2001::/23): cached by address only.
_MIXED_V4 = 0xC00000
_MIXED_V6 = 0x2001 << 7


def _wide(version: int, value: int) -> tuple[int, int] | None:
    """The cache key of the address's /24 (IPv4) or /48 (IPv6) prefix."""
    if version == 4:
        return None if value >> 8 == _MIXED_V4 else (4, value >> 8)
    return None if value >> 105 == _MIXED_V6 else (6, value >> 80)


def _number(text: str) -> tuple[int, int] | None:
    """(4 or 6, the address as a number); an IPv4-mapped IPv6 address is its IPv4 one."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        pass
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except OSError:
        return None
    return (4, value & 0xFFFFFFFF) if value >> 32 == 0xFFFF else (6, value)
