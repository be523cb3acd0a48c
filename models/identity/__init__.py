"""Face identity: dlib's face ResNet and 5-point landmarks, imported by our own reader, and their evaluation."""
