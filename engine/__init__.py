"""examreg: the online registration engine for Vietnam's national high-school graduation exam."""
