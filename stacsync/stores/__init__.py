"""Clients of remote stores: the only modules that import a store's client library.

Sources and outputs reach iRODS (and later S3) through these seams only.
"""
