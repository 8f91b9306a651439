"""houqin (后勤): campus logistics — meters, lighting, broadcast, repair orders, prepaid dorm electricity."""

__version__ = "0.1.0"
