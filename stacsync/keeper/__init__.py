"""Telling the catalog's keeper after a pass: the parent-catalog link and mail.

Nothing here changes the manifest's files or items.
"""
