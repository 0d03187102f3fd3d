"""Simulated hipsense sensors: thigh motion, IMU model and link effects."""
