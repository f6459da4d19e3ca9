"""Per-recipient content against fixed content: the same broadcast, templated (two user
attributes, three localizations) and fixed, alternated in one run through the whole
pipeline; and the render cost per recipient measured on its own."""
