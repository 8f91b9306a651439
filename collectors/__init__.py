"""Field collection: Modbus and MQTT links (one per bus or broker), register decoding, poll loops, the
reading pipeline and the device simulators. Imports only ``houqin``."""
