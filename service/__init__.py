"""messagelog: a gRPC service that logs SMS, pager, voicemail and fax messages into CRMs."""
