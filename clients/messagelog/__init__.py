"""Client package for the messagelog gRPC service; messagelog.v1 holds generated code."""
