"""The traffic side: the listener's protections (`listener`), the handler (`handler`:
capture -> primary -> respond -> start the experiment), request bodies (`request_body`),
the relayed response (`response`, `relay`) and WebSockets (`websocket`)."""
