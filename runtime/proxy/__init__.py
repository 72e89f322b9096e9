"""capsize-proxy: capsized's userland port proxy (dockerd's ``docker-proxy``), standard library only.

One process per published port and protocol, started by capsized in its own network namespace
(:mod:`runtime.daemon.proxies`): :mod:`runtime.proxy.tcp` splices each accepted connection to the
container's address both ways, :mod:`runtime.proxy.udp` relays datagrams with one upstream socket
per client; :mod:`runtime.proxy.cli` is the command line (docker-proxy's flags).
"""
