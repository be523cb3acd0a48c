"""One module per stack; each stack takes what it needs from the others as constructor arguments."""
