"""Public datasets in xrender's conventions: `deepfluoro` (the DeepFluoro pelvis release) and `download`."""
