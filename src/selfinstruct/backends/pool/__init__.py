"""Several backends that look like one: servers balanced by load, Ray actors."""
