"""Record: the append-only, verifiable event log, signed manifests and the lineage graph."""
