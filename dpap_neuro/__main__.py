"""`python -m dpap_neuro ...` is `dpap ...`; torchrun launches training this way."""
import sys

from dpap_neuro.cli import main

if __name__ == "__main__":
    sys.exit(main())
