"""The scheduler: dispatch passes, dependencies, the reaper and sweeps; inside the gateway or as its own process."""
