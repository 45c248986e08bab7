"""`python -m ltx2_batch ...` is the same as `ltx2-batch ...`."""

from ltx2_batch.cli import main

main()
