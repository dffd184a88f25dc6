"""The contract between clients and servers: frames and the CBOR data model (``codec``), error
codes (``errors``) and the one log API every implementation offers (``api``). Both
``logact.server`` and ``logact.client`` build on it; it imports neither."""
