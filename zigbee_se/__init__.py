"""zigbee_se."""
