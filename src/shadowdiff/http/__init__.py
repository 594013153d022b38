"""The wire: header policy (`headers`), the pooled HTTP/1.1 client (`client`), named
upstreams (`upstream`), how an exchange fails (`errors`), and every use of aiohttp's
private surface (`_aiohttp`)."""
