"""``python -m hw.synth BUILD_DIR [LAYER ...]``."""
import sys

from hw.synth.build import main

sys.exit(main())
