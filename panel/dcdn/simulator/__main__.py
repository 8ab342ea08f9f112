"""``python -m panel.dcdn.simulator``: the simulator without Django."""

from .cli import main

main()
