"""Column types shared by both backends: geometries (PostGIS or WKB) and UTC timestamps.

Geometry storage. Every site has its own projected CRS, so one table holds geometries in
many CRSs. Each geometry therefore carries its SRID *in the row*, as EWKB (PostGIS'
extended WKB: ISO WKB plus an SRID flag and the 4-byte SRID):

* PostgreSQL: the column is GeoAlchemy2 ``Geometry(geometry_type=None, srid=-1)``, i.e. a
  plain, unconstrained PostGIS ``geometry`` column (any geometry type, any SRID per row).
  Values are bound as hex EWKB through ``ST_GeomFromEWKT`` (which also reads hex EWKB) and
  read back with ``ST_AsEWKB``: both are lossless, so coordinates round-trip bit for bit.
  The spatial GiST index is declared explicitly (:func:`spatial_index`), because GeoAlchemy2
  only adds it automatically to columns whose type *is* a ``Geometry``.
* SQLite (and any other dialect): the column is a ``BLOB`` (``LargeBinary``) holding the same
  EWKB bytes. No SpatiaLite is needed; spatial work is done with shapely/geopandas in Python,
  so the logic is the same on both backends.

The store API (:mod:`geodata.store.api`) sets each geometry's SRID to its site's EPSG code
before writing and checks it after reading; geometries in image coordinates (site photos)
have SRID 0 (none). PostgreSQL cannot check the SRID against the site in a column
constraint, so the check lives at that boundary.

Timestamps. :class:`UTCDateTime` stores timezone-aware datetimes as UTC (``timestamptz`` on
PostgreSQL, a naive UTC text on SQLite) and always returns aware UTC datetimes. Binding a
naive datetime raises ``ValueError``: the caller must say which timezone it is in.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import geoalchemy2  # noqa: F401  (registers its DDL hooks before any table is created)
import shapely
from geoalchemy2 import Geometry
from sqlalchemy import DateTime, Index, LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from geodata.timestamps import utc_aware

__all__ = ["GeometryType", "UTCDateTime", "spatial_index"]


class GeometryType(TypeDecorator):
    """A shapely geometry column: PostGIS ``geometry`` on PostgreSQL, EWKB ``BLOB`` elsewhere.

    Python values are ``shapely`` geometries (or ``None``); their SRID
    (``shapely.get_srid``) is stored with them and restored on reading. See the module
    docstring for why the SRID lives in the row and not in the column type.
    """

    impl = LargeBinary
    cache_ok = True
    # Read by GeoAlchemy2's DDL hooks (they look through TypeDecorators): no automatic
    # index (see spatial_index()) and no AddGeometryColumn management.
    spatial_index = False
    use_N_D_index = False
    use_typmod = None

    def load_dialect_impl(self, dialect: Dialect | None) -> TypeEngine[Any]:
        # GeoAlchemy2's DDL hooks call this with dialect=None too
        if dialect is not None and dialect.name == "postgresql":
            # geometry_type=None -> plain "geometry": any type, SRID per row; no automatic
            # index (spatial_index=False): indexes are declared with spatial_index().
            return dialect.type_descriptor(
                Geometry(geometry_type=None, srid=-1, spatial_index=False)
            )
        return LargeBinary() if dialect is None else dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, shapely.Geometry):
            raise TypeError(
                f"a geometry column takes a shapely geometry, got {type(value).__name__}; "
                f"convert with shapely.from_wkt / shapely.from_wkb / shapely.geometry.shape"
            )
        if dialect.name == "postgresql":
            return shapely.to_wkb(value, hex=True, include_srid=True)
        return shapely.to_wkb(value, include_srid=True)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        data = getattr(value, "data", value)  # GeoAlchemy2 WKBElement on PostgreSQL
        if isinstance(data, memoryview):
            data = data.tobytes()
        return shapely.from_wkb(data)


class UTCDateTime(TypeDecorator):
    """A timezone-aware datetime stored in UTC; reads back as an aware UTC ``datetime``.

    Raises:
        ValueError: on binding a naive datetime (no ``tzinfo``).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = utc_aware(value, "timestamp")
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def spatial_index(name: str, column: str) -> Index:
    """A GiST index on a geometry column, created on PostgreSQL only (a no-op on SQLite)."""
    return Index(name, column, postgresql_using="gist").ddl_if(dialect="postgresql")
