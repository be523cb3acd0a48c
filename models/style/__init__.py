"""Style transfer: AdaIN (Huang & Belongie 2017), classical Gatys NST, and the starter style gallery."""
