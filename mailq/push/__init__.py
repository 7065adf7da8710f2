"""Push: the ``idler`` process type holding IMAP IDLE connections (client, leases, trigger, status, idler)."""
