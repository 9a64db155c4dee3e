"""Head-end transports: each moves requests and notifications over one protocol, nothing more."""
