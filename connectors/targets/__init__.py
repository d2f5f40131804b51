"""Sync targets: the interface every place approved values are written to implements
(:mod:`.base`), and the registry that finds them by name (:mod:`.registry`)."""
