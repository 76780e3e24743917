import sys

from nhr_ray.cli import main

sys.exit(main())
