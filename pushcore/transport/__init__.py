"""The asyncio HTTP/2 client shared by all providers; the only code that touches sockets
on the sending side."""
