"""Sub-commands of ``chaosctl``, one module each."""
