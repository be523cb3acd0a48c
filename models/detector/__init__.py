"""Face detection: YOLOv5s (ultralytics network) with our own letterbox and NMS."""
