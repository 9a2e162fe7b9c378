"""Cryptography adapters. Everything here uses the `cryptography` package; nothing is
hand-written. Imported only by the commands that handle keys or secrets (~50 ms).
"""
