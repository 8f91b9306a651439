"""DL/T 645 (2007 and 1997): the protocol of Chinese dorm and prepaid electricity meters on RS-485.

``frame`` is the wire format (preamble, address, control code, +0x33 data, checksum) and a stream reader
that finds frames among garbage; ``requests`` the requests houqin sends (read, read follow-on, read
address, broadcast time, relay control) and the replies it expects; ``link`` one bus. The data
identifiers and their formats are ``houqin.dlt645_items`` (the inventory checks models against them)."""
