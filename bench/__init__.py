"""`make bench`: the gateway's whole job measured in one run (`python -m bench`)."""
