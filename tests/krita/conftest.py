# The inner tests run inside Krita (test_in_krita.py launches it); the outer run must not import them.
collect_ignore = ["inside", "driver"]
