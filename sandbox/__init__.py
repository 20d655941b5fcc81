"""aether-sandbox: a local full-stack sandbox and simulator for the Aether trading platform."""

__version__ = "0.1.0"
