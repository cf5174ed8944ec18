"""soundstage.data: shard writers, the embedded corpora, streaming datamodules and token shards.

Modules are imported on use (``soundstage.data.audio_datamodule``, ``.token_datamodule``,
``.corpus``, ``.ingest``, ``.cli``), so importing the package is cheap.
"""
