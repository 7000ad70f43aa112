"""The doors: Twisted protocols and endpoints that turn bytes into SIP2 lines for a Session."""
