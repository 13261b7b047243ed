"""The public contract: Avro schemas of every record and the codec that reads and writes them."""

from schemas.codec import SCHEMA_NAMES, Codec, DecodeError, codec_for

__all__ = ["SCHEMA_NAMES", "Codec", "DecodeError", "codec_for"]
