"""Training engine shared by all modules: jobs, devices, configs, augmentation, the fit loop."""
