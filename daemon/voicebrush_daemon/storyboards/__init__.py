"""Storyboards: a layer above jobs. A board holds shot texts and the ids of the jobs
that draw them; splitting a script (script.py) and drawing the sheet (sheet.py) are
modules of their own, and the jobs are the ordinary ones."""
