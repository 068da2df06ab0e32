"""Shared helpers of one page's diagnoses (not diagnoses themselves: no run())."""
