"""Face identity: dlib's face recognition ResNet and 5-point shape predictor, ported to torch."""
