"""``python -m vmenergy.runtime.servers embedded-child ...``: the embedded server's process
(internal; people use ``vmenergy server``)."""

import sys

from .embedded import child_main

if len(sys.argv) > 1 and sys.argv[1] == "embedded-child":
    sys.exit(child_main(sys.argv[2:]))
print("usage: python -m vmenergy.runtime.servers embedded-child ... (internal; use `vmenergy server`)")
sys.exit(2)
