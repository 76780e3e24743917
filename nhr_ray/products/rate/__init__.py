"""`nhr-ray rate RUN --n 300 --out RATINGS`: people rate a seeded sample of a finished run.

sample.py  which items (triplets and, on request, rejected attempts), their images checked and cached
store.py   the ratings file: one row per (rater, item), rewritten complete and moved into place
server.py  a small loopback HTTP server (standard library) and the CLI entry
page.html  the one page raters see (keyboard first; model text only ever set as text)
"""
