"""`python -m seqlab.unroll`: build oneDNN's RNN handler now and say where it is.

It builds only if this machine has none cached; when the CPU backend is unavailable it says
why instead (exit status 1)."""

import sys

from seqlab.unroll import onednn_build

sys.exit(onednn_build.main())
