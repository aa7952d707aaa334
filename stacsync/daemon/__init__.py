"""`stacsync run`: the event and poll loop, settling, systemd notify.

Each pass it runs is the pipeline's.
"""
