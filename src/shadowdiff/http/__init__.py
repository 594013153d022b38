"""The wire: header policy for each hop (`forwarding`), the pooled HTTP/1.1 client (`client`), named
upstreams (`upstream`), how an exchange fails (`errors`), and every use of aiohttp's
private surface (`_aiohttp`)."""
