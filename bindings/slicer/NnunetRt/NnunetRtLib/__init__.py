"""Helpers of the NnunetRt module. They live in a package because Slicer tries to load every .py
file directly in a module directory as a module of its own."""
