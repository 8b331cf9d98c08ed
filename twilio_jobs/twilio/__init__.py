"""Twilio, without twilio-python: endpoint specs (`endpoints`), the wire format and the one
error map (`wire`), finding a lost answer (`reconcile`) and the API over a transport (`api`).
The transports (an http.client pool and aiohttp) live in the worker."""
