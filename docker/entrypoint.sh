#!/bin/sh
# Entry point of the project image: run one sandbox module.
#   docker run IMAGE python -m sandbox.services.auth    (any command runs as given)
#   docker run IMAGE sandbox.services.auth [ARGS]       (a module name: python -m it)
#   docker run -e AETHER_MODULE=sandbox.venue IMAGE     (no command: the module in AETHER_MODULE)
set -e
if [ "$#" -eq 0 ]; then
    if [ -n "${AETHER_MODULE:-}" ]; then
        exec python -m "$AETHER_MODULE"
    fi
    echo "usage: give a command (python -m sandbox.services.auth), a module name, or set AETHER_MODULE" >&2
    exit 2
fi
case "$1" in
    sandbox.*) module="$1"; shift; exec python -m "$module" "$@" ;;
esac
exec "$@"
