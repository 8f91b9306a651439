"""Device simulators: pymodbus servers and MQTT devices that serve the shipped register and payload maps."""
