"""Training: the Runner over paddle.Model, optimizers and schedules, losses, threads and devices, processes."""
