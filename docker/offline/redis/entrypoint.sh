#!/bin/sh
# As the official image: arguments starting with "-" (or a .conf file) go to
# redis-server, and unless a config file sets protected-mode it is turned off,
# so other containers on the sandbox network can connect (the sandbox
# publishes ports on 127.0.0.1 only). Data lives in the working directory, /data.
set -e
case "$1" in
    -*|*.conf) set -- redis-server "$@" ;;
esac
if [ "$1" = "redis-server" ]; then
    if [ -f "${2:-}" ] && grep -q '^protected-mode' "$2"; then
        exec "$@"
    fi
    exec "$@" --protected-mode no
fi
exec "$@"
