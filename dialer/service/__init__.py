"""Running `dialer run` as a system service: sd_notify readiness and watchdog, SIGHUP reload."""
