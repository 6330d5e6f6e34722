"""`python -m seqlab.unroll`: build oneDNN's RNN handler now (if this machine has none cached)
and say where it is, or why the CPU backend is unavailable (exit status 1)."""

import sys

from seqlab.unroll import onednn_build

sys.exit(onednn_build.main())
