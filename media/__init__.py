"""Hashing media: the MD5, SHA-256 and PDQ hashes of images and videos (an optional extra,
``pip install 'hashfed[media]'``). Imports: ``hashfed.protocol`` only."""
