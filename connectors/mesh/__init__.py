"""NHS MESH mailbox client: inbox list, download, acknowledge and send, over the MESH API."""
