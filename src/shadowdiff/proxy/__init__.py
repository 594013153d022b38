"""The traffic side: the listener's protections (`listener`), the handler (`handler`:
capture -> primary -> respond -> start the experiment), request bodies (`body`),
the relayed response (`response`, `relay`) and WebSockets (`websocket`)."""
