"""The ``tokenize`` stage: encodes audio shards once into token shards with the upstream tokenizers."""
